"""Live findings: diagnose's detectors, fed the records the view sees, asked for findings every few seconds.

``slackops diagnose`` feeds each detector records in time order and asks for findings once at the end. A
detector's ``finish`` may consume its own state (pending envelopes become "never acked"), so the view asks a
*copy* each time: the originals keep being fed, and findings mean "what diagnose would say if the data ended
now". Detectors keep only bounded state, so the copy is bounded too.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any


def available() -> bool:
    """True when the diagnose package (and its detectors) can be imported."""
    try:
        import slackops.diagnose.detectors
        import slackops.diagnose.thresholds  # noqa: F401
    except ImportError:
        return False
    return True


class LiveFindings:
    """Every diagnose detector, fed incrementally; :meth:`findings` reports without ending the feed."""

    def __init__(self, thresholds: Mapping[str, float] | None = None) -> None:
        from slackops.diagnose.detectors import ALL, Context
        from slackops.diagnose.rows import convert
        from slackops.diagnose.thresholds import load

        settings = load(dict(thresholds) if thresholds else None)
        self._detectors = [cls(settings) for cls in ALL]
        self._context = Context(formats={"slackops-live"})
        # Row handlers (each takes a sequence of rows), fed one row per record: converting the dict once, not
        # once per detector, is what keeps the view at thousands of records per second.
        self._routes: dict[str, list[Callable[[Any], None]]] = {}
        for detector in self._detectors:
            for kind, handler in detector.row_handlers().items():
                self._routes.setdefault(kind, []).append(handler)
        self._convert = convert
        #: records a detector choked on (counted, never fatal: the view must keep running)
        self.rejected = 0

    def feed(self, rec: dict[str, Any]) -> None:
        """Hand one record to the detectors that want its kind."""
        kind = rec.get("kind")
        t = rec.get("t")
        if not isinstance(kind, str) or not isinstance(t, (int, float)):
            return
        ctx = self._context
        ctx.kinds[kind] += 1
        if ctx.t_first is None:
            ctx.t_first = float(t)
        if ctx.t_last is None or t > ctx.t_last:
            ctx.t_last = float(t)
        routes = self._routes.get(kind)
        if not routes:
            return
        try:
            row = self._convert(rec)
        except ValueError:
            self.rejected += 1
            return
        rows = (row,)
        for handle in routes:
            try:
                handle(rows)
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
                # diagnose's engine counts such records and moves on; so does the view.
                self.rejected += 1

    def findings(self) -> list[Any]:
        """Findings as if the data ended now (:class:`slackops.findings.Finding` objects, worst first)."""
        if not sum(self._context.kinds.values()):
            return []
        ctx = copy.deepcopy(self._context)
        out = []
        for detector in self._detectors:
            out.extend(copy.deepcopy(detector).finish(ctx))
        return sorted(out, key=lambda f: (-int(f.severity or 0), f.code))
