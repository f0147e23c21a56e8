"""The `cea` command line. Thin: parses, wires collaborators, renders; the core does the work.

Heavy libraries (torch, transformers, mlflow, optuna, nlpaug) are imported inside command
functions only, so `cea --help` stays fast. Only `main()` maps exceptions to exit codes.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

try:  # typer >= 0.20 vendors click as typer._click; its exceptions are the ones raised
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer on real click
    from click import exceptions as click_exc  # type: ignore[no-redef]

from cea._version import __version__
from cea.cli import _common
from cea.cli import audit as audit_cmd
from cea.cli import augment as augment_cmd
from cea.cli import bench as bench_cmd
from cea.cli import data as data_cmd
from cea.cli import doctor as doctor_cmd
from cea.cli import eval as eval_cmd
from cea.cli import hpo as hpo_cmd
from cea.cli import predict as predict_cmd
from cea.cli import register as register_cmd
from cea.cli import runs as runs_cmd
from cea.cli import train as train_cmd
from cea.errors import CeaError, ExitCode, os_error_message

app = typer.Typer(
    name="cea",
    help="Criteria and evidence classification for clinical text: train, evaluate, tune, "
    "benchmark and audit transformer classifiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    rich_markup_mode=None,  # plain help: typer.rich_utils (rich.markdown, markdown_it) costs ~0.1 s
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cea {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    json_out: _common.JsonOpt = False,
    quiet: _common.QuietOpt = False,
) -> None:
    _common.set_mode(json_out, quiet)


app.add_typer(data_cmd.app, name="data")
app.command("doctor")(doctor_cmd.doctor)
app.command("train")(train_cmd.train)
app.add_typer(augment_cmd.app, name="augment")
app.add_typer(bench_cmd.app, name="bench")
app.add_typer(hpo_cmd.app, name="hpo")
app.add_typer(runs_cmd.app, name="runs")
app.command("predict")(predict_cmd.predict)
app.command("eval")(eval_cmd.eval_command)
app.command("register-model")(register_cmd.register_model)
app.command("audit", context_settings={"allow_interspersed_args": True})(audit_cmd.audit)


def _fail(message: str, hint: str | None, code: int) -> int:
    from cea.tracking.redact import redact_text

    text = escape(redact_text(message))
    _common.err_console.print(f"[bold red]error:[/] {text}", soft_wrap=True)
    if hint:
        _common.err_console.print(f"[dim]hint: {escape(redact_text(hint))}[/]", soft_wrap=True)
    return code


def _setup_logging() -> None:
    """Library logs (MLflow, alembic) go to stderr at WARNING, through the redaction helper."""
    import logging
    import os

    from cea.tracking.redact import redact_text, register_secrets_from_env

    register_secrets_from_env(os.environ)

    class _Redacting(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return redact_text(super().format(record))

    root = logging.getLogger()
    if not any(getattr(h, "_cea", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(_Redacting("%(levelname)s %(name)s: %(message)s"))
        handler._cea = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for noisy in ("alembic", "mlflow", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # its retry warnings repeat what the one-line error says when a server is down
    logging.getLogger("urllib3").setLevel(logging.ERROR)


def _outside_cause(exc: BaseException) -> tuple[str, str, int] | None:
    """(message, hint, exit code) when the error comes from outside cea — the operating
    system (a chained OSError, or the errno a Rust library such as safetensors writes into its
    message: "os error 28", "Os { code: 28, ...") or a service that did not answer (a database
    or HTTP client error about a failed connection). None: a real bug."""
    import os
    import re

    from cea.errors import ServiceUnavailable
    from cea.tracking.redact import redact_text

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur)
        if type(cur).__module__.startswith(
            ("sqlalchemy", "psycopg", "requests", "urllib3", "mlflow")
        ) and any(
            k in text.lower()
            for k in ("connection refused", "could not connect", "max retries", "timed out")
        ):
            first = redact_text(text.strip().splitlines()[0] if text.strip() else "")
            hint = ServiceUnavailable.default_hint
            return f"service unreachable: {first[:200]}", hint, int(ExitCode.MISSING)
        if isinstance(cur, OSError):
            message, hint, code = os_error_message(cur)
            return message, hint, int(code)
        m = re.search(r"(?:os error |Os \{ code: )(\d+)", text)
        if m:
            err = int(m.group(1))
            message, hint, code = os_error_message(
                OSError(err, f"{os.strerror(err)} ({type(cur).__name__})")
            )
            return message, hint, int(code)
        cur = cur.__cause__ or cur.__context__
    return None


def _install_sigterm() -> None:
    """SIGTERM (a scheduler preempting the job) ends the command like Ctrl-C does."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _term)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, map exceptions to DESIGN §3 exit codes."""
    code: int
    # fresh per invocation (tests call main())
    _common.STATE.json = _common.STATE.quiet = _common.STATE.stdout_is_data = False
    _setup_logging()
    _install_sigterm()
    try:
        result = app(args=argv, standalone_mode=False, prog_name="cea")
        code = result if isinstance(result, int) else 0
    except CeaError as exc:
        if _common.debug_enabled():
            import traceback

            traceback.print_exc()
        code = _fail(exc.message, exc.hint, int(exc.exit_code))
    except click_exc.NoArgsIsHelpError as exc:
        exc.show()
        code = int(ExitCode.OK)
    except click_exc.UsageError as exc:
        exc.show()
        code = int(ExitCode.USAGE)
    except typer.Exit as exc:
        code = int(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        code = _fail("interrupted; nothing half-done was written", None, int(ExitCode.INTERRUPTED))
    except click_exc.ClickException as exc:
        exc.show()
        code = int(exc.exit_code)
    except Exception as exc:
        if _common.debug_enabled():
            import traceback

            traceback.print_exc()
        outside = _outside_cause(exc)  # a full disk, a read-only folder, a server that is down
        if outside is not None:
            sys.exit(_fail(*outside))
        code = _fail(
            f"internal error: {exc.__class__.__name__}",
            "this is a bug in cea; run with CEA_DEBUG=1 and report the traceback",
            int(ExitCode.RUNTIME),
        )
    sys.exit(code)
