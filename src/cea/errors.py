"""The error tree and the exit codes of DESIGN §3.

Core modules raise these; only `cea.cli.main` turns them into a one-line message and an exit
code. Every error carries a hint: what the user can do about it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FINDINGS = 1  # findings, or a gate refused
    USAGE = 2
    CONFIG = 3
    MISSING = 4  # missing dependency or resource
    DATA = 5
    RUNTIME = 6
    INCOMPLETE = 7  # a check could not run
    INTEGRITY = 8  # an artifact / cache entry / manifest failed verification and was refused
    INTERRUPTED = 130


class CeaError(Exception):
    """Base of every error cea reports to the user."""

    exit_code: ExitCode = ExitCode.RUNTIME
    default_hint: str = "run with CEA_DEBUG=1 for a traceback"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class UsageError(CeaError):
    exit_code = ExitCode.USAGE
    default_hint = "see `cea COMMAND --help`"


class ConfigError(CeaError):
    exit_code = ExitCode.CONFIG
    default_hint = "check the config file and the key.path=value overrides"


class MissingResourceError(CeaError):
    exit_code = ExitCode.MISSING
    default_hint = "run `cea doctor` to see which optional resources are present"


class DataError(CeaError):
    exit_code = ExitCode.DATA
    default_hint = "run `cea data validate` on the dataset for the full list of problems"


class RuntimeFailure(CeaError):
    exit_code = ExitCode.RUNTIME


class IncompleteError(CeaError):
    exit_code = ExitCode.INCOMPLETE


class Interrupted(CeaError):
    """SIGINT / SIGTERM: the work stopped at a safe point; what was kept is in the message."""

    exit_code = ExitCode.INTERRUPTED
    default_hint = ""


class ServiceUnavailable(CeaError):
    """A service cea was pointed at (tracking server, database) did not answer."""

    exit_code = ExitCode.MISSING
    default_hint = "start the service or check its URL; nothing was written"


def os_error_message(exc: OSError) -> tuple[str, str, ExitCode]:
    """(message, hint, exit code) for an error the operating system raised: a full disk, a
    read-only or missing folder, a refused connection. Never "internal error"."""
    import errno

    # a failed rename (temp file -> target) names the target second: that is the user's path
    where = exc.filename2 if exc.filename2 is not None else exc.filename
    where = where if where is not None else ""
    what = exc.strerror or exc.__class__.__name__
    text = f"{what}: {where}" if where else what
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return (
            text,
            "free disk space and run again; nothing half-written was kept",
            ExitCode.RUNTIME,
        )
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            text,
            "choose a folder you can write to (--output, output.runs_dir)",
            ExitCode.RUNTIME,
        )
    if code in (errno.ENOENT, errno.ENOTDIR):
        return text, "create the folder or correct the path", ExitCode.MISSING
    if isinstance(exc, ConnectionError | TimeoutError) or code in (
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
    ):
        return f"service unreachable ({text})", ServiceUnavailable.default_hint, ExitCode.MISSING
    return text, "check the path and its permissions", ExitCode.RUNTIME


class GateRefused(CeaError):
    """A release or promotion gate said no (exit 1, like findings)."""

    exit_code = ExitCode.FINDINGS
    default_hint = "see the reason above; fix the run or choose an unprotected alias"


class IntegrityError(CeaError):
    exit_code = ExitCode.INTEGRITY
    default_hint = "the file was changed after it was written; regenerate it from a trusted source"
