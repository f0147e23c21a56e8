"""Read a pickle the way its victims' loaders read it, without running any of it.

Nothing here imports or calls what a pickle names. Each *reading* drives a real unpickler over
the bytes with `find_class` and `persistent_load` replaced by stubs that only record what was
asked for, so the stream is parsed exactly as that loader parses it (frames, memo, marks,
argument formats, the point where it fails) — a home-made opcode walker can be fooled by any
place where it reads differently from CPython's:

- `pickle.load` / `torch.load` / `pandas.read_pickle` / `numpy.load(allow_pickle=True)`: the C
  unpickler (`_pickle.Unpickler`), which ignores FRAME boundaries and would execute "array
  bytes" that joblib skips;
- `joblib.load`: the pure-Python unpickler (`pickle._Unpickler`, strict about frames) with
  joblib's NumpyArrayWrapper handling: the raw array bytes are skipped, object arrays are a
  nested stream.

Every global either reading reaches is checked against the allowlist; both readings must agree
that the stream holds nothing else. A third pass over the opcodes validates FRAME lengths (an
opcode that straddles a frame, a frame inside a frame, a frame past the end are findings,
because the two unpicklers then read different streams) and walks `bytes` constants that are
themselves pickles. Severity: the allowlist passes silently; a small list of harmless
constructors is low (shown, not failing); anything else fails, critical where it can execute
code or reach the OS, the network or the file system.
"""

from __future__ import annotations

import _collections_abc
import _compat_pickle
import importlib
import io
import pickle  # only the parsers: find_class/persistent_load are stubbed, nothing is loaded
import pickletools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

# What weights-only torch files, numpy arrays, joblib arrays and cea's cache need.
SAFE_GLOBALS: frozenset[str] = frozenset(
    {
        "collections.OrderedDict",
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
        "builtins.bytearray",
        "builtins.object",
        "_codecs.encode",  # bytes in protocol-2 numpy pickles
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_device_tensor_from_numpy",
        "torch._utils._rebuild_meta_tensor_no_storage",
        "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_sparse_tensor",
        "torch._tensor._rebuild_from_type_v2",
        "torch.Size",
        "torch.device",
        "torch.Tensor",
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        "torch.serialization._get_layout",
        "torch.strided",
        "torch.sparse_coo",
        "torch.contiguous_format",
        "torch.channels_last",
        "torch.preserve_format",
        "torch.per_tensor_affine",
        "torch.per_channel_affine",
        "torch.nn.parameter.Parameter",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random.mtrand._rand",
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
        # numpy's bit generators and seed sequence (RandomState / default_rng() in a dump)
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        "numpy.random._pcg64.PCG64DXSM",
        "numpy.random._philox.Philox",
        "numpy.random._sfc64.SFC64",
        "numpy.random.bit_generator.SeedSequence",
        "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
        "joblib.numpy_pickle.NumpyArrayWrapper",
    }
    | {
        f"torch.{kind}Storage"
        for kind in (
            "Float",
            "Double",
            "Half",
            "BFloat16",
            "Long",
            "Int",
            "Short",
            "Char",
            "Byte",
            "Bool",
            "ComplexFloat",
            "ComplexDouble",
            "QInt8",
            "QUInt8",
            "QInt32",
        )
    }
    | {
        f"torch.{dt}"
        for dt in (
            "float32",
            "float64",
            "float16",
            "bfloat16",
            "int64",
            "int32",
            "int16",
            "int8",
            "uint8",
            "bool",
            "complex64",
            "complex128",
            "float8_e4m3fn",
            "float8_e5m2",
            "uint16",
            "uint32",
            "uint64",
        )
    }
    | {
        f"numpy.dtypes.{t}DType"
        for t in (
            "Float16",
            "Float32",
            "Float64",
            "LongDouble",
            "Complex64",
            "Complex128",
            "Int8",
            "Int16",
            "Int32",
            "Int64",
            "Long",
            "LongLong",
            "UInt8",
            "UInt16",
            "UInt32",
            "UInt64",
            "ULong",
            "ULongLong",
            "Bool",
            "Bytes",
            "Str",
            "Void",
            "Object",
            "DateTime64",
            "TimeDelta64",
        )
    }
)

