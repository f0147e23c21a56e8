"""Identification and decompression of containers, by each loader's own first-bytes test:
zip as torch and numpy test it, tar as tarfile reads a header, compressed streams by joblib's
own prefix table and read stream after stream as joblib does; zip local headers read as
lenient readers read them. Every format that applies is listed, not the first that fits.
"""

from __future__ import annotations

import bz2
import lzma
import re
import struct
import tarfile
import zipfile
import zlib
from typing import Any

from cea.security.safetensors_reading import _is_safetensors

BOMB_RATIO = 1_000  # expansion ratio that is a bomb once past BOMB_MIN bytes
BOMB_MIN = 64 * 2**20
_CHUNK = 1 << 16


def _is_tar(data: bytes) -> bool:
    if len(data) < 512:
        return False
    if data[257:262] == b"ustar":
        return True
    try:
        tarfile.TarInfo.frombuf(data[:512], "utf-8", "surrogateescape")
    except (tarfile.TarError, ValueError):
        return False
    return data[:1] != b"\0"


def _is_bz2(data: bytes) -> bool:
    return data[:3] == b"BZh" and data[3:4] in b"123456789" and data[4:10] == b"1AY&SY"


def _is_zlib(data: bytes) -> bool:
    return len(data) > 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0


# formats cea cannot open: the scan of such a file is incomplete
_UNSUPPORTED = (
    (b"7z\xbc\xaf\x27\x1c", "7z archive"),
    (b"Rar!\x1a\x07", "rar archive"),
    (b"\x28\xb5\x2f\xfd", "zstd stream"),
    (b"\x04\x22\x4d\x18", "lz4 frame"),
    (b"\x02\x21\x4c\x18", "lz4 legacy stream"),
    (b"MSCF", "cab archive"),
)

# formats that are data for every loader (named in the report only)
_KNOWN_DATA = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF8", "gif"),
    (b"%PDF", "pdf"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"GGUF", "gguf"),
)


def _container_kind(data: bytes) -> str | None:
    kinds = _container_kinds(data)
    return kinds[0] if kinds else None


def _container_kinds(data: bytes) -> list[str]:
    """Every container format whose loader would accept `data` by its own first-bytes test
    (zip as torch and numpy test it, npy, safetensors, the compressors of joblib's table, tar
    as tarfile reads a header), strongest first."""
    kinds = []
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        kinds.append("zip")
    if data[:6] == b"\x93NUMPY":
        kinds.append("npy")
    if _is_safetensors(data[:16]):
        kinds.append("safetensors")
    if data[:2] == b"ZF" and len(data) > 18:
        kinds.append("joblib-zfile")
    kinds += _compressor_kinds(data)
    if _is_tar(data):
        kinds.append("tar")
    for magic, kind in _UNSUPPORTED:
        if data.startswith(magic):
            kinds.append(kind)
    return kinds


# joblib's own compressor table (joblib.compressor._COMPRESSORS) when joblib is here: the name
# of the compressor and the prefix joblib._detect_compressor tests; the copy below (joblib
# 1.x) only when joblib cannot be imported
_JOBLIB_PREFIXES_COPY = (
    ("zlib", b"x"),
    ("gzip", b"\x1f\x8b"),
    ("bz2", b"BZ"),
    ("lzma", b"]\x00"),
    ("xz", b"\xfd7zXZ"),
    ("lz4", b'\x04"M\x18'),
)

_JOBLIB_FIRST_BYTES = b"x\x1fB]\xfd\x04"

_joblib_prefixes_cache: list[tuple[str, bytes]] = []


def _joblib_prefixes() -> list[tuple[str, bytes]]:
    if not _joblib_prefixes_cache:
        try:
            from joblib import compressor

            table = [
                (str(name), bytes(c.prefix))
                for name, c in compressor._COMPRESSORS.items()
                if getattr(c, "prefix", b"")
            ]
        except Exception:  # joblib missing or changed: its 1.x table
            table = list(_JOBLIB_PREFIXES_COPY)
        _joblib_prefixes_cache.extend(table)
    return _joblib_prefixes_cache


def _compressor_kinds(data: bytes) -> list[str]:
    """The compressed-stream formats that apply: joblib's table (it decompresses whatever
    starts with one of its prefixes), gzip/bz2/xz by their own magic, zlib and lzma-alone as
    the other loaders (pandas, torch readers of compressed files) take them."""
    kinds: list[str] = []
    if data[:1] and data[:1] in _JOBLIB_FIRST_BYTES:  # (joblib imported only for these)
        for name, prefix in _joblib_prefixes():
            if name in ("zlib", "gzip", "bz2", "lzma", "xz") and data.startswith(prefix):
                kinds.append(name)  # (lz4 and any other: cannot be opened here, see below)
    if data[:2] == b"\x1f\x8b" and "gzip" not in kinds:
        kinds.append("gzip")
    if _is_bz2(data) and "bz2" not in kinds:
        kinds.append("bz2")
    if data[:6] == b"\xfd7zXZ\x00" and "xz" not in kinds:
        kinds.append("xz")
    if _is_zlib(data) and "zlib" not in kinds:
        kinds.append("zlib")
    if data[:1] == b"\x5d" and "lzma" not in kinds and len(data) > 13:
        kinds.append("lzma")
    return kinds


def _data_kind(data: bytes) -> str:
    for magic, kind in _KNOWN_DATA:
        if data.startswith(magic):
            return kind
    head = data[:65536]
    if any(b < 0x20 and b not in (9, 10, 12, 13, 27) for b in head):
        return "other"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # (a multi-byte character cut at the 64 KiB boundary is still text)
        if exc.reason != "unexpected end of data":
            return "other"
    return "text"


