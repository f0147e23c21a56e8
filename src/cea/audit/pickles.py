"""Walk pickle opcodes without loading: a symbolic stack machine that never calls anything.

It records every imported global (GLOBAL, STACK_GLOBAL, INST) and every call target (REDUCE,
NEWOBJ, NEWOBJ_EX, OBJ, INST), checks them against an allowlist of what tensors, state dicts
and cea's own cache need, and fails closed: an unknown global, a call of a computed callable
(gadget chains such as getattr(__import__("os"), "system")), extension codes, out-of-band
buffers, a nested pickle inside a bytes constant, a truncated or unparsable stream — each is a
problem. joblib's NumpyArrayWrapper is understood well enough to skip the raw array bytes that
joblib writes inside the stream (and to walk the nested pickle of an object array).
"""

from __future__ import annotations

import io
import pickletools
import re
from dataclasses import dataclass, field
from typing import Any

# What weights-only torch files, numpy arrays, joblib arrays and cea's cache need.
SAFE_GLOBALS: frozenset[str] = frozenset(
    {
        "collections.OrderedDict",
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
        "builtins.bytearray",
        "_codecs.encode",  # bytes in protocol-2 numpy pickles
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._tensor._rebuild_from_type_v2",
        "torch.Size",
        "torch.device",
        "torch.storage.UntypedStorage",
        "torch.serialization._get_layout",
        "torch.strided",
        "torch.nn.parameter.Parameter",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.dtypes.Float64DType",
        "numpy.dtypes.Float32DType",
        "numpy.dtypes.Int64DType",
        "numpy.dtypes.Int32DType",
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
        )
    }
)

DANGEROUS_MODULES = (
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "builtins",
    "runpy",
    "importlib",
    "pickle",
    "_pickle",
    "marshal",
    "shutil",
    "socket",
    "ctypes",
    "pty",
    "code",
    "codeop",
    "webbrowser",
    "io",
    "operator",
    "functools",
    "types",
)


@dataclass(frozen=True, eq=False)
class Global:
    module: str
    name: str

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True, eq=False)
class Call:
    func: Any
    args: Any
    state: list[Any] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class Persistent:
    pid: Any


class _Mark:
    pass


MARK = _Mark()


@dataclass
class PickleReport:
    globals: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, message)
    streams: int = 0

    def problem(self, kind: str, message: str) -> None:
        if (kind, message) not in self.problems:
            self.problems.append((kind, message))


def severity_of(kind: str, message: str) -> str:
    if kind == "global" and any(message.startswith(f"{m}.") for m in DANGEROUS_MODULES):
        return "critical"
    return "high"


