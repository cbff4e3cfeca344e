"""``slackops simulate``: a local Socket Mode server that behaves like Slack, with chaos and a scorecard.

Library API::

    from slackops.simulator import Simulator, load_scenario, list_scenarios, Scorecard
    sim = Simulator(load_scenario("refresh-churn"), time_scale=60.0, seed=1)
    await sim.start()          # sim.api_url, sim.app_token, sim.bot_token
    ...
    card = sim.scorecard()
    await sim.stop()

The pure parts (:mod:`.registry`, :mod:`.engine`, :mod:`.ledger`, :mod:`.traffic`, :mod:`.scenario`) take ``now``
and never do I/O; :mod:`.server` is the aiohttp shell around them.
"""

from slackops.simulator.ledger import Event, Scorecard
from slackops.simulator.scenario import Scenario, list_scenarios, load_scenario, parse_scenario
from slackops.simulator.server import ConnectionInfo, Simulator, SimulatorThread

__all__ = [
    "ConnectionInfo",
    "Event",
    "Scenario",
    "Scorecard",
    "Simulator",
    "SimulatorThread",
    "list_scenarios",
    "load_scenario",
    "parse_scenario",
]