def _decompressor(kind: str) -> Any:
    if kind == "gzip":
        return zlib.decompressobj(31)
    if kind in ("zlib", "joblib-zfile"):
        return zlib.decompressobj(15)
    if kind == "deflate":
        return zlib.decompressobj(-15)
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        return lzma.LZMADecompressor(lzma.FORMAT_XZ)
    if kind == "lzma":
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE)
    if kind == "zip-lzma":
        return zipfile._LZMADecompressor()  # type: ignore[attr-defined]
    raise ValueError(kind)


_ZLIB = type(zlib.decompressobj())


def inflate(
    kind: str, data: bytes | memoryview, budget: int, chunk: int = _CHUNK
) -> tuple[bytes, str | None]:
    """Decompress with a cap. Returns (output, problem): problem is None, "bomb after N bytes
    of input" (more than `budget` bytes of output from N of input), or why the stream broke — the output read before the break is kept,
    because a streaming loader has already handed it to the unpickler by then (a broken
    stream is read again in small pieces to recover as much of that output as possible)."""
    out, problem = _inflate(kind, data, budget, chunk)
    if problem and problem.startswith("corrupt") and chunk > 64:
        small = 64 if len(data) <= 16 * 2**20 else 4096
        if small < chunk:
            again, problem2 = _inflate(kind, data, budget, small)
            if len(again) > len(out):
                return again, problem2
    return out, problem


def _inflate(
    kind: str, data: bytes | memoryview, budget: int, chunk: int
) -> tuple[bytes, str | None]:
    out = bytearray()
    rest = memoryview(data)
    members = 0

    def bomb(d: Any, pos: int) -> tuple[bytes, str]:
        # (how much input gave that much output: the ratio that makes it a bomb)
        used = len(data) - len(rest) + pos - len(getattr(d, "unconsumed_tail", b""))
        return bytes(out), f"bomb after {max(used, 1)} bytes of input"

    while rest:
        d = _decompressor(kind)
        members += 1
        before = len(out)
        pos = 0
        try:
            while pos < len(rest):
                piece = rest[pos : pos + chunk]
                pos += len(piece)
                room = budget + 1 - len(out)
                if isinstance(d, _ZLIB):
                    out += d.decompress(piece, room)
                    if d.unconsumed_tail:
                        return bomb(d, pos)
                elif kind == "zip-lzma":  # (no max_length: pieces are small)
                    out += d.decompress(bytes(piece))
                else:
                    out += d.decompress(bytes(piece), room)
                    if not d.eof and not getattr(d, "needs_input", True):
                        return bomb(d, pos)
                if len(out) > budget:
                    return bomb(d, pos)
                if d.eof:
                    break
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
            if members > 1 and len(out) == before:
                break  # trailing bytes that are no stream: the loaders stop there too
            return bytes(out), f"corrupt stream ({str(exc)[:60]})"
        if not d.eof:
            if members > 1 and len(out) == before:
                break
            return bytes(out), "truncated stream"
        if kind in ("deflate", "zip-lzma", "joblib-zfile"):
            break  # (one stream; no copy of what follows it)
        # joblib's and Python's compressed files read every stream that follows, whatever it
        # looks like: so are they read here (a view: a file of many streams stays linear)
        used = pos - len(d.unused_data)
        if used <= 0:
            break
        rest = rest[used:]
    return bytes(out), None


def _is_bomb(problem: str | None) -> bool:
    return bool(problem) and str(problem).startswith("bomb")


def _bomb_input(problem: str | None) -> int | None:
    """The input that expanded past the budget ("bomb after N bytes of input"), if known."""
    m = re.match(r"bomb after (\d+) bytes", problem or "")
    return int(m.group(1)) if m else None


def _local_header(data: bytes, offset: int) -> tuple[str, int, int, int] | None:
    """(name, method, compressed size, data start) of the local header at `offset`."""
    head = data[offset : offset + 30]
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return None
    _v, flag, method, _t, _d, _crc, csize, _usize, nlen, xlen = struct.unpack(
        "<HHHHHIIIHH", head[4:]
    )
    start = offset + 30 + nlen + xlen
    if start > len(data) or method > 99 or nlen > 4096:
        return None
    name = data[offset + 30 : offset + 30 + nlen].decode("utf-8", "replace")
    if flag & 0x08 and csize == 0:
        csize = -1  # sizes in a data descriptor: read to the end of the stream
    return name, method, csize, start


def _member_span(data: bytes, info: zipfile.ZipInfo) -> tuple[int, int]:
    header = _local_header(data, info.header_offset)
    start = header[3] if header else info.header_offset + 30
    return info.header_offset, start + info.compress_size


def _raw_member(
    data: bytes, offset: int, csize: int, method: int, budget: int
) -> tuple[bytes | None, str | None]:
    """A member's bytes straight from its local header, flags and CRC ignored (as lenient
    readers do). Returns (content, problem)."""
    header = _local_header(data, offset)
    if header is None:
        return None, "no readable local header"
    _name, _method, local_size, start = header
    size = csize if csize >= 0 else local_size
    view = memoryview(data)
    raw = view[start:] if size < 0 else view[start : start + size]
    if method == zipfile.ZIP_STORED:
        if len(raw) > budget:
            return None, "bomb (stored)"
        return bytes(raw), None
    kinds = {
        zipfile.ZIP_DEFLATED: "deflate",
        zipfile.ZIP_BZIP2: "bz2",
        zipfile.ZIP_LZMA: "zip-lzma",
    }
    if method not in kinds:
        return None, f"compression method {method} cannot be opened here"
    out, problem = inflate(kinds[method], raw, budget)
    if problem == "truncated stream" and size < 0:
        problem = None
    return out, problem
