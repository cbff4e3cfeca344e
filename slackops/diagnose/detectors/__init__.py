"""Detectors: one per failure mode of shared/reference/failure-modes.md, each named after its runbook slug.

:data:`ALL` lists them in catalogue order; each is fed records of the kinds it declares and reports findings
(codes from :mod:`slackops.findings`) at the end.
"""

from __future__ import annotations

from slackops.diagnose.detectors.ack_timeout import AckTimeout
from slackops.diagnose.detectors.auth_failure import AuthFailure
from slackops.diagnose.detectors.base import Context, Detector
from slackops.diagnose.detectors.bot_self_loop import BotSelfLoop
from slackops.diagnose.detectors.competing_consumers import CompetingConsumers
from slackops.diagnose.detectors.disconnect_storm import DisconnectStorm
from slackops.diagnose.detectors.fan_out import FanOut
from slackops.diagnose.detectors.lost_in_flight import LostInFlight
from slackops.diagnose.detectors.out_of_order import OutOfOrder
from slackops.diagnose.detectors.queue_overflow import QueueOverflow
from slackops.diagnose.detectors.rate_limited import RateLimited
from slackops.diagnose.detectors.retry_duplication import RetryDuplication
from slackops.diagnose.detectors.silent_deafness import SilentDeafness
from slackops.diagnose.detectors.stale_watchdog import StaleWatchdog
from slackops.diagnose.detectors.thundering_herd import ThunderingHerd

ALL: tuple[type[Detector], ...] = (
    DisconnectStorm,
    AckTimeout,
    QueueOverflow,
    StaleWatchdog,
    SilentDeafness,
    CompetingConsumers,
    RetryDuplication,
    FanOut,
    BotSelfLoop,
    ThunderingHerd,
    LostInFlight,
    OutOfOrder,
    RateLimited,
    AuthFailure,
)

__all__ = ["ALL", "Context", "Detector"]
