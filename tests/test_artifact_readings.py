"""Issue 28: the gate reads every file the way each loader does. Benign shapes that used to fail
(numpy's own header parser, numpy's bit generators, inert stdlib values), one severity table,
safe human output, budgets, and the formats identified by the loaders' own dispatch."""

from __future__ import annotations

import collections.abc
import json
import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest

from cea.security.artifacts import scan_file
from cea.security.pickles import severity_of

# ---- fair to benign files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype",
    [
        [("Oname", "<f8"), ("b", "<i4")],
        [("O", "<i8")],
        [("x", [("Object", "<f4")])],
        np.dtype({"names": ["Obj"], "formats": ["<u2"], "offsets": [4], "itemsize": 8}),
    ],
)
def test_structured_npy_whose_field_names_begin_with_O_passes(
    tmp_path: Path, dtype: object
) -> None:
    f = tmp_path / "s.npy"
    np.save(f, np.zeros(3, dtype=dtype))
    res = scan_file(f)
    assert res.findings == () and res.incomplete == (), res


def test_structured_npy_with_a_real_object_field_is_read_as_a_pickle(tmp_path: Path) -> None:
    f = tmp_path / "s.npy"
    np.save(f, np.array([(1, "a")], dtype=[("n", "<i4"), ("v", "O")]), allow_pickle=True)
    res = scan_file(f)
    assert [x.id for x in res.findings] == ["NUMPY-OBJECT"], res
    assert res.findings[0].severity == "info"


def test_npy_header_spelled_out_with_an_object_field_is_read(tmp_path: Path) -> None:
    """The dtype written as a list of fields, the object field not first: numpy's parser says
    hasobject, and the pickle after the header is read."""
    payload = b"cos\nsystem\n(S'true'\ntR."
    header = "{'descr': [('a', '<f8'), ('b', '|O')], 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + payload
    f = tmp_path / "x.npy"
    f.write_bytes(data)
    res = scan_file(f)
    assert any(x.severity == "critical" and "os.system" in x.message for x in res.findings), res


@pytest.mark.parametrize("compress", [0, 3])
def test_numpy_random_states_pass(tmp_path: Path, compress: int) -> None:
    f = tmp_path / "rng.joblib"
    joblib.dump(
        {
            "rs": np.random.RandomState(0),
            "g": np.random.default_rng(1),
            "bits": [np.random.Philox(2), np.random.SFC64(3), np.random.PCG64DXSM(4)],
            "mt": np.random.Generator(np.random.MT19937(5)),
        },
        f,
        compress=compress,
    )
    res = scan_file(f)
    assert [x for x in res.findings if x.severity not in ("info", "low")] == [], res.findings
    for proto in (2, 4, 5):
        p = tmp_path / f"rng{proto}.pkl"
        p.write_bytes(pickle.dumps([np.random.RandomState(0), np.random.default_rng()], proto))
        res = scan_file(p)
        assert [x for x in res.findings if x.severity not in ("info", "low")] == [], res.findings


def test_abcs_and_future_flags_are_low(tmp_path: Path) -> None:
    import __future__

    f = tmp_path / "x.pkl"
    f.write_bytes(pickle.dumps([collections.abc.Mapping, __future__.annotations], protocol=4))
    res = scan_file(f)
    assert res.findings and {x.severity for x in res.findings} == {"low"}, res.findings
    assert severity_of("collections.abc.Mapping") == "low"
    assert severity_of("__future__.annotations") == "low"
    # only the names themselves: what else those modules hold is not low
    assert severity_of("_collections_abc.sys.modules") not in ("info", "low")
    assert severity_of("collections.abc.Mapping.register") != "low"


def test_json_of_the_scan_is_plain(tmp_path: Path) -> None:
    f = tmp_path / "a.npy"
    np.save(f, np.arange(3))
    assert json.dumps([x.to_dict() for x in scan_file(f).findings]) == "[]"


# ---- severity: one table ----------------------------------------------------------------------


