"""``slackops tui PATH``: the command's own checks (the view itself is driven by pilots in test_tui_app)."""

from __future__ import annotations

from slackops.cli import main
from slackops.errors import ExitCode
from tests.test_tui_fixtures import SESSION


def test_a_missing_recording_is_unusable_input(tmp_path, capsys):
    assert main(["tui", str(tmp_path / "nope.db")]) == ExitCode.UNUSABLE_INPUT
    err = " ".join(capsys.readouterr().err.split())  # the console may wrap long paths
    assert "no such file" in err and "slackops watch" in err


def test_speed_must_be_positive(capsys):
    assert main(["tui", str(SESSION), "--speed", "0"]) == ExitCode.USAGE
    assert "--speed must be positive" in " ".join(capsys.readouterr().err.split())


def test_replay_runs_headless_to_the_end(monkeypatch):
    """The command hands the path and speed to run_replay (run here headless, quitting at the end)."""
    import slackops.tui

    seen = {}
    real = slackops.tui.run_replay

    def headless(path, **kw):
        seen.update(kw, path=path)
        return real(path, headless=True, exit_when_done=True, findings=False, **kw)

    monkeypatch.setattr(slackops.tui, "run_replay", headless)
    assert main(["tui", str(SESSION), "--speed", "1000", "--max-idle", "0.5"]) == ExitCode.OK
    assert seen == {"path": SESSION, "speed": 1000.0, "max_idle": 0.5}
