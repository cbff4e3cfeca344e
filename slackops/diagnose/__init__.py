"""``slackops diagnose``: explain a Socket Mode incident from recordings and the logs deployments already have.

::

    from slackops.diagnose import diagnose, Report
    report = diagnose(["bot.log", "recording.db"], since=None, until=None, thresholds={"ack_p99_budget_ms": 500})
    report.findings          # list[slackops.findings.Finding], worst first
    report.exit_code("warning")
    report.to_dict()         # the --json document

Readers (:mod:`.readers`) turn each input into records; detectors (:mod:`.detectors`), one per failure mode, are
fed those records and report findings; :mod:`.render` draws the report in a terminal.
"""

from __future__ import annotations

from slackops.diagnose.engine import diagnose, diagnose_records
from slackops.diagnose.report import Report
from slackops.diagnose.thresholds import THRESHOLDS

__all__ = ["THRESHOLDS", "Report", "diagnose", "diagnose_records"]
