"""`cea audit artifacts`: crafted malicious files are flagged (and never run); benign pass."""

from __future__ import annotations

import collections
import functools
import json
import os
import pickle
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from cea.audit.artifacts import identify, scan_path
from cea.security.signed_cache import load_or_create_key, mark_cache, sign


def _payload(marker: Path) -> object:
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return Payload()


def _st(header: bytes | dict, body: bytes = b"") -> bytes:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


def _cmd(marker: Path) -> bytes:
    return f"touch {marker}".encode()


def _binunicode(b: bytes) -> bytes:
    return b"X" + struct.pack("<I", len(b)) + b


def _reduce_pickle(d: Path, m: Path, *, protocol: int) -> None:
    (d / "x.pkl").write_bytes(pickle.dumps(_payload(m), protocol=protocol))


def _joblib_payload(d: Path, m: Path, *, compress: str) -> None:
    joblib.dump({"a": np.arange(10.0), "b": _payload(m)}, d / "x.joblib", compress=(compress, 3))


MALICIOUS: dict[str, Callable[[Path, Path], None]] = {
    **{f"reduce_protocol_{p}": functools.partial(_reduce_pickle, protocol=p) for p in range(6)},
    "inst": lambda d, m: (d / "x.pkl").write_bytes(b"(S'" + _cmd(m) + b"'\nios\nsystem\n."),
    "obj": lambda d, m: (d / "x.pkl").write_bytes(b"(cos\nsystem\nS'" + _cmd(m) + b"'\no."),
    "newobj": lambda d, m: (d / "x.pkl").write_bytes(
        b"\x80\x02csubprocess\nPopen\n]q\x00(X\x05\x00\x00\x00touch"
        + _binunicode(str(m).encode())
        + b"e\x85\x81."
    ),
    "gadget_getattr_import": lambda d, m: (d / "x.pkl").write_bytes(
        b"\x80\x02cbuiltins\ngetattr\ncbuiltins\n__import__\nX\x02\x00\x00\x00os\x85R"
        b"X\x06\x00\x00\x00system\x86R" + _binunicode(_cmd(m)) + b"\x85R."
    ),
    "stack_global_computed": lambda d, m: (d / "x.pkl").write_bytes(
        b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00cbuiltins\nstr\n)R\x8c\x06system\x93)R."
    ),
    "nested_pickle": lambda d, m: (d / "x.pkl").write_bytes(
        b"\x80\x04c_pickle\nloads\nC"
        + bytes([len(p := pickle.dumps(_payload(m), protocol=4))])
        + p
        + b"\x85R."
    ),
    "torch_zip": lambda d, m: torch.save({"w": torch.zeros(2), "p": _payload(m)}, d / "model.pt"),
    "torch_legacy": lambda d, m: torch.save(
        {"w": torch.zeros(2), "p": _payload(m)},
        d / "model.pt",
        _use_new_zipfile_serialization=False,
    ),
    "joblib_after_array_bytes": lambda d, m: joblib.dump(
        {"a": np.arange(10.0), "b": _payload(m)}, d / "x.joblib"
    ),
    **{
        f"joblib_{c}": functools.partial(_joblib_payload, compress=c)
        for c in ("zlib", "gzip", "bz2", "xz", "lzma")
    },
    "joblib_object_array": lambda d, m: joblib.dump(
        {"o": np.array([_payload(m)], dtype=object)}, d / "x.joblib"
    ),
    "numpy_object_array": lambda d, m: np.save(
        d / "x.npy", np.array([_payload(m)], dtype=object), allow_pickle=True
    ),
    "npz_object_array": lambda d, m: np.savez(
        d / "x.npz", a=np.zeros(3), b=np.array([_payload(m)], dtype=object)
    ),
    "misleading_safetensors_name": lambda d, m: (d / "model.safetensors").write_bytes(
        pickle.dumps(_payload(m), protocol=4)
    ),
    "misleading_json_name": lambda d, m: (d / "config.json").write_bytes(
        pickle.dumps(_payload(m), protocol=2)
    ),
    "truncated_stream": lambda d, m: (d / "x.pkl").write_bytes(
        pickle.dumps({"a": list(range(50))}, protocol=4)[:60]
    ),
    "truncated_torch_zip_pickle": lambda d, m: _truncated_torch(d),
    "safetensors_bad_json": lambda d, m: (d / "m.safetensors").write_bytes(_st(b"{not json")),
    "safetensors_duplicate_keys": lambda d, m: (d / "m.safetensors").write_bytes(
        _st(
            b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
            b"\0" * 4,
        )
    ),
    "safetensors_unknown_dtype": lambda d, m: (d / "m.safetensors").write_bytes(
        _st({"a": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)
    ),
    "safetensors_offsets_outside": lambda d, m: (d / "m.safetensors").write_bytes(
        _st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 4)
    ),
    "safetensors_overlap": lambda d, m: (d / "m.safetensors").write_bytes(
        _st(
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
        )
    ),
    "safetensors_gap": lambda d, m: (d / "m.safetensors").write_bytes(
        _st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8)
    ),
    "safetensors_huge_header": lambda d, m: (d / "m.safetensors").write_bytes(
        struct.pack("<Q", 2**40) + b"{" + b" " * 10
    ),
}


