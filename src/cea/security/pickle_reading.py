"""One loader's reading of a pickle stream, run by the real unpickler with `find_class` and
`persistent_load` stubbed: what `pickle.load` (and torch.load, pandas.read_pickle,
numpy.load(allow_pickle=True): the C unpickler) reaches, without running any of it. The
interface every reading shares: `Reading` (what it reached, where it stopped, why), the stubs
that stand for globals, the byte and time budget the stream is read under.
"""

from __future__ import annotations

import io
import pickle  # only the parsers: find_class/persistent_load are stubbed, nothing is loaded
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cea.security.pickle_policy import DANGEROUS_MODULES, canonical_global


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
