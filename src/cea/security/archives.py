"""Containers read member by member as their loaders read them: zip (any member names, nested,
damaged ones read from their local headers, entries the central directory does not list,
torch's own reader beside zipfile), tar (and torch's legacy tar layout), compressed streams.
"""

from __future__ import annotations

import io
import lzma
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

from cea.security.archive_formats import (
    BOMB_MIN,
    BOMB_RATIO,
    _bomb_input,
    _is_bomb,
    _is_bz2,
    _local_header,
    _member_span,
    _raw_member,
    inflate,
)
from cea.security.torch_reading import TorchReading, _is_torch_storage


class ArchiveReading(TorchReading):
    """zip, tar and compressed-stream readings."""

    def _compressed(self, kind: str, data: bytes, where: str, name: str, depth: int) -> str:
        payload = data[18:] if kind == "joblib-zfile" else data
        out, problem = inflate(kind, payload, self.budget())
        weak = kind in ("zlib", "lzma", "joblib-zfile") or (kind == "bz2" and not _is_bz2(data))
        if problem and not _is_bomb(problem) and not out and weak:
            return ""  # only looked like one: not compressed after all
        self.expanded += len(out)
        if _is_bomb(problem):
            self.too_big(where, kind, _bomb_input(problem), len(out))
            return kind
        if len(out) > BOMB_MIN and len(out) > BOMB_RATIO * len(data):
            self.find(where, kind, "ARCHIVE-BOMB", "expands past the scanner's limits")
            return kind
        if problem:
            self.find(
                where,
                kind,
                "COMPRESSED-CORRUPT",
                f"{problem}; the {len(out)} bytes before it were scanned",
                "medium",
            )
        suffix = Path(name).suffix.lower()
        compressed = suffix in (".gz", ".bz2", ".xz", ".lzma", ".z", ".zlib", ".tgz")
        inner = name[: -len(suffix)] + (".tar" if suffix == ".tgz" else "") if compressed else name
        inner_fmt = self.blob(out, f"{where}!{kind}", inner, depth + 1)
        return f"{kind}+{inner_fmt}"

    def _tar(self, data: bytes, where: str, depth: int) -> str:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
                for member in tf:
                    if not self.one_more_member():
                        break
                    mwhere = f"{where}!{member.name}"
                    parts = Path(member.name).parts
                    if member.name.startswith("/") or ".." in parts:
                        self.find(
                            mwhere, "tar", "TAR-PATH", "member path leaves the archive", "medium"
                        )
                    if member.issym() or member.islnk():
                        self.find(
                            mwhere,
                            "tar",
                            "TAR-LINK",
                            f"link to {member.linkname[:80]!r} (not followed)",
                            "low",
                        )
                        continue
                    if not member.isfile():
                        continue
                    if member.size > self.budget():
                        self.too_big(mwhere, "tar", None, member.size)
                        break
                    fh = tf.extractfile(member)
                    content = fh.read() if fh is not None else b""
                    self.blob(content, mwhere, member.name, depth + 1)
                if {"storages", "tensors", "pickle"} & set(tf.getnames()):  # torch's legacy layout
                    self._torch_legacy_tar(tf, where)
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            self.find(where, "tar", "TAR-BROKEN", f"tar archive cannot be read ({exc})", "medium")
            self.incomplete.append(
                f"{where}: damaged tar archive, members after the damage not scanned"
            )
        return "tar"

    # -- zip -------------------------------------------------------------------------------
    def _zip(self, data: bytes, where: str, depth: int) -> str:
        infos: list[zipfile.ZipInfo] = []
        zf: zipfile.ZipFile | None = None
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
            infos = zf.infolist()
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            OSError,
            ValueError,
            EOFError,
            struct.error,
        ) as exc:
            self.find(
                where,
                "zip",
                "ZIP-BROKEN",
                f"the central directory cannot be read ({exc}); members read from local headers",
                "medium",
            )
        names = [i.filename for i in infos]
        fmt = "zip"
        # torch.load's own dispatch: a zip whose records (names below the archive's folder)
        # hold constants.pkl goes to torch.jit.load, which runs the TorchScript code in code/
        records = {n.split("/", 1)[-1] for n in names}
        if "constants.pkl" in records or any(r.startswith("code/") for r in records):
            fmt = "torchscript"
            self.find(
                where,
                fmt,
                "TORCHSCRIPT",
                "a TorchScript archive (constants.pkl or code/): torch.load hands it to "
                "torch.jit.load, which runs its code",
                "high",
                hint="load only TorchScript you trust; ship weights as safetensors",
            )
        elif names and any(n.endswith("data.pkl") for n in names):
            fmt = "torch-zip"
        elif names and all(n.endswith(".npy") for n in names):
            fmt = "npz"
        covered: list[tuple[int, int]] = []
        seen: dict[str, int] = {}  # record name (below the archive folder) -> CRC of the bytes
        for info in infos:
            if info.is_dir():
                continue
            if not self.one_more_member():
                break
            mwhere = f"{where}!{info.filename}"
            covered.append(_member_span(data, info))
            if stat.S_ISLNK(info.external_attr >> 16):
                self.find(
                    mwhere, fmt, "ZIP-LINK", "member is a symbolic link (not followed)", "low"
                )
            if info.file_size > BOMB_MIN and info.file_size > BOMB_RATIO * max(
                info.compress_size, 1
            ):
                self.find(mwhere, fmt, "ARCHIVE-BOMB", "expands past the scanner's limits")
                self.incomplete.append(f"{mwhere}: a bomb, not expanded (not scanned)")
                continue
            content = self._zip_member(data, zf, info, mwhere, fmt)
            if content is None:
                continue
            seen[info.filename.split("/", 1)[-1]] = zlib.crc32(content)
            raw = fmt in ("torch-zip", "torchscript") and _is_torch_storage(info.filename)
            self.blob(content, mwhere, info.filename, depth + 1, raw=raw)
        hidden = self._hidden_members(data, covered, where, fmt, depth, broken=zf is None)
        if (
            data[:4] == b"PK\x03\x04"
            and (b"data.pkl" in data or b"constants.pkl" in data)
            and (hidden or _parsers_can_disagree(data, zf, names))
        ):
            # (torch is imported only then: its reader costs seconds of start-up, and on an
            # archive with one directory, one top folder and unique names the two agree)
            self._torch_records(data, where, seen, depth)
        return fmt

    def _zip_member(
        self, data: bytes, zf: zipfile.ZipFile | None, info: zipfile.ZipInfo, where: str, fmt: str
    ) -> bytes | None:
        encrypted = bool(info.flag_bits & 0x41)
        if zf is not None and not encrypted:
            try:
                if info.file_size > self.budget():
                    raise OverflowError
                with zf.open(info) as fh:
                    content: bytes = fh.read(self.budget() + 1)
                if len(content) > self.budget():
                    raise OverflowError
                self.expanded += len(content)
                return content
            except OverflowError:
                self.too_big(where, fmt, info.compress_size, max(info.file_size, self.budget()))
                return None
            except zipfile.BadZipFile as exc:
                msg = str(exc)
                if "CRC" in msg:
                    self.find(
                        where,
                        fmt,
                        "ZIP-CRC",
                        "CRC mismatch: the member was changed after it was written",
                    )
                else:
                    self.find(where, fmt, "ZIP-HEADER", f"{msg[:120]}: read from its local header")
            except (
                NotImplementedError,
                RuntimeError,
                zlib.error,
                EOFError,
                lzma.LZMAError,
                OSError,
                ValueError,
            ) as exc:
                self.find(
                    where,
                    fmt,
                    "ZIP-MEMBER",
                    f"member cannot be read normally ({str(exc)[:100]})",
                    "medium",
                )
        raw, problem = _raw_member(
            data, info.header_offset, info.compress_size, info.compress_type, self.budget()
        )
        if raw is not None:
            self.expanded += len(raw)
        if encrypted:
            self.incomplete.append(f"{where}: encrypted member, its content cannot be checked")
            if raw is None or info.compress_type != zipfile.ZIP_STORED:
                return None
            return raw  # stored with the flag set: the bytes may well be a plain pickle
        if _is_bomb(problem):
            self.too_big(where, fmt, _bomb_input(problem), self.budget())
            return None
        if raw is None:
            self.incomplete.append(f"{where}: {problem}")
            return None
        if problem:
            self.find(
                where, fmt, "ZIP-CORRUPT", f"{problem}; the bytes before it were scanned", "medium"
            )
        return raw

    def _hidden_members(
        self,
        data: bytes,
        covered: list[tuple[int, int]],
        where: str,
        fmt: str,
        depth: int,
        broken: bool,
    ) -> int:
        """Local entries the central directory does not list: relaxed readers still find them.

        Linear in the file: one pass finds every local-header signature, and one walk over the
        signatures and the sorted spans of the listed members sets each aside or reads it (an
        entry whose size is in a data descriptor ends at the next signature)."""
        signatures = []
        pos = data.find(b"PK\x03\x04")
        while pos != -1:
            signatures.append(pos)
            pos = data.find(b"PK\x03\x04", pos + 4)
        spans = sorted(covered)
        i = 0
        skip_until = -1
        shown = 0
        for n, pos in enumerate(signatures):
            if pos < skip_until:
                continue
            while i < len(spans) and spans[i][1] <= pos:
                i += 1
            if i < len(spans) and spans[i][0] <= pos:
                skip_until = spans[i][1]  # inside a listed member (and the spans it overlaps)
                continue
            header = _local_header(data, pos)
            if header is None:
                continue
            name, method, csize, start = header
            if not self.one_more_member():
                return shown
            if csize < 0 and method == zipfile.ZIP_STORED:
                # (sizes in a data descriptor: stored bytes end at the next signature; a
                # compressed stream ends by itself)
                nxt = signatures[n + 1] if n + 1 < len(signatures) else len(data)
                csize = max(nxt - start, 0)
            mwhere = f"{where}!{name or '?'}@{pos}"
            if not broken:
                shown += 1
                if shown <= 20:
                    self.find(
                        mwhere,
                        fmt,
                        "ZIP-HIDDEN-MEMBER",
                        "a local entry the central directory does not list",
                        "medium",
                    )
            content, problem = _raw_member(data, pos, csize, method, self.budget())
            if _is_bomb(problem):
                self.too_big(mwhere, fmt, _bomb_input(problem), self.budget())
            elif content is None:
                self.incomplete.append(f"{mwhere}: {problem}")
            else:
                self.expanded += len(content)
                self.blob(content, mwhere, name, depth + 1)
                skip_until = start + max(csize, 0)
        if shown > 20:
            self.find(
                where,
                fmt,
                "ZIP-HIDDEN-MEMBER",
                f"{shown} local entries the central directory does not list ({shown - 20} "
                "not shown one by one)",
                "medium",
            )
        return shown


def _parsers_can_disagree(data: bytes, zf: zipfile.ZipFile | None, names: list[str]) -> bool:
    """Whether Python's zipfile and torch's reader (miniz) can see different archives here:
    zipfile could not read the directory, a name appears twice (zipfile reads the last, miniz
    the first), members sit under more than one top folder, more than one end-of-directory
    record, or zipfile shifted every offset (bytes before the archive)."""
    if zf is None or len(set(names)) != len(names):
        return True
    if len({n.split("/", 1)[0] for n in names}) > 1:
        return True
    tail = data[-(1 << 16) - 22 :]
    if tail.count(b"PK\x05\x06") != 1 or tail.count(b"PK\x06\x06") > 1:
        return True
    end = tail.rfind(b"PK\x05\x06")
    offset = int.from_bytes(tail[end + 16 : end + 20], "little")
    if offset == 0xFFFFFFFF:  # (zip64, as torch.save writes: the offset is in that record)
        z64 = tail.rfind(b"PK\x06\x06")
        if z64 < 0:
            return True
        offset = int.from_bytes(tail[z64 + 48 : z64 + 56], "little")
    return bool(getattr(zf, "start_dir", offset) != offset)
