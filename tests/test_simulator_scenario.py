"""Scenario files: every shipped scenario loads, user files load, and each mistake names its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from slackops.errors import ConfigError
from slackops.simulator import list_scenarios, load_scenario
from slackops.simulator.scenario import ChaosStep, parse_scenario

FIXTURES = Path(__file__).parent / "fixtures" / "scenarios"

REQUIRED = {
    "steady",
    "refresh-churn",
    "disconnect-storm",
    "half-open",
    "slow-consumer",
    "ghost-connections",
    "rate-limited-open",
    "auth-errors",
    "cost-spike",
    "self-loop",
    "fan-out",
}


def test_every_required_scenario_ships_with_a_description():
    shipped = dict(list_scenarios())
    assert set(shipped) >= REQUIRED
    for name, description in shipped.items():
        assert description and "\n" not in description, name
        scenario = load_scenario(name)
        assert scenario.name == name and scenario.duration > 0


def test_user_scenario_file_loads_with_its_settings():
    scenario = load_scenario(FIXTURES / "good-custom.toml")
    assert scenario.time_scale == 10
    assert scenario.server.lifetime == 120.0 and scenario.server.routing == "round_robin"
    assert scenario.server.retry_schedule == (0.0, 5.0)
    assert scenario.traffic.mix == {"message": 2.0, "shortcut": 1.0}
    (step,) = scenario.chaos
    assert (step.action, step.target, step.line) == ("drop", "oldest", 14)
    assert [step.times_fired(t) for t in (9, 10, 14.9, 15, 20, 99)] == [0, 1, 1, 2, 3, 3]


@pytest.mark.parametrize(
    ("fixture", "line", "words"),
    [
        ("syntax-error.toml", 4, "not valid TOML"),
        ("unknown-key.toml", 5, "unknown key 'pingg_interval'"),
        ("bad-value.toml", 5, "rate should be a number"),
        ("bad-chaos-action.toml", 9, "unknown action 'explode'"),
        ("bad-mix-kind.toml", 5, "unknown event kind 'telepathy'"),
        ("missing-at.toml", 3, "needs `at`"),
    ],
)
def test_bad_scenario_file_error_names_file_and_line(fixture, line, words):
    path = FIXTURES / fixture
    with pytest.raises(ConfigError) as caught:
        load_scenario(path)
    err = caught.value
    assert err.path == str(path) and err.line == line
    assert str(err).startswith(f"{path}:{line}: ")
    assert words in str(err)


def test_unknown_builtin_name_lists_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        load_scenario("no-such-scenario")
    assert "steady" in (caught.value.hint or "")


def test_semantic_checks_cover_routing_and_negative_numbers():
    with pytest.raises(ConfigError, match="routing 'fastest'"):
        parse_scenario('[server]\nrouting = "fastest"\n', path="x.toml")
    with pytest.raises(ConfigError, match="cannot be negative") as caught:
        parse_scenario("\n[server]\ngrace = -1\n", path="x.toml")
    assert caught.value.line == 3


def test_one_shot_step_fires_once():
    step = ChaosStep(at=5.0, action="refresh")
    assert [step.times_fired(t) for t in (0, 5, 500)] == [0, 1, 1]