# (exact names only: `_collections_abc.sys` is the sys module)
_ABC_NAMES = tuple(_collections_abc.__all__)
_FUTURE_NAMES = (*importlib.import_module("__future__").all_feature_names, "_Feature")

# Constructors of plain values: they run no code of the pickle's choosing and touch nothing
# outside the process. Unusual in a checkpoint, so shown (low), but not failing.
HARMLESS_GLOBALS: frozenset[str] = frozenset(
    {
        *(
            f"builtins.{n}"
            for n in (
                "int",
                "float",
                "bool",
                "str",
                "bytes",
                "list",
                "dict",
                "tuple",
                "range",
                "len",
                "reversed",
                "Ellipsis",
                "NotImplemented",
            )
        ),
        "collections.Counter",
        "collections.deque",
        "collections.defaultdict",
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
        "datetime.datetime",
        "datetime.date",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "uuid.UUID",
        "ipaddress.IPv4Address",
        "ipaddress.IPv6Address",
        "pathlib.PurePath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib.Path",
        "argparse.Namespace",
        "types.SimpleNamespace",
        "torch.finfo",
        "torch.iinfo",
        "torch.layout",
        "torch.memory_format",
        "torch.dtype",
        # abstract base classes and __future__ flags: inert values
        *(f"collections.abc.{n}" for n in _ABC_NAMES),
        *(f"_collections_abc.{n}" for n in _ABC_NAMES),
        *(f"__future__.{n}" for n in _FUTURE_NAMES),
        "numpy.core.multiarray._frombuffer",
        "numpy._core.multiarray._frombuffer",
        "numpy.core.numeric._frombuffer",
        "numpy._core.numeric._frombuffer",
        *(
            f"numpy.{t}"
            for t in (
                "bool_",
                "int8",
                "int16",
                "int32",
                "int64",
                "uint8",
                "uint16",
                "uint32",
                "uint64",
                "float16",
                "float32",
                "float64",
                "complex64",
                "complex128",
                "str_",
                "bytes_",
                "datetime64",
                "timedelta64",
            )
        ),
    }
)