def _truncated_torch(d: Path) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(d / "model.pt", "w") as out:
        for name in src.namelist():
            data = src.read(name)
            out.writestr(name, data[: len(data) // 2] if name.endswith("data.pkl") else data)


@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_malicious_file_is_flagged_and_never_runs(cli, tmp_path: Path, name: str) -> None:
    folder = tmp_path / name
    folder.mkdir()
    marker = tmp_path / "PWNED"
    MALICIOUS[name](folder, marker)
    res = cli("audit", "artifacts", str(folder), "--json")
    assert res.exit_code == 1, res.stdout
    findings = json.loads(res.stdout)["results"][0]["findings"]
    assert findings and all(f["check"] == "artifacts" for f in findings)
    assert all(f["extra"]["format"] for f in findings)
    assert not marker.exists(), "a payload ran"


def test_offending_globals_are_named(tmp_path: Path) -> None:
    MALICIOUS["gadget_getattr_import"](tmp_path, tmp_path / "m")
    _, findings, _ = scan_path([tmp_path])
    names = {g for f in findings for g in f.extra.get("globals", [])}
    assert {"builtins.getattr", "builtins.__import__"} <= names
    assert all(f.severity == "critical" for f in findings if f.id == "PICKLE-GLOBAL")


def _benign(d: Path) -> None:
    save_file(
        {"w": torch.zeros(3, 2), "b": torch.ones(2, dtype=torch.int64)}, str(d / "m.safetensors")
    )
    torch.save(
        collections.OrderedDict(w=torch.randn(2, 3), b=torch.zeros(2, dtype=torch.long)),
        d / "sd.pt",
    )
    torch.save({"w": torch.randn(2)}, d / "legacy.pt", _use_new_zipfile_serialization=False)
    joblib.dump({"a": np.arange(10.0), "i": np.arange(4)}, d / "arrays.joblib")
    np.save(d / "x.npy", np.arange(5.0))
    (d / "notes.txt").write_text("plain text\n")


def test_benign_files_pass(cli, tmp_path: Path) -> None:
    _benign(tmp_path)
    res = cli("audit", "artifacts", str(tmp_path), "--json")
    assert res.exit_code == 0, res.stdout
    results, findings, _ = scan_path([tmp_path])
    formats = {r.path.name: r.format for r in results}
    assert formats["m.safetensors"] == "safetensors" and formats["sd.pt"] == "torch-zip"
    assert (
        formats["legacy.pt"] == "torch-legacy"
        and formats["x.npy"] == "npy"
        and formats["notes.txt"] == "text"
    )
    assert findings == []


def test_identify_by_content_not_extension(tmp_path: Path) -> None:
    assert identify(pickle.dumps({"a": 1}, protocol=0)) == "pickle"
    assert identify(b'{"json": true}') == "text"
    assert identify(b"[PAD]\n[UNK]\n") == "text"
    assert identify(b"\x00\x01binary") == "other"


@pytest.fixture(scope="module")
def run_folder(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cea.config import load_config
    from cea.train.run import run_training

    runs = tmp_path_factory.mktemp("runs")
    cfg = load_config(
        "tiny",
        [
            f"model.backbone={tiny_backbone}",
            f"output.runs_dir={runs}",
            "output.run_name=r",
            "train.epochs=1",
        ],
    )
    return run_training(cfg, runs / "r").run_dir


def test_cea_run_folder_passes(cli, run_folder: Path) -> None:
    res = cli("audit", "artifacts", str(run_folder), "--json")
    assert res.exit_code == 0, res.stdout
    assert any("manifest verified" in n for n in json.loads(res.stdout)["results"][0]["notes"])


def test_one_changed_weight_byte_fails_the_manifest(cli, run_folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_folder, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    res = cli("audit", "artifacts", str(copy), "--json")
    assert res.exit_code == 1
    ids = {
        (f["id"], Path(f["location"]).name)
        for f in json.loads(res.stdout)["results"][0]["findings"]
    }
    assert ("MANIFEST-MISMATCH", "model.safetensors") in ids


def test_cache_entries_need_a_valid_hmac(cli, tmp_path: Path) -> None:
    key_file = tmp_path / "config" / "cache.key"
    key = load_or_create_key(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    cache = tmp_path / "cache"
    mark_cache(cache)
    entry = cache / "tfidf.joblib"
    joblib.dump({"idf": np.arange(4.0)}, entry)
    sign(entry, key)
    res = cli("audit", "artifacts", str(cache), "--cache-key", str(key_file), "--json")
    assert res.exit_code == 0, res.stdout
    # an entry replaced by another pickle (even a harmless one) no longer verifies
    joblib.dump({"idf": np.arange(5.0)}, entry)
    res = cli("audit", "artifacts", str(cache), "--cache-key", str(key_file), "--json")
    assert res.exit_code == 1
    assert json.loads(res.stdout)["results"][0]["findings"][0]["id"] == "CACHE-UNVERIFIED"
    # without the key nothing in a cache can be verified
    sign(entry, key)
    assert cli("audit", "artifacts", str(cache), "--json").exit_code == 1


def test_world_readable_key_is_refused(tmp_path: Path) -> None:
    from cea.errors import IntegrityError

    key_file = tmp_path / "cache.key"
    load_or_create_key(key_file)
    key_file.chmod(0o644)
    with pytest.raises(IntegrityError):
        load_or_create_key(key_file)


def test_sarif_output_for_artifacts(cli, tmp_path: Path) -> None:
    MALICIOUS["reduce_protocol_4"](tmp_path, tmp_path / "m")
    out = tmp_path / "a.sarif"
    assert (
        cli(
            "audit", "artifacts", str(tmp_path), "--format", "sarif", "--output", str(out)
        ).exit_code
        == 1
    )
    assert json.loads(out.read_text())["runs"][0]["results"][0]["ruleId"] == "PICKLE-GLOBAL"


def test_text_files_starting_like_a_global_opcode_are_not_pickles() -> None:
    from cea.security.pickles import looks_like_pickle

    assert not looks_like_pickle(b"channels:\n- conda-forge\ndependencies:\n- python=3.11\n")
    assert not looks_like_pickle(b"import mlflow\nfrom x import y\n")
    assert looks_like_pickle(b"cos\nsystem\n(S'touch x'\ntR")  # truncated, still refused
