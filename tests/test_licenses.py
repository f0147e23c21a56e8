"""`cea audit licenses`, THIRD_PARTY_LICENSES.md and the SBOM's license data."""

from __future__ import annotations

import importlib.metadata as md
import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from cea.audit.licenses import (
    UNKNOWN,
    LicensePolicy,
    _from_text,
    license_ids,
    parse_third_party,
    resolve,
)
from cea.audit.vulns import pinned_requirements

REPO = Path(__file__).resolve().parents[1]


def test_every_installed_distribution_is_listed_with_a_license_or_unknown(cli) -> None:
    res = cli("audit", "licenses", str(REPO), "--policy", str(REPO / "pyproject.toml"), "--json")
    assert res.exit_code == 0, res.stdout
    packages = json.loads(res.stdout)["results"][0]["data"]["packages"]
    installed = {canonicalize_name(d.metadata["Name"]) for d in md.distributions()}
    assert {canonicalize_name(p["name"]) for p in packages} == installed
    assert all(p["spdx"] and p["source"] for p in packages)
    by_name = {canonicalize_name(p["name"]): p for p in packages}
    assert by_name["torch"]["spdx"].startswith("Apache-2.0")
    assert by_name["pathspec"]["spdx"] == "MPL-2.0"  # not the GPL its MPL text mentions


def _project(tmp_path: Path, licenses_table: str) -> Path:
    root = tmp_path / "p"
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.cea.audit.licenses]\n" + licenses_table)
    return root


def test_denied_license_fails_and_names_the_package(cli, tmp_path: Path) -> None:
    root = _project(tmp_path, 'deny = ["PSF-2.0"]\n')
    res = cli("audit", "licenses", str(root), "--policy", str(root / "pyproject.toml"), "--json")
    assert res.exit_code == 1
    findings = json.loads(res.stdout)["results"][0]["findings"]
    denied = {f["location"].split("==")[0] for f in findings if f["id"] == "LICENSE-DENIED"}
    assert "typing-extensions" in denied
    assert any("PSF-2.0 is denied" in f["message"] for f in findings)


def test_exception_waives_until_it_expires(cli, tmp_path: Path) -> None:
    table = (
        'deny = ["PSF-2.0"]\n'
        "exceptions = [\n"
        + "".join(
            f'  {{package = "{p}", reason = "reviewed", expires = {{exp}}}},\n'
            for p in ("typing-extensions", "aiohappyeyeballs", "defusedxml", "matplotlib")
        )
        + "]\n"
    )
    soon = (date.today() + timedelta(days=30)).isoformat()
    root = _project(tmp_path, table.replace("{exp}", soon))
    res = cli(
        "audit",
        "--checks",
        "licenses,policy",
        str(root),
        "--policy",
        str(root / "pyproject.toml"),
        "--json",
    )
    assert res.exit_code == 0, res.stdout
    waived = [f for f in json.loads(res.stdout)["results"][0]["findings"] if f["waived_by"]]
    assert waived and all(f["waived_by"] == "reviewed" for f in waived)
    root = _project(tmp_path / "old", table.replace("{exp}", "2020-01-01"))
    res = cli("audit", "licenses", str(root), "--policy", str(root / "pyproject.toml"), "--json")
    assert res.exit_code == 1  # an expired exception waives nothing
    res = cli("audit", "policy", str(root), "--policy", str(root / "pyproject.toml"), "--json")
    assert res.exit_code == 1
    assert json.loads(res.stdout)["results"][0]["findings"][0]["id"] == "WAIVER-EXPIRED"


def test_allow_list_and_expressions() -> None:
    pol = LicensePolicy(allow=("MIT", "Apache-2.0", "BSD-*"), deny=("GPL-*",))
    assert pol.verdict("MIT")[0] == "ok"
    assert pol.verdict("GPL-3.0-only OR MIT")[0] == "ok"  # an allowed alternative suffices
    assert pol.verdict("GPL-3.0-only AND MIT")[0] == "denied"
    assert pol.verdict("Apache-2.0 WITH LLVM-exception")[0] == "ok"
    assert pol.verdict("MPL-2.0")[0] == "not-allowed"
    assert pol.verdict(UNKNOWN)[0] == "unknown"
    assert license_ids("A OR (B AND C)") == [["A"], ["B", "C"]]


