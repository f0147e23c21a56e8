"""`cea audit`: exit codes, vulns offline (OSV) and online-but-unreachable, SBOM, policy."""

from __future__ import annotations

import json
import shutil
import zipfile
from datetime import date
from pathlib import Path

import pytest

from cea.audit.model import AuditReport, CheckResult, Finding
from cea.audit.osv import OsvDatabase, affects
from cea.audit.policy import Policy, Waiver, apply_policy, load_policy
from cea.audit.report import to_markdown, to_sarif
from cea.audit.sbom import drift, validate_sbom
from cea.audit.vulns import pinned_requirements

REPO = Path(__file__).resolve().parents[1]
OSV_DIR = REPO / "tests" / "data" / "osv"


# ---- OSV semantics ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "version", "hit"),
    [
        ([{"introduced": "0"}, {"fixed": "2.6.0"}], "2.5.1", True),
        ([{"introduced": "0"}, {"fixed": "2.6.0"}], "2.6.0", False),
        ([{"introduced": "0"}, {"fixed": "2.6.0"}], "2.13.0+cpu", False),
        (
            [{"introduced": "0"}, {"fixed": "2.6.0"}],
            "2.5.1+cu121",
            True,
        ),  # local label: public version
        ([{"introduced": "1.0"}, {"last_affected": "1.4"}], "1.4", True),
        ([{"introduced": "1.0"}, {"last_affected": "1.4"}], "1.4.1", False),
        ([{"introduced": "1.0"}, {"last_affected": "1.4"}], "0.9", False),
        (
            [{"introduced": "1.0"}, {"fixed": "1.2"}, {"introduced": "2.0"}, {"fixed": "2.1"}],
            "2.0.5",
            True,
        ),
        (
            [{"introduced": "1.0"}, {"fixed": "1.2"}, {"introduced": "2.0"}, {"fixed": "2.1"}],
            "1.5",
            False,
        ),
        ([{"introduced": "2.0.0rc1"}, {"fixed": "2.0.1"}], "2.0.0", True),
    ],
)
def test_ecosystem_ranges(events, version, hit) -> None:
    aff = {
        "package": {"ecosystem": "PyPI", "name": "x"},
        "ranges": [{"type": "ECOSYSTEM", "events": events}],
    }
    assert affects(aff, version) is hit


def test_semver_ranges_and_explicit_versions() -> None:
    aff = {
        "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.2.0"}, {"fixed": "1.3.0-rc.1"}]}]
    }
    assert affects(aff, "1.2.9")
    assert not affects(aff, "1.3.0")
    assert affects({"versions": ["0.4.2"]}, "0.4.2+local")
    assert not affects({"ranges": [{"type": "GIT", "events": [{"introduced": "abc"}]}]}, "1.0")


def test_osv_database_folder_and_zip(tmp_path: Path) -> None:
    db = OsvDatabase.load(OSV_DIR)
    assert db.records == 1 and db.date() == "2025-04-23"
    assert [a.id for a in db.lookup("Torch", "2.5.1")] == ["GHSA-53q9-r3pm-6pq6"]
    assert db.lookup("torch", "2.13.0+cpu") == []
    zpath = tmp_path / "osv.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(OSV_DIR / "GHSA-53q9-r3pm-6pq6.json", "GHSA-53q9-r3pm-6pq6.json")
    assert OsvDatabase.load(zpath).lookup("torch", "2.0.0")[0].severity == "critical"


