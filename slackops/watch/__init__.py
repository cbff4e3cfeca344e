"""``slackops watch`` and ``slackops.instrument()``: see the Socket Mode transport, record every frame.

Library API::

    from slackops.watch import Watcher, WatchConfig, resolve_target
    target, mode = resolve_target(app_token=None)          # no token: the built-in simulator
    watcher = Watcher(WatchConfig(target, mode=mode, duration_s=30), writer=RecordWriter(db="slackops.db"))
    summary = asyncio.run(watcher.run())                    # JSON-able dict

    import slackops
    slackops.instrument(handler, db="slackops.db")          # record an existing slack-sdk / Bolt client
"""

from slackops.watch.instrument import Instrumentation, instrument
from slackops.watch.stats import WatchStats
from slackops.watch.watcher import (
    DEFAULT_SCENARIO,
    EVENT_STEALING,
    SLACK_API_URL,
    Mode,
    Target,
    WatchConfig,
    Watcher,
    is_loopback,
    resolve_target,
)

__all__ = [
    "DEFAULT_SCENARIO",
    "EVENT_STEALING",
    "SLACK_API_URL",
    "Instrumentation",
    "Mode",
    "Target",
    "WatchConfig",
    "WatchStats",
    "Watcher",
    "instrument",
    "is_loopback",
    "resolve_target",
]