class _Walker:
    def __init__(self, report: PickleReport, allowed: frozenset[str]) -> None:
        self.r = report
        self.allowed = allowed

    def _global(self, module: Any, name: Any) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            self.r.problem("unresolvable", "STACK_GLOBAL with a computed module or name")
            return Global("?", "?")
        g = Global(module, name)
        self.r.globals.append(g.dotted)
        if g.dotted not in self.allowed:
            self.r.problem("global", g.dotted)
        return g

    def _call(self, func: Any, args: Any, opname: str) -> Call:
        if not isinstance(func, Global):
            self.r.problem("gadget", f"{opname} calls a computed callable (not a plain global)")
        return Call(func, args)

    def walk(self, f: io.BytesIO, *, depth: int = 0) -> None:
        """Walk one pickle stream from f's position to its STOP (raises ValueError if broken)."""
        if depth > 3:
            self.r.problem("nested", "pickles nested more than 3 levels deep")
            return
        self.r.streams += 1
        stack: list[Any] = []
        marks: list[list[Any]] = []
        memo: dict[int, Any] = {}

        def pop_mark() -> list[Any]:
            nonlocal stack
            items = stack
            stack = marks.pop()
            return items

        while True:
            gen = pickletools.genops(f)
            restart = False
            for op, raw_arg, _pos in gen:
                name = op.name
                arg: Any = raw_arg
                if name in ("PROTO", "FRAME"):
                    continue
                if name == "STOP":
                    return
                if name == "MARK":
                    marks.append(stack)
                    stack = []
                elif name in (
                    "INT",
                    "BININT",
                    "BININT1",
                    "BININT2",
                    "LONG",
                    "LONG1",
                    "LONG4",
                    "FLOAT",
                    "BINFLOAT",
                    "UNICODE",
                    "BINUNICODE",
                    "SHORT_BINUNICODE",
                    "BINUNICODE8",
                    "STRING",
                    "BINSTRING",
                    "SHORT_BINSTRING",
                ):
                    stack.append(arg)
                elif name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"):
                    data = bytes(arg)
                    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
                        self.r.problem("nested", "a bytes constant holds another pickle")
                    elif data[:4] == b"PK\x03\x04":
                        self.r.problem("nested", "a bytes constant holds a zip (torch file?)")
                    stack.append(data)
                elif name == "NONE":
                    stack.append(None)
                elif name in ("NEWTRUE", "NEWFALSE"):
                    stack.append(name == "NEWTRUE")
                elif name == "EMPTY_DICT":
                    stack.append(_SymDict())
                elif name in ("EMPTY_LIST", "EMPTY_SET"):
                    stack.append([])  # sets are walked as lists: only their contents matter
                elif name == "EMPTY_TUPLE":
                    stack.append(())
                elif name == "LIST":
                    stack_items = pop_mark()
                    stack.append(list(stack_items))
                elif name == "TUPLE":
                    items = pop_mark()  # rebinds `stack`: pop first, then push
                    stack.append(tuple(items))
                elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                    n = int(name[-1])
                    top = tuple(stack[-n:])
                    del stack[-n:]
                    stack.append(top)
                elif name == "DICT":
                    items = pop_mark()
                    d = _SymDict()
                    d.pairs.extend(zip(items[::2], items[1::2], strict=False))
                    stack.append(d)
                elif name == "FROZENSET":
                    items = pop_mark()
                    stack.append(tuple(items))
                elif name == "APPEND":
                    value = stack.pop()
                    if isinstance(stack[-1], list):
                        stack[-1].append(value)
                elif name == "APPENDS":
                    items = pop_mark()
                    if isinstance(stack[-1], list):
                        stack[-1].extend(items)
                elif name == "SETITEM":
                    value = stack.pop()
                    key = stack.pop()
                    if isinstance(stack[-1], _SymDict):
                        stack[-1].pairs.append((key, value))
                elif name == "SETITEMS":
                    items = pop_mark()
                    if isinstance(stack[-1], _SymDict):
                        stack[-1].pairs.extend(zip(items[::2], items[1::2], strict=False))
                elif name == "ADDITEMS":
                    pop_mark()
                elif name == "POP":
                    stack.pop()
                elif name == "POP_MARK":
                    pop_mark()
                elif name == "DUP":
                    stack.append(stack[-1])
                elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[int(arg)] = stack[-1]
                elif name == "MEMOIZE":
                    memo[len(memo)] = stack[-1]
                elif name in ("GET", "BINGET", "LONG_BINGET"):
                    if int(arg) not in memo:
                        raise ValueError(f"memo key {arg} missing")
                    stack.append(memo[int(arg)])
                elif name == "GLOBAL":
                    module, _, attr = str(arg).partition(" ")
                    stack.append(self._global(module, attr))
                elif name == "STACK_GLOBAL":
                    attr = stack.pop()
                    module = stack.pop()
                    stack.append(self._global(module, attr))
                elif name == "INST":
                    module, _, attr = str(arg).partition(" ")
                    g = self._global(module, attr)
                    items = pop_mark()
                    stack.append(self._call(g, tuple(items), "INST"))
                elif name == "OBJ":
                    items = pop_mark()
                    if not items:
                        raise ValueError("OBJ without a class")
                    stack.append(self._call(items[0], tuple(items[1:]), "OBJ"))
                elif name == "REDUCE":
                    args = stack.pop()
                    func = stack.pop()
                    stack.append(self._call(func, args, "REDUCE"))
                elif name == "NEWOBJ":
                    args = stack.pop()
                    cls = stack.pop()
                    stack.append(self._call(cls, args, "NEWOBJ"))
                elif name == "NEWOBJ_EX":
                    kwargs = stack.pop()
                    args = stack.pop()
                    cls = stack.pop()
                    stack.append(self._call(cls, (args, kwargs), "NEWOBJ_EX"))
                elif name == "BUILD":
                    state = stack.pop()
                    obj = stack[-1]
                    if isinstance(obj, Call):
                        obj.state.append(state)
                        if (
                            isinstance(obj.func, Global)
                            and obj.func.dotted == "joblib.numpy_pickle.NumpyArrayWrapper"
                        ):
                            self._skip_joblib_array(f, state, depth)
                            restart = True
                            break
                elif name in ("PERSID", "BINPERSID"):
                    pid = arg if name == "PERSID" else stack.pop()
                    stack.append(Persistent(pid))
                elif name in ("EXT1", "EXT2", "EXT4"):
                    self.r.problem(
                        "extension", f"{name} (copyreg extension registry) cannot be checked"
                    )
                    stack.append(Global("?ext", str(arg)))
                elif name in ("NEXT_BUFFER", "READONLY_BUFFER"):
                    self.r.problem("buffer", "out-of-band buffers cannot be checked")
                    if name == "NEXT_BUFFER":
                        stack.append(None)
                else:  # pragma: no cover - every opcode of protocols 0-5 is handled above
                    raise ValueError(f"unsupported opcode {name}")
            else:
                raise ValueError("pickle stream ended without STOP")
            if not restart:  # pragma: no cover
                return

    def _skip_joblib_array(self, f: io.BytesIO, state: Any, depth: int) -> None:
        import numpy as np

        info = dict(state.pairs) if isinstance(state, _SymDict) else {}
        shape = info.get("shape")
        dtype = info.get("dtype")
        descr = None
        if (
            isinstance(dtype, Call)
            and isinstance(dtype.args, tuple)
            and dtype.args
            and isinstance(dtype.args[0], str)
        ):
            descr = dtype.args[0]
        if (
            not isinstance(shape, tuple)
            or not all(isinstance(x, int) for x in shape)
            or descr is None
        ):
            raise ValueError("joblib array wrapper without a readable shape and dtype")
        if descr.startswith("O"):
            self.walk(f, depth=depth + 1)  # object array: a nested pickle stream
            return
        if descr.startswith("V"):
            raise ValueError("joblib array with a structured dtype cannot be sized safely")
        itemsize = np.dtype(descr).itemsize
        if info.get("numpy_array_alignment_bytes") is not None:
            pad = f.read(1)
            if len(pad) != 1:
                raise ValueError("truncated joblib array padding")
            f.seek(pad[0], io.SEEK_CUR)
        count = 1
        for x in shape:
            count *= x
        size = count * itemsize
        start = f.tell()
        f.seek(0, io.SEEK_END)
        end = f.tell()
        if start + size > end:
            raise ValueError("joblib array bytes run past the end of the file")
        f.seek(start + size)


