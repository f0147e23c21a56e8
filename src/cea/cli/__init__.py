"""The `cea` command line. Thin: parses, wires collaborators, renders; the core does the work.

Heavy libraries (torch, transformers, mlflow, optuna, nlpaug) are imported inside command
functions only, so `cea --help` stays fast. Only `main()` maps exceptions to exit codes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading


def _interrupted_at_start(signum: int, frame: object) -> None:
    """SIGINT / SIGTERM while cea is still importing: one line, exit 130 (nothing was written
    yet; `main()` replaces this handler with its own as its first step)."""
    name = signal.Signals(signum).name
    os.write(
        2, f"error: interrupted ({name}) while cea was starting; nothing was written\n".encode()
    )
    os._exit(130)


def _console_script() -> bool:
    from pathlib import Path

    return Path(sys.argv[0] if sys.argv else "").name in ("cea", "__main__.py")


if _console_script() and threading.current_thread() is threading.main_thread():
    import tempfile

    # the temp folder is found by writing and removing a scratch file in it: done before the
    # handler below can end the process (os._exit) between the two and leave the file behind
    tempfile.gettempdir()
    for _sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(_sig) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(_sig, _interrupted_at_start)

from typing import Annotated  # noqa: E402 - after the start-up signal handler

import typer  # noqa: E402
from rich.markup import escape  # noqa: E402

try:  # typer >= 0.20 vendors click as typer._click; its exceptions are the ones raised
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer on real click
    from click import exceptions as click_exc  # type: ignore[no-redef]

from cea._version import __version__  # noqa: E402
from cea.cli import _common  # noqa: E402
from cea.cli import audit as audit_cmd  # noqa: E402
from cea.cli import augment as augment_cmd  # noqa: E402
from cea.cli import bench as bench_cmd  # noqa: E402
from cea.cli import data as data_cmd  # noqa: E402
from cea.cli import doctor as doctor_cmd  # noqa: E402
from cea.cli import eval as eval_cmd  # noqa: E402
from cea.cli import hpo as hpo_cmd  # noqa: E402
from cea.cli import predict as predict_cmd  # noqa: E402
from cea.cli import register as register_cmd  # noqa: E402
from cea.cli import runs as runs_cmd  # noqa: E402
from cea.cli import train as train_cmd  # noqa: E402
from cea.errors import CeaError, ExitCode, os_error_message  # noqa: E402

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


_PATH_LOCALS = (
    "target", "output", "out_path", "path", "dest", "folder", "file", "run_dir", "stage", "tmp",
)  # fmt: skip


def _path_in_traceback(exc: BaseException) -> str | None:
    """The file cea was writing when `exc` came: the innermost frame of cea's own code that
    holds a path in a local such as `target` or `path` (for a message that names it)."""
    from pathlib import PurePath

    frames = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:  # the error and what it was raised from
        seen.add(id(cur))
        tb = cur.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        cur = cur.__cause__ or cur.__context__
    for frame in reversed(frames):
        if not str(frame.f_globals.get("__name__", "")).startswith("cea."):
            continue
        for name in _PATH_LOCALS:
            value = frame.f_locals.get(name)
            if isinstance(value, PurePath):
                return str(value)
    return None


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
            if cur.filename is None and cur.filename2 is None and cur.errno is not None:
                # a write() on an open file names no path: the one being written is in the
                # frames of cea that were writing it
                cur = OSError(cur.errno, cur.strerror or str(cur), _path_in_traceback(exc))
            message, hint, code = os_error_message(cur)
            return message, hint, int(code)
        m = re.search(r"(?:os error |Os \{ code: )(\d+)", text)
        if m:
            err = int(m.group(1))
            message, hint, code = os_error_message(
                OSError(err, f"{os.strerror(err)} ({type(cur).__name__})", _path_in_traceback(exc))
            )
            return message, hint, int(code)
        cur = cur.__cause__ or cur.__context__
    return None


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Signals:
    """The one SIGINT / SIGTERM handler of every command, installed as `main()`'s first step:
    the first signal raises KeyboardInterrupt where the command is (setup and imports
    included; a command with safe points, such as training, installs its own handler while
    they run) and records its name, so the one-line message can say which signal it was, even
    when Typer turned the KeyboardInterrupt into `Exit(130)` on the way. While the error is
    being reported and temp files removed, a further signal ends the process at once."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.previous: dict[int, object] = {}
        self.tmp: str | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _SIGNALS:
            self.previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._raise)

    def _raise(self, signum: int, frame: object) -> None:
        self.name = signal.Signals(signum).name
        raise KeyboardInterrupt(self.name)

    def _now(self, signum: int, frame: object) -> None:
        import shutil

        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        os.write(2, f"error: interrupted ({signal.Signals(signum).name}) again; stopped\n".encode())
        os._exit(130)

    def finishing(self) -> None:
        """From here on (reporting, cleaning up) a signal ends the process at once."""
        if self.previous:
            for sig in _SIGNALS:
                signal.signal(sig, self._now)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self.previous = {}


