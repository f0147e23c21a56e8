"""`numpy.load(allow_pickle=True)` on a `.npy`: the header read by numpy's own parser; an
object dtype anywhere in it means a pickle follows the header, read as `pickle.load` reads it.
"""

from __future__ import annotations

import io
from typing import Any

from cea.security.findings import severity_rank
from cea.security.pickles import analyze_pickle
from cea.security.scan_base import Reader


def npy_header(data: bytes) -> tuple[tuple[int, int], Any, int]:
    """(version, dtype, offset of the array data) as `numpy.lib.format.read_array` reads them
    under `numpy.load(allow_pickle=True)` (no header size limit there). Raises what numpy
    raises on a header it refuses."""
    import importlib
    import warnings

    import numpy as np
    from numpy.lib import format as npy_format

    try:
        impl: Any = importlib.import_module("numpy.lib._format_impl")  # numpy 2
    except ImportError:  # pragma: no cover - numpy 1
        impl = npy_format
    read_header: Any = impl._read_array_header
    fp = io.BytesIO(data)
    version = npy_format.read_magic(fp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (python-2 headers: numpy warns and reads them)
        _shape, _fortran, dtype = read_header(fp, version, max_header_size=2**64)
    if not isinstance(dtype, np.dtype):  # pragma: no cover - numpy always gives a dtype
        raise ValueError("no dtype")
    return version, dtype, fp.tell()


class NumpyReading(Reader):
    """The .npy reading."""

    def _npy(self, data: bytes, where: str) -> None:
        """Read the header with numpy's own parser (`numpy.load` reads it so): an object dtype
        anywhere in it (`descr_to_dtype(...).hasobject`) means a pickle follows the header."""
        try:
            _version, dtype, start = npy_header(data)
        except Exception as exc:  # numpy's parser refuses it: numpy.load refuses it too
            self.find(
                where,
                "npy",
                "NUMPY-HEADER",
                f"unreadable .npy header ({exc.__class__.__name__}: {str(exc)[:80]})",
            )
            return
        if not dtype.hasobject:
            return
        report = analyze_pickle(data, start, allowed=self.allowed)
        report = analyze_pickle(data, start, allowed=self.allowed)
        if not report.is_pickle:
            self.find(where, "npy", "NUMPY-OBJECT", "object array whose pickle does not parse")
            return
        self._pickle_findings(where, "npy", report)
        if not [p for p in report.problems if severity_rank(p[2]) >= severity_rank("medium")]:
            self.find(
                where,
                "npy",
                "NUMPY-OBJECT",
                "object array (a pickle) with allowlisted globals only; loads only with "
                "allow_pickle",
                "info",
            )
