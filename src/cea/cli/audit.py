"""`cea audit [CHECK] [PATH]`: the release gate (exit 0 pass, 1 findings, 7 incomplete)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cea.cli._common import JsonOpt, QuietOpt, console, err_console, set_mode, show_progress

CHECKS_HELP = "sast, vulns, sbom, licenses, policy, artifacts"
DEFAULT_HELP = "sast, vulns, sbom, licenses, policy (artifacts only when named)"


def audit(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"[CHECK] [PATH]: one check ({CHECKS_HELP}) and/or the project folder (default .)."
        ),
    ] = None,
    checks: Annotated[
        str | None,
        typer.Option("--checks", help=f"Comma-separated checks (default: {DEFAULT_HELP})."),
    ] = None,
    osv_db: Annotated[
        Path | None,
        typer.Option("--osv-db", help="Offline OSV database: a zip or folder of OSV JSON records."),
    ] = None,
    requirements: Annotated[
        Path | None,
        typer.Option(
            "--requirements",
            "-r",
            help="Audit the pins of this requirements/lock file instead of the installed distributions.",
        ),
    ] = None,
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            help="Audit the distributions of this interpreter's environment (vulns, licenses) "
            "instead of cea's own.",
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="TOML with [tool.cea.audit] (default: ./pyproject.toml of the folder you run in; "
            "never one inside a scanned artifact folder).",
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="rich | json | sarif | markdown.")] = "rich",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report here.")
    ] = None,
    cache_key: Annotated[
        Path | None,
        typer.Option(
            "--cache-key", help="HMAC key file that signs cea's cache entries (artifacts)."
        ),
    ] = None,
    write_third_party: Annotated[
        Path | None,
        typer.Option(
            "--write-third-party", help="Also write THIRD_PARTY_LICENSES.md (licenses check)."
        ),
    ] = None,
    write_sbom: Annotated[
        Path | None,
        typer.Option("--write-sbom", help="Also write the generated SBOM to this file."),
    ] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Audit the project: SAST (bandit), known vulnerabilities, CycloneDX SBOM, policy waivers."""
    from cea import api
    from cea.audit.report import render
    from cea.audit.runner import CHECK_NAMES, DEFAULT_CHECKS
    from cea.errors import UsageError

    mode = set_mode(json_out, quiet)
    if mode.json:
        fmt = "json"
    if fmt not in ("rich", "json", "sarif", "markdown"):
        raise UsageError(f"unknown --format {fmt!r}", hint="rich, json, sarif or markdown")
    rest = list(args or [])
    selected: tuple[str, ...] = DEFAULT_CHECKS
    if rest and rest[0] in CHECK_NAMES:
        selected = (rest.pop(0),)
    if checks:
        selected = tuple(c.strip() for c in checks.split(",") if c.strip())
    artifact_paths: list[str] = []
    if selected == ("artifacts",) and len(rest) > 1:  # cea audit artifacts PATH...
        artifact_paths, rest = rest, ["."]
    if len(rest) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(rest[1:])}")
    if selected == ("artifacts",) and rest and not artifact_paths:
        artifact_paths = [rest[0]]  # cea audit artifacts FILE-OR-FOLDER
        rest = [rest[0]] if Path(rest[0]).is_dir() else ["."]
    root = Path(rest[0] if rest else ".").resolve()
    if not root.exists() and rest and "/" not in rest[0] and "." not in rest[0]:
        raise UsageError(
            f"{rest[0]!r} is neither a check nor a folder", hint=f"checks: {CHECKS_HELP}"
        )
    options: dict[str, Any] = {
        "osv_db": str(osv_db) if osv_db else None,
        "requirements": str(requirements) if requirements else None,
        "write_sbom": str(write_sbom) if write_sbom else None,
        "write_third_party": str(write_third_party) if write_third_party else None,
        "cache_key": _read_key(cache_key) if cache_key else None,
        "python": python,
    }
    if output is not None and not output.parent.is_dir():  # before minutes of auditing
        from cea.errors import MissingResourceError

        raise MissingResourceError(
            f"folder {output.parent} not found (for --output {output})",
            hint="create the folder or correct the path",
        )
    status = None
    if show_progress():  # on stderr, whatever the output format
        status = err_console.status("auditing")
        status.start()
        options["on_file"] = lambda p: status.update(f"running artifacts: {_text(str(p))[-70:]}")
    try:
        report = api.audit(
            artifact_paths or [root],
            selected,
            policy,
            root=root,
            options=options,
            on_check=(lambda n: status.update(f"running {n}")) if status else None,
        )
    finally:
        if status is not None:
            status.stop()
    if output is not None:  # atomic: an interrupted or failed write leaves no half report
        from cea.security.io import atomic_write_text

        atomic_write_text(output, render(report, "json" if fmt == "rich" else fmt))
    if fmt != "rich" and output is None:
        typer.echo(render(report, fmt), nl=False)
    elif not mode.quiet or report.status != "passed":
        _print(report)
    raise typer.Exit(report.exit_code())


def _read_key(path: Path) -> bytes:
    from cea.security.signed_cache import read_key

    return read_key(path)


def _text(value: str) -> str:
    """A report string for the terminal: control and escape characters shown escaped (a file
    name cannot rewrite the table), Rich markup escaped."""
    from cea.security.findings import printable

    return escape(printable(value))


def _print(report: Any) -> None:
    summary = Table(title=f"cea audit {_text(report.target)}")
    for col in ("check", "status", "failing", "waived", "notes"):
        summary.add_column(col)
    colors = {"passed": "green", "findings": "red", "incomplete": "yellow"}
    for r in report.results:
        waived = sum(1 for f in r.findings if f.waived_by)
        notes = "; ".join((*r.notes, *(f"incomplete: {t}" for t in r.incomplete)))
        summary.add_row(
            r.check,
            f"[{colors[r.status]}]{r.status}[/]",
            str(len(r.failing())),
            str(waived),
            _text(notes),
        )
    console.print(summary)
    shown = [f for r in report.results for f in r.findings if f.waived_by or f in r.failing()]
    if shown:
        table = Table(title="findings (failing and waived)")
        for col in ("id", "check", "severity", "location", "message", "waived by"):
            table.add_column(col)
        for f in shown:
            table.add_row(
                f.id,
                f.check,
                f.severity,
                _text(f.location),
                _text(f.message[:160]),
                _text(f.waived_by or ""),
            )
        console.print(table)
    console.print(f"result: {report.status} (exit {report.exit_code()})")