def test_license_text_detection_uses_the_first_marker() -> None:
    mpl = "Mozilla Public License Version 2.0\n... Secondary License means GNU Affero General Public License ..."
    assert _from_text(mpl) == "MPL-2.0"
    bsd = "Copyright (c) X\nRedistribution and use in source and binary forms ... Neither the name of X"
    assert _from_text(bsd) == "BSD-3-Clause"
    assert _from_text("Permission is hereby granted, free of charge, to any person") == "MIT"
    assert _from_text("All rights reserved.") is None


def _fake_dist(
    tmp_path: Path, name: str, metadata: str, license_text: str | None = None
) -> md.Distribution:
    info = tmp_path / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n{metadata}")
    records = [f"{info.name}/METADATA,,"]
    if license_text is not None:
        (info / "LICENSE").write_text(license_text)
        records.append(f"{info.name}/LICENSE,,")
    (info / "RECORD").write_text("\n".join(records) + "\n")
    return md.PathDistribution(info)


def test_resolution_order_and_unknown(tmp_path: Path) -> None:
    expr = resolve(
        _fake_dist(tmp_path / "a", "a", "License-Expression: mit OR apache-2.0\nLicense: GPL\n")
    )
    assert (expr.spdx, expr.source) == ("MIT OR Apache-2.0", "License-Expression")
    short = resolve(_fake_dist(tmp_path / "b", "b", "License: Apache 2.0\n"))
    assert (short.spdx, short.source) == ("Apache-2.0", "License")
    text = resolve(
        _fake_dist(tmp_path / "c", "c", "", "Permission is hereby granted, free of charge, to any")
    )
    assert (text.spdx, text.source) == ("MIT", "license file")
    cls = resolve(
        _fake_dist(
            tmp_path / "d", "d", "Classifier: License :: OSI Approved :: ISC License (ISCL)\n"
        )
    )
    assert (cls.spdx, cls.source) == ("ISC", "classifier")
    none = resolve(_fake_dist(tmp_path / "e", "e", "License: UNKNOWN\n"))
    assert (none.spdx, none.source) == (UNKNOWN, "none")


def test_third_party_file_sbom_and_lock_agree() -> None:
    pins, _ = pinned_requirements(REPO / "requirements.lock")
    rows = parse_third_party((REPO / "THIRD_PARTY_LICENSES.md").read_text(encoding="utf-8"))
    assert {k: v[0] for k, v in rows.items()} == pins, (
        "THIRD_PARTY_LICENSES.md drifted: run `make licenses`"
    )
    sbom = json.loads((REPO / "SBOM.json").read_text(encoding="utf-8"))
    sbom_lic = {}
    for comp in sbom["components"]:
        (entry,) = comp["licenses"]
        sbom_lic[canonicalize_name(comp["name"])] = (
            entry.get("expression") or entry["license"]["name"]
        )
    assert sbom_lic == {k: v[1] for k, v in rows.items()}, (
        "SBOM.json and THIRD_PARTY_LICENSES.md disagree"
    )
    assert UNKNOWN not in sbom_lic.values()


def test_write_third_party_matches_committed(cli, tmp_path: Path) -> None:
    out = tmp_path / "tp.md"
    res = cli(
        "audit",
        "licenses",
        str(REPO),
        "--policy",
        str(REPO / "pyproject.toml"),
        "--write-third-party",
        str(out),
        "--quiet",
    )
    assert res.exit_code == 0
    assert out.read_text() == (REPO / "THIRD_PARTY_LICENSES.md").read_text()


@pytest.mark.parametrize("fmt", ["sarif", "markdown"])
def test_license_findings_in_machine_formats(cli, tmp_path: Path, fmt: str) -> None:
    root = _project(tmp_path, 'deny = ["MIT"]\n')
    res = cli(
        "audit", "licenses", str(root), "--policy", str(root / "pyproject.toml"), "--format", fmt
    )
    assert res.exit_code == 1
    assert "LICENSE-DENIED" in res.stdout