def _private_tmp() -> tuple[str | None, tuple[str | None, str | None]]:
    """One `cea-` folder in the system's temp folder for everything this command (and the
    libraries and child processes it runs) puts in a temp folder; removed on every exit."""
    import tempfile

    saved = (tempfile.tempdir, os.environ.get("TMPDIR"))
    try:
        tmp = tempfile.mkdtemp(prefix=f"cea-{os.getpid()}-")
    except OSError:  # no writable temp folder: libraries will say so where they need one
        return None, saved
    tempfile.tempdir = tmp
    os.environ["TMPDIR"] = tmp
    return tmp, saved


def _drop_tmp(tmp: str | None, saved: tuple[str | None, str | None]) -> None:
    import shutil
    import tempfile

    tempfile.tempdir = saved[0]
    if saved[1] is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved[1]
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


def _interrupt_message(signals: _Signals) -> int:
    name = signals.name or "SIGINT"
    return _fail(f"interrupted ({name}); nothing half-done was written", None, 130)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, map exceptions to DESIGN §3 exit codes."""
    signals = _Signals()
    signals.install()  # first: a signal from here on is one line and exit 130
    code: int
    tmp: str | None = None
    saved: tuple[str | None, str | None] = (None, None)
    try:
        try:
            os.getcwd()  # noqa: PTH109 - the plain call that fails when the folder is gone
        except OSError as exc:
            code = _fail(
                "the working folder no longer exists (deleted or unmounted)",
                "cd to an existing folder and run the command again",
                int(ExitCode.MISSING),
            )
            raise SystemExit(code) from exc
        tmp, saved = _private_tmp()
        signals.tmp = tmp
        code = _run(argv, signals)
    except KeyboardInterrupt:  # a signal between the steps above
        signals.finishing()
        code = _interrupt_message(signals)
    finally:
        signals.finishing()
        _drop_tmp(tmp, saved)
        signals.restore()
    if _console_script() and threading.current_thread() is threading.main_thread():
        for sig in _SIGNALS:  # the command is over: a signal while Python shuts down is moot
            signal.signal(sig, signal.SIG_IGN)  # (it would end the process as -2 / -15)
    if code == int(ExitCode.INTERRUPTED) and _console_script():
        # a KeyboardInterrupt that passed through C code running Python (an import) leaves
        # CPython's "unhandled interrupt" flag set, and the interpreter would then end itself
        # with SIGINT (status -2) instead of 130: everything is cleaned up, so leave now
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    sys.exit(code)


def _run(argv: list[str] | None, signals: _Signals) -> int:
    code: int
    # fresh per invocation (tests call main())
    _common.STATE.json = _common.STATE.quiet = _common.STATE.stdout_is_data = False
    try:
        _setup_logging()
        result = app(args=argv, standalone_mode=False, prog_name="cea")
        code = result if isinstance(result, int) else 0
        if code == int(ExitCode.INTERRUPTED):  # Typer's Exit(130) for a KeyboardInterrupt
            signals.finishing()
            code = _interrupt_message(signals)
    except CeaError as exc:
        signals.finishing()
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
        if code == int(ExitCode.INTERRUPTED):
            signals.finishing()
            code = _interrupt_message(signals)
    except (KeyboardInterrupt, typer.Abort):
        signals.finishing()
        code = _interrupt_message(signals)
    except click_exc.ClickException as exc:
        exc.show()
        code = int(exc.exit_code)
    except RecursionError:  # a structure nested too deeply in something read
        signals.finishing()
        if _common.debug_enabled():
            import traceback

            traceback.print_exc()
        code = _fail(
            "input nested too deeply to read (RecursionError)",
            "check the file given to this command; cea reads nesting up to a few hundred levels",
            int(ExitCode.DATA),
        )
    except Exception as exc:
        signals.finishing()
        if _common.debug_enabled():
            import traceback

            traceback.print_exc()
        outside = _outside_cause(exc)  # a full disk, a read-only folder, a server that is down
        if outside is not None:
            return _fail(*outside)
        code = _fail(
            f"internal error: {exc.__class__.__name__}",
            "this is a bug in cea; run with CEA_DEBUG=1 and report the traceback",
            int(ExitCode.RUNTIME),
        )
    return code
