"""Which globals a pickle may name, and how bad each other one is: the allowlist of what
weights-only torch files, numpy arrays, joblib arrays and cea's cache need (info), harmless
constructors of plain values (low), one table of what runs a command, runs code or does file or
network I/O (critical), anything else (high: unknown code runs when it loads).
"""

from __future__ import annotations

import _collections_abc
import _compat_pickle
import importlib

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