def test_pinned_requirements(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text(
        "# c\ntorch==2.5.1 \\\n    --hash=sha256:abc\nNumPy==2.0.0 ; python_version>'3'\nrequests>=2\n-e .\n"
    )
    pins, unpinned = pinned_requirements(req)
    assert pins == {"torch": "2.5.1", "numpy": "2.0.0"}
    assert unpinned == ["requests>=2"]


# ---- vulns through the CLI -------------------------------------------------------------


def test_vulns_flags_torch_251_with_the_advisory(cli, tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("torch==2.5.1\nnumpy==2.4.6\n")
    res = cli(
        "audit", "vulns", str(REPO), "--osv-db", str(OSV_DIR), "-r", str(req), "--format", "json"
    )
    assert res.exit_code == 1, res.stderr
    report = json.loads(res.stdout)
    (finding,) = report["results"][0]["findings"]
    assert finding["id"] == "GHSA-53q9-r3pm-6pq6"
    assert finding["location"] == "torch==2.5.1"
    assert "CVE-2025-32434" in finding["message"]
    assert "2025-04-23" in report["results"][0]["notes"][0]  # the database's date is reported


def test_vulns_real_environment_passes_for_torch(cli) -> None:
    res = cli("audit", "vulns", str(REPO), "--osv-db", str(OSV_DIR), "--json")
    assert res.exit_code == 0, res.stdout
    assert json.loads(res.stdout)["results"][0]["status"] == "passed"


def test_vulns_offline_without_database_is_incomplete(cli, monkeypatch) -> None:
    # make "offline" certain wherever the suite runs: pip-audit's service is unreachable
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    res = cli("audit", "vulns", str(REPO))
    assert res.exit_code == 7, res.stdout
    assert "could not be audited" in res.stdout or "pip-audit" in res.stdout
    assert "--osv-db" in res.stdout


def test_unpinned_requirement_makes_vulns_incomplete(cli, tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text("torch>=2.0\n")
    res = cli("audit", "vulns", str(REPO), "--osv-db", str(OSV_DIR), "-r", str(req), "--json")
    assert res.exit_code == 7
    assert "not pinned" in json.dumps(json.loads(res.stdout))


# ---- SAST and policy -------------------------------------------------------------------


def test_sast_on_src_has_no_unwaived_medium_or_high(cli) -> None:
    res = cli("audit", "sast", str(REPO), "--policy", str(REPO / "pyproject.toml"), "--json")
    assert res.exit_code == 0, res.stdout
    result = json.loads(res.stdout)["results"][0]
    assert result["status"] == "passed"
    assert all(f["severity"] == "low" or f["waived_by"] for f in result["findings"])


def _project(tmp_path: Path, code: str, policy: str) -> Path:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src" / "bad.py").write_text(code)
    (root / "pyproject.toml").write_text(policy)
    return root


def _soon(days: int = 30) -> str:
    from datetime import timedelta

    return (date.today() + timedelta(days=days)).isoformat()


BAD_CODE = "import subprocess\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"


def test_sast_finds_shell_true_and_a_valid_waiver_waives_it(cli, tmp_path: Path) -> None:
    root = _project(tmp_path, BAD_CODE, "[tool.cea.audit]\nfail_on = 'medium'\n")
    pol = ("--policy", str(root / "pyproject.toml"))
    res = cli("audit", "sast", str(root), *pol, "--json")
    assert res.exit_code == 1
    ids = {f["id"] for f in json.loads(res.stdout)["results"][0]["findings"]}
    assert "B602" in ids
    (root / "pyproject.toml").write_text(
        "[tool.cea.audit]\n[[tool.cea.audit.waivers]]\nid = 'B602'\ncheck = 'sast'\n"
        f"reason = 'test fixture'\nexpires = {_soon()}\n"
    )
    res = cli("audit", "--checks", "sast,policy", str(root), *pol, "--json")
    assert res.exit_code == 0, res.stdout
    waived = [f for f in json.loads(res.stdout)["results"][0]["findings"] if f["id"] == "B602"]
    assert waived[0]["waived_by"] == "test fixture"


def test_expired_waiver_fails(cli, tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        BAD_CODE,
        "[tool.cea.audit]\n[[tool.cea.audit.waivers]]\nid = 'B602'\nreason = 'old'\nexpires = 2020-01-01\n",
    )
    res = cli(
        "audit",
        "--checks",
        "sast,policy",
        str(root),
        "--policy",
        str(root / "pyproject.toml"),
        "--json",
    )
    assert res.exit_code == 1
    results = {r["check"]: r for r in json.loads(res.stdout)["results"]}
    assert results["policy"]["findings"][0]["id"] == "WAIVER-EXPIRED"
    assert results["sast"]["status"] == "findings"  # an expired waiver waives nothing


def test_findings_win_over_incomplete() -> None:
    f = Finding("X1", "a", "high", "here", "bad")
    report = AuditReport(
        "t", (CheckResult("a", (f,)), CheckResult("b", incomplete=("offline",))), "now"
    )
    assert report.status == "findings" and report.exit_code() == 1
    only_incomplete = AuditReport("t", (CheckResult("b", incomplete=("offline",)),), "now")
    assert only_incomplete.exit_code() == 7


def test_waiver_location_pattern_and_check() -> None:
    f = Finding("B602", "sast", "high", "src/x.py:4", "shell")
    pol = Policy(waivers=(Waiver("B602", "ok", date(2999, 1, 1), "sast", "src/y.py*"),))
    assert apply_policy(CheckResult("sast", (f,)), pol, date.today()).findings[0].waived_by is None
    pol = Policy(waivers=(Waiver("B602", "ok", date(2999, 1, 1), "sast", "src/x.py*"),))
    assert apply_policy(CheckResult("sast", (f,)), pol, date.today()).findings[0].waived_by == "ok"


def test_policy_errors_are_config_errors(tmp_path: Path) -> None:
    from cea.errors import ConfigError

    bad = tmp_path / "p.toml"
    bad.write_text("[tool.cea.audit]\nfail_on = 'severe'\n")
    with pytest.raises(ConfigError):
        load_policy(bad)
    bad.write_text("[tool.cea.audit]\n[[tool.cea.audit.waivers]]\nid = 'X'\n")
    with pytest.raises(ConfigError, match="reason"):
        load_policy(bad)


def test_output_formats(cli, tmp_path: Path) -> None:
    root = _project(tmp_path, BAD_CODE, "")
    out = tmp_path / "report.sarif"
    pol = ("--policy", str(root / "pyproject.toml"))
    res = cli("audit", "sast", str(root), *pol, "--format", "sarif", "--output", str(out))
    assert res.exit_code == 1
    sarif = json.loads(out.read_text())
    assert sarif["version"] == "2.1.0"
    assert any(r["ruleId"] == "B602" for r in sarif["runs"][0]["results"])
    md = cli("audit", "sast", str(root), *pol, "--format", "markdown")
    assert md.stdout.startswith("# cea audit — FINDINGS") and "| B602 |" in md.stdout
    human = cli("audit", "sast", str(root), *pol)
    assert "findings" in human.stdout and "B602" in human.stdout


def test_report_renderers_directly() -> None:
    f = Finding("B1", "sast", "medium", "a.py:3", "msg | pipe", waived_by="why")
    report = AuditReport("t", (CheckResult("sast", (f,)),), "now")
    assert "\\|" in to_markdown(report)
    sarif = json.loads(to_sarif(report))
    assert sarif["runs"][0]["results"][0]["suppressions"][0]["justification"] == "why"


def test_unknown_check_is_usage_error(cli) -> None:
    assert cli("audit", "--checks", "sast,nope").exit_code == 2


# ---- SBOM ------------------------------------------------------------------------------


def test_committed_sbom_is_valid_and_matches_the_lock() -> None:
    text = (REPO / "SBOM.json").read_text(encoding="utf-8")
    assert validate_sbom(text) is None
    sbom = json.loads(text)
    assert sbom["specVersion"] == "1.6" and sbom["bomFormat"] == "CycloneDX"
    pins, _ = pinned_requirements(REPO / "requirements.lock")
    assert drift(sbom, pins) == [], "SBOM.json drifted from requirements.lock: run `make sbom`"


def test_sbom_check_regenerates_identically_and_detects_drift(cli, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("requirements.lock", "pyproject.toml", "SBOM.json"):
        shutil.copy(REPO / name, root / name)
    fresh = tmp_path / "fresh.json"
    res = cli("audit", "sbom", str(root), "--write-sbom", str(fresh), "--json")
    assert res.exit_code == 0, res.stdout
    assert fresh.read_text() == (REPO / "SBOM.json").read_text()  # reproducible
    lock = (root / "requirements.lock").read_text()
    (root / "requirements.lock").write_text(lock.replace("numpy==", "numpy==0.0.1.dev0+", 1))
    res = cli("audit", "sbom", str(root), "--json")
    assert res.exit_code == 1
    ids = {f["id"] for f in json.loads(res.stdout)["results"][0]["findings"]}
    assert ids == {"SBOM-DRIFT"}


def test_invalid_sbom_is_reported() -> None:
    assert validate_sbom(
        json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": "x"})
    )


def _osv_record(pkg: str, version: str, **extra: object) -> dict[str, object]:
    return {
        "id": f"TEST-{pkg}-{version}",
        "modified": "2026-01-01T00:00:00Z",
        "summary": "test advisory",
        "affected": [
            {"package": {"ecosystem": "PyPI", "name": pkg}, "versions": [version]},
        ],
        **extra,
    }


def test_osv_severity_from_cvss_and_withdrawn_records(tmp_path: Path) -> None:
    from cea.audit.osv import cvss_score

    db = tmp_path / "osv"
    db.mkdir()
    v31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8 by the CVSS 3.1 formula
    (db / "a.json").write_text(
        json.dumps(_osv_record("alpha", "1.0", severity=[{"type": "CVSS_V3", "score": v31}]))
    )
    (db / "b.json").write_text(
        json.dumps(
            _osv_record(
                "beta",
                "1.0",
                severity=[
                    {"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"}
                ],
            )
        )
    )
    (db / "w.json").write_text(
        json.dumps(_osv_record("alpha", "1.0", id="TEST-W", withdrawn="2026-02-01T00:00:00Z"))
    )
    loaded = OsvDatabase.load(db)
    assert cvss_score("CVSS_V3", v31) == 9.8
    assert [a.severity for a in loaded.lookup("alpha", "1.0")] == ["critical"]  # not "medium"
    assert [a.id for a in loaded.lookup("alpha", "1.0")] == ["TEST-alpha-1.0"]  # W withdrawn
    assert loaded.lookup("beta", "1.0")[0].severity == "low"
    assert loaded.withdrawn == 1


def test_vulns_of_another_environment_and_torch_in_lock_mode(cli, tmp_path: Path) -> None:
    import subprocess
    import sys

    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = next((env / "lib").glob("python*/site-packages"))
    info = site / "alpha-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: alpha\nVersion: 1.0\n")
    db = tmp_path / "osv"
    db.mkdir()
    (db / "a.json").write_text(json.dumps(_osv_record("alpha", "1.0")))
    res = cli(
        "audit", "vulns", str(REPO), "--osv-db", str(db), "--python", str(env / "bin" / "python"),
        "--json",
    )  # fmt: skip
    assert res.exit_code == 1, res.stdout
    (finding,) = json.loads(res.stdout)["results"][0]["findings"]
    assert finding["location"] == "alpha==1.0"  # cea's own environment has no alpha
    # lock mode: torch is outside the hashed lock; its installed version is audited too
    res = cli(
        "audit", "vulns", str(REPO), "--osv-db", str(OSV_DIR), "-r",
        str(REPO / "requirements.lock"), "--json",
    )  # fmt: skip
    notes = json.loads(res.stdout)["results"][0]["notes"]
    assert any("torch is not in" in n and "audited" in n for n in notes), notes


def test_audit_help_names_the_default_checks(cli) -> None:
    import re

    from cea.audit.runner import DEFAULT_CHECKS

    res = cli("audit", "--help")
    text = re.sub(r"[\s│]+", " ", res.stdout)  # (Rich wraps the help inside a box)
    assert f"default: {', '.join(DEFAULT_CHECKS)}" in text
