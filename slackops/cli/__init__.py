"""``slackops`` command line: thin commands over the library, errors mapped to documented exit codes.

Each command lives in its own module and registers itself on :data:`slackops.cli.app.app`. Feature packages
are imported inside command bodies, so ``slackops --help`` stays fast and never imports Textual.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from slackops.cli.app import app, stderr
from slackops.errors import ExitCode, SlackopsError, exit_code_for
from slackops.redact import redact_text

__all__ = ["app", "main"]

# Every sibling module except ``app`` defines commands and registers them on import.
for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _mod != "app":
        importlib.import_module(f"{__name__}.{_mod}")


def report_error(exc: SlackopsError) -> None:
    """Print ``slackops: error: ...`` and the hint, the way every command reports a problem."""
    console = stderr()
    console.print(f"slackops: error: {redact_text(exc.message)}", markup=False, highlight=False)
    if exc.hint:
        console.print(f"  {exc.hint}", markup=False, highlight=False)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point. Returns (and exits with) an :class:`~slackops.errors.ExitCode`."""
    try:
        result = app(args=argv, prog_name="slackops", standalone_mode=False)
    except SlackopsError as exc:
        report_error(exc)
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        stderr().print("slackops: interrupted", markup=False)
        code = ExitCode.INTERRUPTED
    except typer.TyperException as exc:  # usage errors: bad flags, unknown command
        if hasattr(exc, "show"):
            exc.show()
        code = ExitCode.USAGE
    except KeyboardInterrupt as exc:
        code = exit_code_for(exc)
    else:
        code = result if isinstance(result, int) else ExitCode.OK
    if argv is None:
        sys.exit(int(code))
    return int(code)