def test_every_entry_of_the_critical_table_is_critical() -> None:
    from cea.security.pickles import CRITICAL_CALLABLES, HARMLESS_GLOBALS, SAFE_GLOBALS

    assert len(CRITICAL_CALLABLES) > 200
    for key, reason in CRITICAL_CALLABLES.items():
        assert reason in ("runs a command", "runs code", "file I/O", "network I/O"), key
        name = key + "x" if key.endswith("_") else key
        assert severity_of(name) == "critical", key
        if not key.endswith("_"):  # a module's attributes, a callable's attributes
            assert severity_of(f"{key}.anything") == "critical", key
        assert key not in SAFE_GLOBALS and key not in HARMLESS_GLOBALS, key


@pytest.mark.parametrize(
    "dotted",
    [
        "uuid._get_command_stdout",
        "_aix_support._read_cmd_output",
        "_osx_support._read_output",
        "_pyrepl.pager.pipe_pager",
        "test.support.script_helper.assert_python_ok",
        "test.support.script_helper.run_python_until_end",
        "_interpreters.run_string",
        "_xxsubinterpreters.run_string",
        "torch.storage._load_from_bytes",
        "nntplib.NNTP",
        "smtplib.SMTP",
        "poplib.POP3",
        "imaplib.IMAP4",
        "ftplib.FTP",
        "telnetlib.Telnet",
        "uuid.os.system",  # a module reached through an attribute
        "__main__.x",
        "_socket.socket",
        "pandas.read_pickle",
    ],
)
def test_callables_that_run_commands_code_or_io_are_critical(dotted: str) -> None:
    assert severity_of(dotted) == "critical"


def test_harmless_and_allowlisted_names_keep_their_rating() -> None:
    assert severity_of("pathlib.PosixPath") == "low"
    assert severity_of("uuid.UUID") == "low"
    assert severity_of("collections.OrderedDict") == "info"
    assert severity_of("torch._utils._rebuild_tensor_v2") == "info"
    assert severity_of("sklearn.linear_model._logistic.LogisticRegression") == "high"


# ---- safe output ------------------------------------------------------------------------------

_NASTY = "x\x1b[2J\x1b]0;owned\x07\u202egpj.pkl\r\nok"


def test_names_with_escape_characters_are_escaped_for_people_and_exact_for_machines(
    cli, tmp_path: Path
) -> None:
    folder = tmp_path / "scan"
    folder.mkdir()
    (folder / _NASTY).write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    shown = "x\\x1b[2J\\x1b]0;owned\\x07\\u202egpj.pkl\\x0d\\x0aok"
    for args in ((), ("--format", "markdown")):
        res = cli("audit", "artifacts", str(folder), *args)
        assert res.exit_code == 1, res.stdout
        out = res.stdout + res.stderr
        assert not any(c in out for c in "\x1b\x07\u202e\r"), repr(out)
        if args:  # (the terminal table may cut the name short)
            assert shown in out
    from cea.cli.audit import _text

    assert _text(_NASTY + "[bold]") == shown + "\\[bold]"
    res = cli("audit", "artifacts", str(folder), "--json")
    locations = [f["location"] for f in json.loads(res.stdout)["results"][0]["findings"]]
    assert str(folder / _NASTY) in locations
    res = cli("audit", "artifacts", str(folder), "--format", "sarif")
    sarif = json.loads(res.stdout)
    names = [
        loc["logicalLocations"][0]["name"]
        for run in sarif["runs"]
        for r in run["results"]
        for loc in r["locations"]
    ]
    assert str(folder / _NASTY) in names


def test_printable_leaves_plain_text_alone() -> None:
    from cea.security.findings import printable

    assert printable("a b/c.pkl — é 模型") == "a b/c.pkl — é 模型"
    assert printable("a\tb\u200bc\U000e0041") == "a\\x09b\\u200bc\\U000e0041"


# ---- budgets and linear-time searches ---------------------------------------------------------


def _zip_after_signatures(members: int, signatures: int) -> bytes:
    """`signatures` local-header signatures before a zip of `members` members: none of them is
    covered by a listed member, so each must be looked at once."""
    import io
    import zipfile

    buf = io.BytesIO()
    buf.write(b"PK\x03\x04" * signatures)
    with zipfile.ZipFile(buf, "a") as zf:
        for i in range(members):
            zf.writestr(f"m{i}.txt", b"hello")
    return buf.getvalue()


