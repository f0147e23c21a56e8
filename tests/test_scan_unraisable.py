"""An error Python can only print while a file is scanned (raised in a finalizer, e.g.
"deallocated bytearray object has exported buffers") makes that file incomplete (exit 7),
never a pass with noise on stderr."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest


class _RaisesOnDel:
    def __del__(self) -> None:
        raise SystemError("deallocated bytearray object has exported buffers")


def test_an_error_raised_in_a_finalizer_is_recorded() -> None:
    from cea.security.artifacts import unraisable_recorded

    seen: list[str] = []
    with unraisable_recorded(seen):
        obj = _RaisesOnDel()
        del obj
    assert seen == ["SystemError: deallocated bytearray object has exported buffers"]


def test_a_scan_that_hits_one_is_incomplete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault injection: the reading leaves behind an object whose finalizer fails, as the
    bytearray of the reported torch checkpoint did."""
    from cea.security import artifacts

    path = tmp_path / "state.pkl"
    path.write_bytes(pickle.dumps({"step": 3}, protocol=4))
    clean = artifacts.scan_file(path)
    assert clean.incomplete == ()

    real_blob = artifacts._Scanner.blob
    leftovers: list[object] = []

    def blob(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        left = _RaisesOnDel()  # freed when this reading returns, inside the scan
        leftovers.append(id(left))
        return real_blob(self, *args, **kwargs)

    monkeypatch.setattr(artifacts._Scanner, "blob", blob)
    res = artifacts.scan_file(path)
    assert leftovers and len(res.incomplete) == 1
    assert "could not finish (SystemError: deallocated bytearray" in res.incomplete[0]
    assert "SystemError" not in capsys.readouterr().err  # recorded, not printed
