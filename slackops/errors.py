"""The exception tree and the one exit-code table.

Library code raises a :class:`SlackopsError` subclass carrying a one-line message and, where we know one, a
hint saying what to do next. The CLI turns any of them into ``slackops: error: ...`` on stderr and the exit code
given by :func:`exit_code_for` — the only place exceptions are mapped to exit statuses.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Documented exit statuses of every slackops command."""

    OK = 0
    #: diagnose/verify found warnings (or ``--fail-on warning`` tripped)
    WARNING = 1
    #: diagnose found critical findings; verify saw events lost or processed twice
    CRITICAL = 2
    #: the input could not be used at all (unknown format, empty, unreadable)
    UNUSABLE_INPUT = 3
    #: bad flags, a bad scenario or config file
    USAGE = 4
    #: Slack (or the simulator) refused the token: fixing it needs a person
    AUTH = 5
    #: the recording database cannot be opened or written (locked, full, read-only)
    STORE = 6
    #: the network or the peer failed in a way retries did not fix
    NETWORK = 7
    #: a bug in slackops; please report it
    INTERNAL = 70
    #: stopped by Ctrl-C
    INTERRUPTED = 130


class SlackopsError(Exception):
    """Base of every error slackops reports to a user.

    ``hint`` says what to do next; it is printed on its own line after the message.
    """

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(SlackopsError):
    """Flags or arguments that cannot work together."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A config, threshold or scenario file is wrong. ``path`` and ``line`` point at the problem."""

    def __init__(
        self, message: str, *, path: str | None = None, line: int | None = None, hint: str | None = None
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message, hint=hint)
        self.path = path
        self.line = line


class InputError(SlackopsError):
    """Input (a log, a recording) that cannot be used at all."""

    exit_code = ExitCode.UNUSABLE_INPUT


class AuthError(SlackopsError):
    """A token problem that retrying will never fix (wrong type, revoked, missing scope, link disabled)."""

    exit_code = ExitCode.AUTH

    def __init__(self, message: str, *, error: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        #: the Slack error code (``invalid_auth``, ``not_allowed_token_type`` …) when one was returned
        self.error = error


class StoreError(SlackopsError):
    """The recording store cannot be opened or written."""

    exit_code = ExitCode.STORE


class NetworkError(SlackopsError):
    """Slack (or the simulator) could not be reached, or kept failing past the retry budget."""

    exit_code = ExitCode.NETWORK


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit status for an exception that reached the CLI. The one mapping."""
    if isinstance(exc, SlackopsError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.INTERNAL