# ONE table of what is critical: every module (all its attributes) or callable that a global
# can name and that, called or built by an unpickler, runs a command, runs code, or does I/O
# (files, network, other processes or interpreters). The value says which. A key that ends in
# "_" is a plain prefix (`pandas.read_` covers read_csv, read_pickle, ...).
_COMMAND = (
    "os",
    "posix",
    "nt",
    "subprocess",
    "_posixsubprocess",
    "_bootsubprocess",
    "pty",
    "pipes",
    "mailcap",
    "platform",
    "webbrowser",
    "antigravity",
    "pydoc",
    "_pyrepl",
    "_pyrepl.pager.pipe_pager",
    "_aix_support",
    "_aix_support._read_cmd_output",
    "_osx_support",
    "_osx_support._read_output",
    "uuid._get_command_stdout",
    "uuid._ifconfig_getnode",
    "uuid._ip_getnode",
    "uuid._arp_getnode",
    "uuid._lanscan_getnode",
    "uuid._netstat_getnode",
    "uuid._ipconfig_getnode",
    "uuid._netbios_getnode",
    "uuid._find_mac_near_keyword",
    "uuid._find_mac_under_heading",
    "uuid._unix_getnode",
    "uuid.getnode",
    "uuid.uuid1",
    "ctypes.util",
    "test.support",
    "test.support.script_helper",
    "test.libregrtest",
    "multiprocessing",
    "_multiprocessing",
    "concurrent",
    "asyncio",
    "distutils",
    "setuptools",
    "pip",
    "ensurepip",
    "venv",
    "torch.utils",
    "torch.utils.cpp_extension",
    "torch._inductor",
    "torch.distributed",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.testing",
)
_CODE = (
    "builtins",
    "__builtin__",
    "__main__",
    "sys",
    "runpy",
    "importlib",
    "imp",
    "_imp",
    "_frozen_importlib",
    "_frozen_importlib_external",
    "pkgutil",
    "zipimport",
    "modulefinder",
    "pickle",
    "_pickle",
    "cPickle",
    "pickletools",
    "dill",
    "cloudpickle",
    "joblib",
    "marshal",
    "code",
    "codeop",
    "compileall",
    "py_compile",
    "cmd",
    "operator",
    "_operator",
    "functools",
    "_functools",
    "itertools",
    "types",
    "inspect",
    "gc",
    "atexit",
    "bdb",
    "pdb",
    "cProfile",
    "profile",
    "_lsprof",
    "trace",
    "timeit",
    "doctest",
    "idlelib",
    "lib2to3",
    "site",
    "sysconfig",
    "copy",
    "IPython",
    "ctypes",
    "_ctypes",
    "cffi",
    "threading",
    "_thread",
    "signal",
    "_signal",
    "resource",
    "fcntl",
    "_interpreters",
    "_xxsubinterpreters",
    "_interpchannels",
    "_xxinterpchannels",
    "_interpqueues",
    "interpreters",
    "concurrent.interpreters",
    "readline",
    "tkinter",
    "_tkinter",
    "turtle",
    "_winapi",
    "msvcrt",
    "winreg",
    "torch.storage._load_from_bytes",
    "torch._dynamo",
    "torch._C",
    "torch._ops",
    "torch.jit",
    "torch.fx",
    "torch.hub",
    "torch.ops",
    "torch.classes",
    "torch.package",
    "torch.serialization",
    "torch.testing",
    "torch.cuda",
    "torch.load",
    "torch.compile",
    "numpy.ctypeslib",
    "numpy.load",
    "numpy.lib.npyio",
    "numpy.lib.format",
    "pandas.read_",
    "pandas.io",
    "scipy.io",
    "yaml",
    "jinja2",
    "sympy",
    "nltk.data",
    "keras.src.layers.core.lambda_layer",
    "keras.layers.Lambda",
    "tensorflow.io",
    "tensorflow.raw_ops",
    "tensorflow.python.ops",
    "transformers.trainer",
    "mlflow",
    "optuna",
)
_IO = (
    "io",
    "_io",
    "codecs",
    "pathlib",
    "shutil",
    "tempfile",
    "glob",
    "fileinput",
    "filecmp",
    "linecache",
    "tokenize.open",
    "zipfile",
    "tarfile",
    "gzip",
    "bz2",
    "lzma",
    "shelve",
    "dbm",
    "sqlite3",
    "_sqlite3",
    "logging",
    "mmap",
    "netrc",
    "mimetypes",
    "mailbox",
    "pstats",
    "tabnanny",
    "wave",
    "aifc",
    "sunau",
    "xml.sax",
    "xml.dom",
    "xml.etree",
    "_posixshmem",
    "numpy.fromfile",
    "numpy.memmap",
    "numpy.save",
    "numpy.savez",
    "numpy.savetxt",
    "numpy.loadtxt",
    "numpy.genfromtxt",
    "numpy.ndarray.tofile",
    "numpy.ndarray.dump",
)
_NETWORK = (
    "socket",
    "_socket",
    "socketserver",
    "ssl",
    "_ssl",
    "select",
    "selectors",
    "http",
    "urllib",
    "urllib3",
    "requests",
    "httpx",
    "aiohttp",
    "ftplib",
    "smtplib",
    "smtpd",
    "telnetlib",
    "imaplib",
    "poplib",
    "nntplib",
    "xmlrpc",
    "asyncore",
    "asynchat",
    "wsgiref",
    "cgi",
    "cgitb",
    "huggingface_hub",
)
CRITICAL_CALLABLES: dict[str, str] = {
    **dict.fromkeys(_IO, "file I/O"),
    **dict.fromkeys(_NETWORK, "network I/O"),
    **dict.fromkeys(_CODE, "runs code"),
    **dict.fromkeys(_COMMAND, "runs a command"),
}
# (single modules: a dotted name that reaches one through attributes — `uuid.os.system` — is
# critical too)
DANGEROUS_MODULES = frozenset(k for k in CRITICAL_CALLABLES if "." not in k and k[-1] != "_")
_PLAIN_PREFIXES = tuple(k for k in CRITICAL_CALLABLES if k.endswith("_"))


