"""`joblib.load`'s reading of a pickle stream: the pure-Python unpickler joblib uses, its
NumpyArrayWrapper handling (the raw array bytes are skipped, sized by numpy's own dtype; an
object array is a nested stream read by a fresh unpickler, as joblib reads it).
"""

from __future__ import annotations

import io
import pickle
from typing import Any, ClassVar

from cea.security.pickle_reading import (
    Reading,
    Unmodelled,
    _Budget,
    _c_reading,
    _drive,
    _Persistent,
    _Recorder,
    _Stub,
)

ALLOWED_PICKLE_DEPTH = 3


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