def test_the_search_for_hidden_zip_entries_is_linear(tmp_path: Path) -> None:
    """3,000 members × 300,000 signatures: members × signatures was ~10^9 steps (minutes);
    one pass over each is well under a second of work."""
    import time

    f = tmp_path / "many.zip"
    f.write_bytes(_zip_after_signatures(3_000, 300_000))
    t = time.process_time()
    res = scan_file(f)
    assert time.process_time() - t < 10, "the hidden-entry search is not linear"
    assert not [x for x in res.findings if x.severity in ("high", "critical")], res.findings


def test_member_budget_makes_the_scan_incomplete(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cea.security.scan_base as art

    monkeypatch.setattr(art, "MAX_MEMBERS", 50)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "many.zip").write_bytes(_zip_after_signatures(120, 0))
    res = cli("audit", "artifacts", str(folder), "--json")
    assert res.exit_code == 7, res.stdout
    incomplete = json.loads(res.stdout)["results"][0]["incomplete"]
    assert any(
        "many.zip" in t and "members budget exhausted" in t and "50 archive members" in t
        for t in incomplete
    ), incomplete


def test_time_budget_makes_the_scan_incomplete(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cea.security.scan_base as art

    monkeypatch.setattr(art, "FILE_SECONDS", 0.0)
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "a.zip").write_bytes(_zip_after_signatures(5, 0))
    res = cli("audit", "artifacts", str(folder), "--json")
    assert res.exit_code == 7, res.stdout
    incomplete = json.loads(res.stdout)["results"][0]["incomplete"]
    assert any("a.zip" in t and "time budget exhausted (limit 0 s" in t for t in incomplete)


def test_byte_budgets_make_the_scan_incomplete_and_a_bomb_a_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip
    import os

    import cea.security.scan_base as art

    monkeypatch.setattr(art, "MAX_EXPANDED", 1 << 16)
    noise = tmp_path / "noise.bin.gz"  # expands past the budget at a ratio of ~1: not a bomb
    noise.write_bytes(gzip.compress(os.urandom(1 << 17)))
    res = scan_file(noise)
    assert any("bytes budget exhausted" in t for t in res.incomplete), res
    assert not [x for x in res.findings if x.id == "ARCHIVE-BOMB"]
    bomb = tmp_path / "zeros.gz"
    bomb.write_bytes(gzip.compress(b"\0" * (1 << 24)))
    res = scan_file(bomb)
    assert any("bytes budget exhausted" in t for t in res.incomplete), res
    assert [x for x in res.findings if x.id == "ARCHIVE-BOMB"]
    monkeypatch.setattr(art, "MAX_FILE_BYTES", 100)
    res = scan_file(noise)
    assert res.incomplete and "byte budget exhausted" in res.incomplete[0]


def test_many_gzip_members_are_read_in_linear_time(tmp_path: Path) -> None:
    import gzip
    import time

    member = gzip.compress(b"x" * 10)
    f = tmp_path / "many.gz"
    f.write_bytes(member * 50_000)
    t = time.process_time()
    res = scan_file(f)
    assert time.process_time() - t < 10
    assert not res.incomplete, res


# ---- identified by the loaders' own code ------------------------------------------------------


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_keras_lambda_hidden_by_json_escapes_is_found(tmp_path: Path) -> None:
    escaped = b'{"class_name": "Functional", "config": {"layers": [{"cl\\u0061ss_name": "L\\u0061mbda"}]}}'
    assert json.loads(escaped)["config"]["layers"][0]["class_name"] == "Lambda"
    keras = tmp_path / "model.keras"
    keras.write_bytes(_zip_bytes({"config.json": escaped, "metadata.json": b"{}"}))
    assert any(f.id == "KERAS-LAMBDA" for f in scan_file(keras).findings)
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64 + escaped + b"\0" * 8)
    assert any(f.id == "KERAS-LAMBDA" for f in scan_file(h5).findings)
    plain = tmp_path / "config.json"
    plain.write_bytes(b'{"class_name": "D\\u0065nse", "note": "Lambda"}')
    assert scan_file(plain).findings == ()