class _SymDict:
    def __init__(self) -> None:
        self.pairs: list[tuple[Any, Any]] = []


def scan_pickle_bytes(
    data: bytes, *, allowed: frozenset[str] = SAFE_GLOBALS, sequence: bool = False
) -> tuple[PickleReport, int]:
    """Walk one pickle (or, with `sequence`, consecutive pickles) from the start of `data`.

    Returns the report and the offset where walking stopped. Errors become problems.
    """
    report = PickleReport()
    f = io.BytesIO(data)
    walker = _Walker(report, allowed)
    try:
        walker.walk(f)
        while sequence and f.tell() < len(data) and data[f.tell() : f.tell() + 1] == b"\x80":
            walker.walk(f)
    except (ValueError, IndexError, KeyError, TypeError, EOFError, OverflowError) as exc:
        report.problem("unparsable", f"truncated or unparsable pickle stream ({str(exc)[:120]})")
    return report, f.tell()


_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def looks_like_pickle(data: bytes) -> bool:
    """Protocol 2+ by header; protocol 0/1 by walking (text files fail within a few bytes)."""
    if len(data) >= 2 and data[0] == 0x80 and data[1] in (2, 3, 4, 5):
        return True
    if (
        not data
        or data[:1]
        not in b"(cdeghijlmnopqrstuvwxyz}])IJKLMNFGSTUVX\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x93\x94\x95N."
    ):
        return False
    ops: list[str] = []
    args: list[Any] = []
    try:
        for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
            ops.append(op.name)
            args.append(arg)
    except Exception:  # a broken stream is still a (truncated) pickle if it began like one
        if len(ops) < 2 or ops[0] not in ("GLOBAL", "INST", "MARK"):
            return False
        # text that starts with "c" or "i" (a YAML "channels:" line) reads as GLOBAL too:
        # a real GLOBAL/INST names a module and an attribute
        first = args[0] if ops[0] != "MARK" else None
        return first is None or all(_DOTTED.match(part) for part in str(first).split(" ", 1))
    return len(ops) >= 2 and ops[-1] == "STOP"