def critical_reason(dotted: str) -> str | None:
    """What the global can do when an unpickler reaches it, from the one table (None: not in
    it). The longest entry that names the global or a module above it wins."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        reason = CRITICAL_CALLABLES.get(".".join(parts[:n]))
        if reason is not None:
            return reason
    for prefix in _PLAIN_PREFIXES:
        if dotted.startswith(prefix):
            return CRITICAL_CALLABLES[prefix]
    top = parts[0]
    if top.startswith("_") and top.lstrip("_") in DANGEROUS_MODULES:  # (_socket, __main__)
        return CRITICAL_CALLABLES[top.lstrip("_")]
    for part in parts[1:]:
        if part in DANGEROUS_MODULES:  # an attribute that is such a module
            return f"reaches {part}: {CRITICAL_CALLABLES[part]}"
    return None


ALLOWED_PICKLE_DEPTH = 3


def canonical_global(module: str, name: str) -> str:
    """`module.name` with Python 2 spellings mapped as the unpickler's fix_imports maps them
    (`__builtin__.set` → `builtins.set`, `copy_reg._reconstructor` → `copyreg._reconstructor`)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def severity_of(dotted: str, allowed: frozenset[str] = SAFE_GLOBALS) -> str:
    """info (allowed), low (harmless constructor), critical (can execute or reach outside the
    process) or high (anything else: unknown code runs when it loads)."""
    if dotted in allowed:
        return "info"
    if dotted in HARMLESS_GLOBALS:
        return "low"
    return "critical" if critical_reason(dotted) is not None else "high"


# ---- the stubs ---------------------------------------------------------------------------


class _Stub:
    """Stands for whatever a global or a call would have produced. Accepts every operation an
    unpickler performs on it and does nothing."""

    _cea_name = "?"
    _cea_log: Callable[[str, str], None] | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = object.__new__(cls)
        obj._cea_args = args
        obj._cea_state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._cea_args = args

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        log = type(self)._cea_log
        if log is not None:
            log("gadget", f"calls the result of {type(self)._cea_name}(...) (a computed callable)")
        return _Result()

    def __setstate__(self, state: Any) -> None:
        self._cea_state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass

    def add(self, value: Any) -> None:
        pass


class _Result(_Stub):
    _cea_name = "a call"


class _Persistent(_Stub):
    _cea_name = "a persistent id"


def _importable_name(dotted: str) -> bool:
    """Whether `__import__` + `getattr` could resolve it at all (any identifier, Unicode too:
    a name that is no identifier — a YAML line read as GLOBAL — stops every unpickler)."""
    return all(part.isidentifier() for part in dotted.split("."))


SCAN_SECONDS = 120.0  # per reading; past it the stream is reported, not waited for


class _Budget(io.BytesIO):
    """The bytes, with a time budget checked on every read the unpickler makes."""

    def __init__(self, data: bytes | memoryview, start: int, deadline: float | None) -> None:
        super().__init__(data)
        self.seek(start)
        self.deadline = time.monotonic() + SCAN_SECONDS
        if deadline is not None:  # (the whole file's budget, when it ends sooner)
            self.deadline = min(self.deadline, deadline)
        self.calls = 0

    def _tick(self) -> None:
        self.calls += 1
        if self.calls % 4096 == 1 and time.monotonic() > self.deadline:
            raise TimeoutError("the stream takes too long to read")

    def read(self, size: int | None = -1, /) -> bytes:
        self._tick()
        return super().read(size)

    def readline(self, size: int | None = -1, /) -> bytes:
        self._tick()
        return super().readline(size)

    def readinto(self, buffer: Any, /) -> int:
        self._tick()
        return super().readinto(buffer)


