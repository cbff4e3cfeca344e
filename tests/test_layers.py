"""Layering is checked, not hoped for: the protocol core is sans-I/O and the CLI never imports Textual."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    import json

    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "forbidden", ["asyncio", "websockets", "rich", "textual", "sqlite_utils", "aiohttp", "socket"]
)
def test_protocol_is_sans_io(forbidden):
    mods = imported_after("import slackops.protocol, slackops.records")
    assert forbidden not in mods, f"slackops.protocol pulled in {forbidden}"


def test_cli_help_does_not_import_textual():
    probe = "from slackops.cli import main\nmain(['--help'])"
    mods_code = (
        "import sys, json\nfrom slackops.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", mods_code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    mods = set(__import__("json").loads(out.stdout.strip().splitlines()[-1]))
    assert "textual" not in mods
    assert probe  # the command itself is exercised in test_cli


def test_every_command_module_registers_only_through_app():
    """Command modules are thin: they may import the typer app and the library, never each other."""
    for path in (ROOT / "slackops" / "cli").glob("*.py"):
        text = path.read_text()
        for other in (ROOT / "slackops" / "cli").glob("*.py"):
            if other.stem not in {"app", "__init__", path.stem}:
                assert f"slackops.cli.{other.stem}" not in text, f"{path.name} imports cli.{other.stem}"
