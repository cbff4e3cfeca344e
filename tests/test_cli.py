"""The command-line shell: version, help on every command, documented commands, exit codes for errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer.main

from slackops import __version__
from slackops.cli import app, main
from slackops.errors import AuthError, ExitCode, InputError, SlackopsError, UsageError, exit_code_for

ROOT = Path(__file__).resolve().parents[1]


def all_commands():
    group = typer.main.get_group(app)
    for name, cmd in group.commands.items():
        yield name, cmd
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            yield f"{name} {sub_name}", sub


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"slackops {__version__}"


def test_python_dash_m_works():
    out = subprocess.run(
        [sys.executable, "-m", "slackops", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0 and __version__ in out.stdout


def test_every_command_and_option_has_help():
    commands = dict(all_commands())
    assert commands, "no commands registered"
    for name, cmd in commands.items():
        assert (cmd.help or "").strip(), f"command {name!r} has no help text"
        for param in cmd.params:
            if param.param_type_name == "option" and param.name not in {"help"}:
                assert (getattr(param, "help", "") or "").strip(), f"{name} {param.opts} has no help text"


def test_every_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name, _ in all_commands():
        assert f"slackops {name}" in readme, f"README does not document `slackops {name}`"


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["no-such-command"]) == ExitCode.USAGE


def test_exit_code_mapping():
    assert exit_code_for(UsageError("x")) is ExitCode.USAGE
    assert exit_code_for(InputError("x")) is ExitCode.UNUSABLE_INPUT
    assert exit_code_for(AuthError("x")) is ExitCode.AUTH
    assert exit_code_for(KeyboardInterrupt()) is ExitCode.INTERRUPTED
    assert exit_code_for(RuntimeError()) is ExitCode.INTERNAL
    assert exit_code_for(SlackopsError("x")) is ExitCode.INTERNAL


def test_errors_are_one_line_with_hint_and_redacted(capsys):
    from slackops.cli import report_error

    report_error(AuthError("token xoxb-123-secret refused", hint="use an xapp- token"))
    err = capsys.readouterr().err
    assert "slackops: error: token xoxb-[redacted] refused" in err
    assert "use an xapp- token" in err
    assert "secret" not in err