@dataclass
class Reading:
    """What one loader's reading of a stream reached."""

    loader: str
    imports: list[str] = field(default_factory=list)
    gadgets: list[str] = field(default_factory=list)
    complete: bool = False
    end: int = 0
    error: str = ""
    joblib_arrays: int = 0
    timed_out: bool = False
    value: Any = None  # what the stubbed reading built (stubs stand for every global)
    unmodelled: bool = False  # stopped on a shape this reading does not model


def read_value(data: bytes | memoryview, start: int, deadline: float | None = None) -> Reading:
    """The C unpickler's reading of the one stream at `start`, with the value it builds
    (stubs for globals): for loaders that read a stream, then raw bytes sized by it."""
    return _c_reading(data, start, deadline)


def stub_name(obj: Any) -> str | None:
    """The dotted global a stub (or a stub class) stands for, else None."""
    if isinstance(obj, type) and issubclass(obj, _Stub):
        return obj._cea_name
    if isinstance(obj, _Stub):
        return type(obj)._cea_name
    return None


class _Recorder:
    def __init__(self, reading: Reading) -> None:
        self.reading = reading
        self.types: dict[str, type] = {}

    def log(self, kind: str, message: str) -> None:
        if kind == "gadget" and message not in self.reading.gadgets:
            self.reading.gadgets.append(message)

    def find_class(self, module: Any, name: Any) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            raise pickle.UnpicklingError("global names must be strings")
        dotted = canonical_global(module, name)
        top = dotted[: len(dotted) - len(name) - 1] if dotted.endswith("." + name) else module
        if not _importable_name(top):  # the import itself fails: nothing runs
            raise pickle.UnpicklingError(f"cannot import {dotted[:60]!r}")
        if not _importable_name(dotted):
            # the unpickler imports the module before it looks the name up: the module's code
            # runs even though the name (cut short, not an identifier) then fails
            if top not in self.reading.imports:
                self.reading.imports.append(top)
            raise pickle.UnpicklingError(f"cannot find {dotted[:60]!r} (after importing {top})")
        if dotted not in self.reading.imports:
            self.reading.imports.append(dotted)
        if dotted not in self.types:
            self.types[dotted] = type(
                "Stub", (_Stub,), {"_cea_name": dotted, "_cea_log": staticmethod(self.log)}
            )
        return self.types[dotted]