def test_auto_map_naming_code_is_a_finding(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "model_type": "custom",
                "auto_map": {
                    "AutoConfig": "configuration_x.XConfig",
                    "AutoModel": "someone/repo--modeling_x.XModel",
                },
            }
        )
    )
    (tmp_path / "modeling_x.py").write_text("import os\n")
    found = [f for f in scan_file(cfg).findings if f.id == "HF-REMOTE-CODE"]
    assert found and "modeling_x.py" in found[0].message and found[0].severity == "high"
    tok = tmp_path / "tokenizer_config.json"
    tok.write_text(json.dumps({"auto_map": {"AutoTokenizer": ["tokenization_x.T", None]}}))
    assert any(f.id == "HF-REMOTE-CODE" for f in scan_file(tok).findings)
    ok = tmp_path / "ok" / "config.json"
    ok.parent.mkdir()
    ok.write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    assert scan_file(ok).findings == ()


def test_torchscript_is_recognised_by_torch_dispatch_not_a_class_name(tmp_path: Path) -> None:
    """constants.pkl in the records: torch.load dispatches to torch.jit.load, whatever the
    classes in data.pkl are called."""
    benign = pickle.dumps({"w": 1}, protocol=2)
    for members in (
        {"m/data.pkl": benign, "m/constants.pkl": pickle.dumps((), protocol=2)},
        {"m/data.pkl": benign, "m/code/__torch__.py": b"def forward(self): ...\n"},
    ):
        f = tmp_path / "model.pt"
        f.write_bytes(_zip_bytes(members))
        res = scan_file(f)
        assert any(x.id == "TORCHSCRIPT" and x.severity == "high" for x in res.findings), res


_OS_SYSTEM = b"cos\nsystem\n(S'true'\ntR."


def _tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize(
    "first_name",
    [
        "PK\x03\x04junk",
        "\x93NUMPY\x01\x00x",
        "\x10\x00\x00\x00\x00\x00\x00\x00{",
        "\x1f\x8bx",
        "BZh9",
    ],
)
def test_tar_whose_first_member_looks_like_another_format_is_read_as_tar(
    tmp_path: Path, first_name: str
) -> None:
    import tarfile

    data = _tar_bytes([(first_name, b"hello"), ("model/data.pkl", _OS_SYSTEM)])
    f = tmp_path / "model.tar"
    f.write_bytes(data)
    with tarfile.open(f) as tf:  # what the loader sees
        assert tf.getnames()[1] == "model/data.pkl"
    res = scan_file(f)
    assert any(x.severity == "critical" and "os.system" in x.message for x in res.findings), res


def test_a_file_labelled_safetensors_that_is_also_a_pickle_is_read_as_one(tmp_path: Path) -> None:
    data = b"(S'aaaaa{'\n0" + _OS_SYSTEM  # byte 8 is "{": it starts like safetensors
    assert data[8:9] == b"{"
    f = tmp_path / "model.safetensors"
    f.write_bytes(data)
    res = scan_file(f)
    ids = {x.id for x in res.findings}
    assert "POLYGLOT" in ids and "PICKLE-GLOBAL" in ids, res
    assert any(x.severity == "critical" for x in res.findings)


def test_a_real_safetensors_file_with_a_header_that_reads_as_N_STOP_passes(tmp_path: Path) -> None:
    """A header length whose first bytes are "N." is a pickle that does nothing."""
    import struct

    from safetensors.numpy import save_file

    f = tmp_path / "w.safetensors"
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(f))
    data = f.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + n].rstrip(b" ")
    want = 0x2E4E  # b"N." little-endian
    padded = header + b" " * (want - len(header))
    f.write_bytes(struct.pack("<Q", want) + padded + data[8 + n :])
    assert f.read_bytes()[:2] == b"N."
    from safetensors.numpy import load_file

    assert load_file(str(f))["w"].shape == (2,)
    res = scan_file(f)
    assert res.findings == () and res.incomplete == (), res


def test_joblib_compressors_by_joblibs_own_prefixes_and_every_stream(tmp_path: Path) -> None:
    import bz2
    import lzma
    import zlib

    # (each verified to run its payload under joblib.load; xz: the payload in a second stream)
    cases = {
        "zlib": zlib.compress(_OS_SYSTEM),
        "lzma": lzma.compress(_OS_SYSTEM, format=lzma.FORMAT_ALONE),
        "bz2": bz2.compress(_OS_SYSTEM),
        "xz": lzma.compress(b"N0") + lzma.compress(_OS_SYSTEM),
    }
    for name, data in cases.items():
        f = tmp_path / f"m_{name}.joblib"
        f.write_bytes(data)
        res = scan_file(f)
        assert any(x.severity == "critical" for x in res.findings), (name, res)


