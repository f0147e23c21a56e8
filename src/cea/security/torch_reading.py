"""`torch.load` beyond the pickle: its legacy tar layout (storages, tensors, pickle, with raw
bytes between pickles) and its own zip reader (miniz), whose central directory can differ
from Python's zipfile.
"""

from __future__ import annotations

import io
import tarfile
import zlib
from typing import Any

from cea.security.pickles import analyze_pickle, read_value, stub_name
from cea.security.scan_base import Reader

LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


_STORAGE_ELEMENT_SIZE = {
    "Float": 4,
    "Double": 8,
    "Half": 2,
    "BFloat16": 2,
    "Long": 8,
    "Int": 4,
    "Short": 2,
    "Char": 1,
    "Byte": 1,
    "Bool": 1,
    "ComplexFloat": 8,
    "ComplexDouble": 16,
    "QInt8": 1,
    "QUInt8": 1,
    "QInt32": 4,
}

_LEGACY_MAX_RECORDS = 1_000_000


def _legacy_stream(data: bytes, pos: int, deadline: float) -> tuple[Any, int]:
    reading = read_value(data, pos, deadline)
    if not reading.complete:
        raise ValueError(f"a pickle at byte {pos} does not read ({reading.error[:60]})")
    return reading.value, reading.end


def _legacy_storages(data: bytes, deadline: float) -> tuple[list[int], str]:
    """Where torch's legacy_load reads pickles in "storages", and why it stops early (if)."""
    starts = [0]
    try:
        count, pos = _legacy_stream(data, 0, deadline)
        if not isinstance(count, int) or not 0 <= count <= _LEGACY_MAX_RECORDS:
            return starts, "the storage count is not a count"
        for _ in range(count):
            starts.append(pos)
            args, pos = _legacy_stream(data, pos, deadline)
            if not (isinstance(args, tuple) and len(args) == 3):
                return starts, f"storage record at byte {starts[-1]} is not (key, location, type)"
            kind = (stub_name(args[2]) or "").removeprefix("torch.").removesuffix("Storage")
            if kind not in _STORAGE_ELEMENT_SIZE:
                return starts, f"storage type {stub_name(args[2]) or args[2]!r:.60} is unknown"
            if pos + 8 > len(data):
                return starts, "storage bytes run past the end"
            n = int.from_bytes(data[pos : pos + 8], "little", signed=True)
            pos += 8 + n * _STORAGE_ELEMENT_SIZE[kind]
            if n < 0 or pos > len(data):
                return starts, "storage bytes run past the end"
        starts.append(pos)  # the storage views
        _legacy_stream(data, pos, deadline)
    except ValueError as exc:
        return starts, str(exc)
    return starts, ""


def _legacy_tensors(data: bytes, deadline: float) -> tuple[list[int], str]:
    """Where torch's legacy_load reads pickles in "tensors", and why it stops early (if)."""
    starts = [0]
    try:
        count, pos = _legacy_stream(data, 0, deadline)
        if not isinstance(count, int) or not 0 <= count <= _LEGACY_MAX_RECORDS:
            return starts, "the tensor count is not a count"
        for _ in range(count):
            starts.append(pos)
            _args, pos = _legacy_stream(data, pos, deadline)
            if pos + 8 > len(data):
                return starts, "tensor sizes run past the end"
            ndim = int.from_bytes(data[pos : pos + 4], "little", signed=True)
            pos += 8 + 16 * ndim + 8
            if ndim < 0 or pos > len(data):
                return starts, "tensor sizes run past the end"
    except ValueError as exc:
        return starts, str(exc)
    return starts, ""


def _is_torch_storage(name: str) -> bool:
    parts = name.split("/")
    return len(parts) >= 2 and parts[-2] == "data" and parts[-1].isdigit()


class TorchReading(Reader):
    """torch.load's readings of a legacy tar and of a zip by its own reader."""

    def _torch_legacy_tar(self, tf: tarfile.TarFile, where: str) -> None:
        """torch.load's legacy_load: "storages" (a count, then per storage a pickle and the raw
        bytes it sizes, then the views), "tensors" (a count, then per tensor a pickle and raw
        sizes and strides), then "pickle". Every pickle is read where torch reads it: those
        after raw bytes are out of reach of a reading that stops at the first raw byte."""
        for name, reader in (("storages", _legacy_storages), ("tensors", _legacy_tensors)):
            try:
                member = tf.getmember(name)  # (the last member of that name, as torch takes)
                fh = tf.extractfile(member)
                data = fh.read() if fh is not None else b""
            except KeyError:
                continue
            mwhere = f"{where}!{name}"
            starts, problem = reader(data, self.deadline)
            for start in starts[1:]:  # (the first is read with the member itself)
                report = analyze_pickle(data, start, allowed=self.allowed, deadline=self.deadline)
                self.incomplete += [f"{mwhere}@{start}: {t}" for t in report.incomplete]
                self._pickle_findings(f"{mwhere}@{start}", "torch-legacy-tar", report)
            if problem:
                self.find(
                    mwhere,
                    "torch-legacy-tar",
                    "TORCH-LEGACY-LAYOUT",
                    f"not the layout torch writes ({problem}); torch.load stops there",
                    "medium",
                )

    def _torch_records(self, data: bytes, where: str, seen: dict[str, int], depth: int) -> None:
        """The archive as torch.load reads it: torch's own zip reader (miniz), whose central
        directory can differ from Python's zipfile. Every record it sees that zipfile did not
        see with the same bytes is a finding and is scanned (tensor storages excepted)."""
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            return
        try:
            reader = torch._C.PyTorchFileReader(io.BytesIO(data))
            records = list(reader.get_all_records())
        except Exception:  # torch cannot open it: torch.load stops there
            return
        for record in records:
            if _is_torch_storage(f"x/{record}"):
                continue
            if not self.one_more_member():
                return
            try:
                content = bytes(reader.get_record(record))
            except Exception as exc:  # torch fails on it too: nothing read, but say so
                self.incomplete.append(f"{where}!{record}: torch's reader fails ({exc})"[:200])
                continue
            if seen.get(record) == zlib.crc32(content):
                continue
            rwhere = f"{where}!torch:{record}"
            self.find(
                rwhere,
                "torch-zip",
                "ZIP-PARSER-DIFFERENCE",
                "torch's zip reader sees this record "
                + ("with other bytes than zipfile" if record in seen else "where zipfile does not"),
                "medium",
            )
            self.expanded += len(content)
            self.blob(content, rwhere, record, depth + 1)