def _importable(dotted: str) -> bool:
    """Whether the top-level module of `dotted` exists here (found, not imported: no module
    code runs) or is one of the dangerous ones (which exist everywhere that matters)."""
    import importlib.util

    top = dotted.split(".", 1)[0]
    if top in DANGEROUS_MODULES:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _c_reading(data: bytes | memoryview, start: int, deadline: float | None = None) -> Reading:
    """The C unpickler's reading (pickle.load, torch.load, pandas.read_pickle)."""
    reading = Reading("pickle.load")
    rec = _Recorder(reading)
    buf = _Budget(data, start, deadline)

    class _C(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            return rec.find_class(module, name)

        def persistent_load(self, pid: Any) -> Any:
            return _Persistent()

    return _drive(_C(buf, encoding="latin1"), reading, buf)


def _drive(unpickler: Any, reading: Reading, buf: io.BytesIO) -> Reading:
    """Run a stubbed unpickler to its STOP (find_class records, nothing runs) and note how it
    ended: complete, or the error it stopped on, or the time budget."""
    try:
        reading.value = unpickler.load()
        reading.complete = True
    except RecursionError:
        reading.error = "recursion limit"
    except MemoryError:
        reading.error = "out of memory"
    except TimeoutError as exc:
        reading.error = str(exc)
        reading.timed_out = True
    except Unmodelled as exc:
        reading.error = f"{exc}"[:100]
        reading.unmodelled = True
    except Exception as exc:  # every way an unpickler can stop on hostile bytes
        reading.error = f"{exc.__class__.__name__}: {str(exc)[:100]}"
    reading.end = buf.tell()
    return reading


class Unmodelled(pickle.UnpicklingError):
    """A shape the loader reads but this reading does not model: the reading stops there and
    the stream is reported incomplete (never dropped, never passed)."""


def _stub_dtype(stub: Any, depth: int = 0) -> Any:
    """The numpy dtype a pickled `numpy.dtype(descr, ...)` + BUILD state stands for, built by
    numpy itself (structured dtypes from their fields, recursively): joblib asks it
    `hasobject` and `itemsize`."""
    import numpy as np

    if depth > 8 or not isinstance(stub, _Stub) or not stub._cea_args:
        raise Unmodelled("array wrapper without a readable dtype")
    descr = stub._cea_args[0]
    if not isinstance(descr, str):
        raise Unmodelled("array wrapper without a readable dtype")
    state = stub._cea_state
    if (
        descr.startswith("V")
        and isinstance(state, tuple)
        and len(state) >= 6
        and isinstance(state[3], tuple)
        and isinstance(state[4], dict)
    ):
        names, fields, itemsize = state[3], state[4], state[5]
        if len(names) > 10_000 or not isinstance(itemsize, int):
            raise Unmodelled("structured array dtype too large to model")
        formats, offsets = [], []
        for n in names:
            entry = fields.get(n)
            if not (isinstance(entry, tuple) and len(entry) >= 2 and isinstance(entry[1], int)):
                raise Unmodelled("structured array dtype with unreadable fields")
            formats.append(_stub_dtype(entry[0], depth + 1))
            offsets.append(entry[1])
        try:
            return np.dtype(
                {"names": list(names), "formats": formats, "offsets": offsets, "itemsize": itemsize}
            )
        except (TypeError, ValueError) as exc:
            raise Unmodelled(f"structured array dtype numpy refuses ({exc})"[:100]) from exc
    try:
        return np.dtype(descr)
    except (TypeError, ValueError) as exc:
        raise pickle.UnpicklingError(f"unknown array dtype {descr[:20]!r}") from exc


def _array_bytes(state: Any) -> tuple[int, bool, bool]:
    """(byte count, object dtype, aligned) of a joblib NumpyArrayWrapper from its state."""
    if not isinstance(state, dict):
        raise pickle.UnpicklingError("array wrapper without a state dict")
    shape = state.get("shape")
    if not isinstance(shape, tuple) or not all(isinstance(x, int) and x >= 0 for x in shape):
        raise pickle.UnpicklingError("array wrapper without a readable shape")
    dtype = _stub_dtype(state.get("dtype"))
    if dtype.hasobject:
        return 0, True, False
    count = 1
    for x in shape:
        count *= x
    return count * int(dtype.itemsize), False, state.get("numpy_array_alignment_bytes") is not None


def _joblib_reading(
    data: bytes | memoryview, start: int, depth: int = 0, deadline: float | None = None
) -> Reading:
    """joblib.load's reading: pure-Python unpickler, raw array bytes skipped, object arrays a
    nested stream read with the same restrictions."""
    reading = Reading("joblib.load")
    rec = _Recorder(reading)
    buf = _Budget(data, start, deadline)

    base: Any = pickle._Unpickler  # the pure-Python unpickler, as joblib uses it

    class _Py(base):  # type: ignore[misc]
        dispatch: ClassVar[dict[int, Any]] = dict(base.dispatch)

        def find_class(self, module: str, name: str) -> Any:
            return rec.find_class(module, name)

        def persistent_load(self, pid: Any) -> Any:
            return _Persistent()

        def load_build(self) -> None:
            base.load_build(self)
            top = self.stack[-1]
            if isinstance(top, _Stub) and type(top)._cea_name.startswith("joblib.numpy_pickle.N"):
                size, objects, aligned = _array_bytes(top._cea_state)
                reading.joblib_arrays += 1
                if objects:
                    if depth >= ALLOWED_PICKLE_DEPTH:
                        raise Unmodelled("object arrays nested too deep")
                    inner = _joblib_reading(data, buf.tell(), depth + 1, deadline)
                    plain = _c_reading(data, buf.tell(), deadline)  # (older joblib: pickle.load)
                    for g in [*inner.imports, *plain.imports]:
                        if g not in reading.imports:
                            reading.imports.append(g)
                    if inner.timed_out or plain.timed_out:
                        raise TimeoutError("the stream takes too long to read")
                    if inner.unmodelled:
                        raise Unmodelled(f"object array: {inner.error}")
                    if not inner.complete:
                        raise pickle.UnpicklingError(f"object array: {inner.error}")
                    buf.seek(inner.end)
                else:
                    if aligned:
                        pad = buf.read(1)
                        if len(pad) != 1:
                            raise pickle.UnpicklingError("truncated array padding")
                        buf.read(pad[0])
                    if buf.tell() + size > len(data):
                        raise pickle.UnpicklingError("array bytes run past the end")
                    buf.seek(size, io.SEEK_CUR)

        dispatch[pickle.BUILD[0]] = load_build

    return _drive(_Py(buf, encoding="latin1"), reading, buf)


# ---- the report ----------------------------------------------------------------------------


@dataclass
class PickleReport:
    """What is wrong with a pickle stream (or a run of them). `problems` are (kind, message,
    severity); kind "global" messages are the dotted global."""

    problems: list[tuple[str, str, str]] = field(default_factory=list)
    streams: int = 0
    end: int = 0
    is_pickle: bool = False
    complete: bool = False
    incomplete: list[str] = field(default_factory=list)  # what could not be read to the end
    timed_out: bool = False

    def problem(self, kind: str, message: str, severity: str = "high") -> None:
        if all((k, m) != (kind, message) for k, m, _ in self.problems):
            self.problems.append((kind, message, severity))


def _structure(
    data: bytes | memoryview,
    start: int,
    report: PickleReport,
    depth: int,
    deadline: float | None = None,
) -> None:
    """Opcode pass: FRAME consistency, bytes constants that hold pickles, uncheckable opcodes."""
    f = io.BytesIO(data)
    f.seek(start)
    frame_end = -1
    try:
        for op, arg_, pos in pickletools.genops(f):
            arg: Any = arg_
            end = f.tell()
            if pos is None:  # (genops on a file always gives positions)
                return
            if op.name == "FRAME":
                if pos < frame_end:
                    report.problem(
                        "frame", "a FRAME starts inside another frame (loaders disagree)"
                    )
                if end + int(arg) > len(data):
                    report.problem("frame", "a FRAME length runs past the end of the data")
                frame_end = end + int(arg)
                continue
            if pos < frame_end < end:
                report.problem(
                    "frame",
                    f"{op.name} at byte {pos} straddles a frame boundary (loaders disagree)",
                )
            if op.name in ("EXT1", "EXT2", "EXT4"):
                report.problem("extension", f"{op.name} (copyreg extension code) cannot be checked")
            elif op.name in ("NEXT_BUFFER", "READONLY_BUFFER"):
                report.problem("buffer", "out-of-band buffers cannot be checked", "medium")
            elif op.name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"):
                blob = bytes(arg)
                if len(blob) > 2 and blob[0] == 0x80 and blob[1] in (2, 3, 4, 5):
                    if depth >= ALLOWED_PICKLE_DEPTH:
                        report.problem("nested", "pickles nested in bytes too deeply")
                        continue
                    inner = analyze_pickle(blob, depth=depth + 1, deadline=deadline)
                    for kind, message, sev in inner.problems:
                        if kind == "global":
                            report.problem(
                                "nested-global", f"a bytes constant holds a pickle: {message}", sev
                            )
                        elif sev in ("high", "critical"):
                            report.problem(kind, f"in a pickle inside a bytes constant: {message}")
            if op.name == "STOP":
                return
    except Exception:  # the readings report broken streams; this pass only adds to them
        return


def analyze_pickle(
    data: bytes | memoryview,
    start: int = 0,
    *,
    allowed: frozenset[str] = SAFE_GLOBALS,
    sequence: bool = False,
    depth: int = 0,
    raw: bool = False,
    deadline: float | None = None,
) -> PickleReport:
    """Read the stream at `start` as the C unpickler and as joblib would; with `sequence`, go on
    with the streams that follow (legacy torch files, pickles written one after another).

    A stream that imports nothing before it breaks runs nothing under any loader; it is still
    reported (medium) when it starts like a pickle (PROTO 2-5) — a broken pickle file — unless
    `raw` says the bytes are data no loader unpickles (tensor storages)."""
    report = PickleReport()
    pos = start
    while pos < len(data):
        if deadline is not None and time.monotonic() > deadline:
            report.incomplete.append(
                f"the time budget ran out at byte {pos} (the streams after it are not read)"
            )
            report.timed_out = True
            break
        c = _c_reading(data, pos, deadline)
        j = _joblib_reading(data, pos, deadline=deadline)
        if c.timed_out or j.timed_out:
            report.incomplete.append(f"a pickle stream at byte {pos} takes too long to read")
            report.timed_out = True
        for r in (c, j):
            if r.unmodelled:  # (the loader reads on where this reading cannot: never dropped)
                report.incomplete.append(
                    f"the {r.loader} reading of the stream at byte {pos} stopped at byte "
                    f"{r.end} on a shape cea does not model ({r.error})"
                )
        reached = [*c.imports, *(g for g in j.imports if g not in c.imports)]
        if not (c.complete or j.complete or reached):
            if (
                pos == start
                and not raw
                and data[pos : pos + 1] == b"\x80"
                and (data[pos + 1 : pos + 2] in (b"\x02", b"\x03", b"\x04", b"\x05"))
            ):
                report.is_pickle = True
                _structure(data, pos, report, depth, deadline)
                report.problem(
                    "unparsable",
                    f"truncated or unparsable pickle stream ({c.error}); it imports nothing "
                    "before it breaks",
                    "medium",
                )
            break  # not a pickle (at this offset): nothing in it can run
        report.is_pickle = True
        report.streams += 1
        if report.streams == 1 or c.complete or j.complete:
            _structure(data, pos, report, depth, deadline)
        for g in reached:
            sev = severity_of(g, allowed)
            if sev == "info":
                continue
            if g not in j.imports and j.complete and j.joblib_arrays and not _importable(g):
                # pickle.load reading joblib's array/object-array bytes as opcodes picks up
                # names like "NumpyArrayWrapper.dtype": no such module, the import fails there
                continue
            note = ""
            if g not in j.imports and j.joblib_arrays:
                note = " (in bytes that joblib skips as array data: pickle.load runs them)"
            elif g not in c.imports:
                note = " (only as joblib reads it)"
            report.problem("global", f"{g}{note}", sev)
        for gadget in {*c.gadgets, *j.gadgets}:
            report.problem("gadget", gadget)
        if not (c.complete or j.complete):
            if not report.timed_out:  # (out of time: incomplete, said above)
                report.problem(
                    "unparsable",
                    f"truncated or unparsable pickle stream ({c.error or j.error})",
                    "high",
                )
            report.end = max(c.end, j.end)
            break
        report.complete = True
        report.end = max(c.end if c.complete else 0, j.end if j.complete else 0)
        if (
            sequence
            and c.complete
            and j.complete
            and c.end < j.end
            and depth < ALLOWED_PICKLE_DEPTH
        ):
            # the C reading stopped inside what joblib reads as array data: a victim calling
            # pickle.load again starts there — read that continuation too
            inner = analyze_pickle(
                data,
                c.end,
                allowed=allowed,
                sequence=True,
                depth=depth + 1,
                raw=True,
                deadline=deadline,
            )
            report.incomplete += inner.incomplete
            for kind, message, sev in inner.problems:
                if kind == "global":
                    report.problem(kind, f"{message} (a stream after the first STOP)", sev)
        if not sequence or report.end <= pos:
            break
        pos = report.end
    return report


def looks_like_pickle(data: bytes) -> bool:
    """True when a loader would read `data` as a pickle far enough to import or finish."""
    return analyze_pickle(data[: 1 << 20] if len(data) > 1 << 20 else data).is_pickle