def _legacy_torch_tar(views: bytes) -> bytes:
    """torch's legacy tar layout: one float storage of 2 elements, its raw bytes, then the
    storage-views pickle `views`; no tensors; a plain pickle."""
    import struct

    import torch

    storages = (
        pickle.dumps(1, protocol=2)
        + pickle.dumps(("0", "cpu", torch.FloatStorage), protocol=2)
        + struct.pack("<q", 2)
        + struct.pack("<2f", 1.0, 2.0)
        + views
    )
    return _tar_bytes(
        [
            ("storages", storages),
            ("tensors", pickle.dumps(0, protocol=2)),
            ("pickle", pickle.dumps({"step": 3}, protocol=2)),
        ]
    )


def test_torch_legacy_tar_is_read_past_the_raw_storage_bytes(tmp_path: Path) -> None:
    import subprocess
    import sys

    marker = tmp_path / "PWNED"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR0]q\x00.".encode()
    f = tmp_path / "old.pt"
    f.write_bytes(_legacy_torch_tar(payload))
    res = scan_file(f)
    assert any(x.severity == "critical" and "os.system" in x.message for x in res.findings), res
    # the file is what it claims: torch.load runs the payload after the storage bytes
    code = f"import torch; print(torch.load({str(f)!r}, weights_only=False))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert marker.exists(), out.stderr[-500:]
    benign = tmp_path / "benign.pt"
    benign.write_bytes(_legacy_torch_tar(pickle.dumps([], protocol=2)))
    res = scan_file(benign)
    assert [x for x in res.findings if x.severity not in ("info", "low")] == [], res


def test_joblib_structured_arrays_are_sized_by_numpy_and_pass(tmp_path: Path) -> None:
    plain = np.dtype([("a", "<f8"), ("O", "<i4")])
    with_objects = np.dtype([("a", "<f8"), ("b", "O")])
    nested = np.dtype([("x", [("y", "<i2"), ("z", "O")])])
    f = tmp_path / "s.joblib"
    joblib.dump(
        {
            "s": np.zeros(3, dtype=plain),
            "t": np.array([(1.0, "x")], dtype=with_objects),
            "u": np.zeros(2, dtype=nested),
            "after": [1, 2, 3],
        },
        f,
    )
    res = scan_file(f)
    assert [x for x in res.findings if x.severity not in ("info", "low")] == [], res
    assert res.incomplete == ()


def test_a_reading_that_stops_on_an_unmodelled_shape_is_incomplete() -> None:
    from cea.security.pickles import analyze_pickle

    stream = (
        b"\x80\x04cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81"
        b"}(\x8c\x05shape)\x8c\x05dtypecnumpy\ndtype\n)Rub."
    )
    report = analyze_pickle(stream)
    assert any("does not model" in t for t in report.incomplete), report


def test_the_archive_is_also_read_by_torchs_own_zip_reader(tmp_path: Path) -> None:
    """Two members named data.pkl: zipfile's read() takes the last, torch's reader (miniz)
    the first — the one torch.load runs. Both are scanned and the difference is a finding."""
    import io
    import warnings
    import zipfile

    import torch

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (zipfile warns about the duplicate name)
        zf.writestr("archive/data.pkl", _OS_SYSTEM)
        zf.writestr("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2))
        zf.writestr("archive/version", b"3\n")
    f = tmp_path / "dup.pt"
    f.write_bytes(buf.getvalue())
    reader = torch._C.PyTorchFileReader(io.BytesIO(f.read_bytes()))
    assert reader.get_record("data.pkl") == _OS_SYSTEM  # what torch.load would run
    res = scan_file(f)
    ids = {x.id for x in res.findings}
    assert {"ZIP-PARSER-DIFFERENCE", "PICKLE-GLOBAL"} <= ids, res
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(3)}, plain)
    assert scan_file(plain).findings == ()
