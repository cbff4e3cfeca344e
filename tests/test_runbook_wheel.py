"""Runbooks ship in the wheel and are found from an installed package (no source checkout in sight)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from slackops.findings import SLUGS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A wheel built from this tree, installed with --no-deps into a fresh venv; returns (python, env)."""
    pytest.importorskip("hatchling")
    work = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(work / "dist"),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (work / "dist").glob("slackops-*.whl")
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=False, symlinks=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert install.returncode == 0, install.stderr
    # Dependencies (rich, typer, orjson …) come from this venv's site-packages on PYTHONPATH. That directory holds
    # no importable slackops (the editable install is a .pth file, which PYTHONPATH does not process), so the only
    # slackops the child can import is the installed wheel.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
    env.pop("FORCE_COLOR", None)
    yield python, env, work
    shutil.rmtree(work, ignore_errors=True)


def test_installed_wheel_finds_every_runbook(installed):
    python, env, work = installed
    probe = (
        "import json, slackops, slackops.runbooks as r;"
        "books = r.load_all();"
        "print(json.dumps({'module': slackops.__file__, 'dir': str(r.runbook_dir()),"
        " 'slugs': [b.slug for b in books], 'problems': r.catalogue_problems(books)}))"
    )
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, cwd=work, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["module"].startswith(str(work / "venv")), data["module"]
    assert data["dir"].startswith(str(work / "venv")) and data["dir"].endswith("_runbooks")
    assert data["slugs"] == list(SLUGS)
    assert data["problems"] == []


def test_installed_cli_renders_a_runbook(installed):
    python, env, work = installed
    out = subprocess.run(
        [python, "-m", "slackops", "runbook", "retry-duplication"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Retry duplication")
    assert "insert-if-absent" in out.stdout and "\x1b[" not in out.stdout
    listing = subprocess.run(
        [python, "-m", "slackops", "runbook", "--json"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=60,
    )
    assert [b["slug"] for b in json.loads(listing.stdout)] == list(SLUGS)
