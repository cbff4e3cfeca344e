"""The per-app connection registry: live sockets, ghosts, the cap and each socket's lifetime. Pure (takes ``now``).

Slack keeps a *registration* per socket. A socket that vanished without a close handshake stays registered for a
long time (python-slack-sdk#1940: up to about 5 h): the ghost counts toward ``num_connections`` and the cap of 10,
and envelopes routed to it are black-holed. This module models exactly that, plus the per-socket lifetime
(``warning`` about 10 s before ``refresh_requested``, then a hard drop after a grace period) and the server's
control pings. :meth:`Registry.tick` returns what the server must do now; it never touches a socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LIVE = "live"
GHOST = "ghost"
GONE = "gone"


@dataclass(frozen=True)
class Timing:
    """Registry durations in *monotonic seconds* (already divided by the time scale)."""

    lifetime: float = 18060.0
    debug_lifetime: float = 360.0
    warning_lead: float = 10.0
    grace: float = 10.0
    ping_interval: float = 10.0
    ghost_ttl: float = 18000.0
    ghosts: bool = True
    cap: int = 10


@dataclass
class Registration:
    """One socket as the server sees it."""

    id: str
    opened_at: float
    refresh_at: float
    warn_at: float | None
    drop_at: float
    next_ping: float | None
    debug: bool = False
    state: str = LIVE
    half_open: bool = False
    warned: bool = False
    refreshed: bool = False
    closed_at: float | None = None
    ghost_until: float | None = None
    #: a ghost planted by chaos (no socket ever existed)
    synthetic: bool = False
    #: not a socket: the HTTP Request URL of Events API (HTTP) mode; no lifetime, no pings
    endpoint: bool = False

    @property
    def blackhole(self) -> bool:
        """Envelopes routed here never reach a client."""
        return self.state == GHOST or self.half_open

    def age(self, now: float) -> float:
        return now - self.opened_at


@dataclass(frozen=True)
class Control:
    """Something the server must do to a socket: send ``warning`` / ``refresh_requested``, ``ping``, or ``drop``."""

    conn: str
    action: str


@dataclass
class Registry:
    """Registrations of one app, with the cap, ghosts and lifetimes."""

    timing: Timing = field(default_factory=Timing)
    pings_enabled: bool = True
    regs: dict[str, Registration] = field(default_factory=dict)
    #: periods (ms) during which no live socket existed, measured between the last close and the next open
    gaps_ms: list[float] = field(default_factory=list)
    _counter: int = 0
    _zero_since: float | None = None

    # -- admission -------------------------------------------------------------------------------------------

    def count(self, now: float) -> int:
        """Registered connections: live sockets plus ghosts that have not aged out (what hello reports)."""
        self.expire(now)
        return sum(1 for r in self.regs.values() if r.state in (LIVE, GHOST))

    def live(self) -> list[Registration]:
        """Live sockets (not ghosts, not the HTTP endpoint)."""
        return [r for r in self.regs.values() if r.state == LIVE and not r.endpoint]

    def admit(self, now: float, *, debug: bool = False) -> Registration | None:
        """Register a new socket, or return ``None`` when the app is at its cap (too_many_websockets).

        Ghosts count toward the cap: that is how a leak of unclean disconnects locks an app out (#1940).
        """
        if self.count(now) >= self.timing.cap:
            return None
        self._counter += 1
        reg = self._new(f"s{self._counter}", now, debug=debug)
        if self._zero_since is not None:
            self.gaps_ms.append((now - self._zero_since) * 1000.0)
            self._zero_since = None
        self.regs[reg.id] = reg
        return reg

    def _new(self, conn_id: str, now: float, *, debug: bool) -> Registration:
        t = self.timing
        lifetime = t.debug_lifetime if debug else t.lifetime
        refresh_at = now + lifetime
        warn_at = refresh_at - t.warning_lead if t.warning_lead > 0 else None
        ping = now + t.ping_interval if t.ping_interval > 0 else None
        return Registration(
            id=conn_id,
            opened_at=now,
            refresh_at=refresh_at,
            warn_at=warn_at,
            drop_at=refresh_at + t.grace,
            next_ping=ping,
            debug=debug,
        )

    def lifetime_of(self, reg: Registration) -> float:
        return reg.refresh_at - reg.opened_at

    # -- endings ---------------------------------------------------------------------------------------------

    def closed(self, conn_id: str, now: float, *, clean: bool) -> Registration | None:
        """The socket is gone. Without a close handshake the registration lingers as a ghost (if enabled)."""
        reg = self.regs.get(conn_id)
        if reg is None or reg.state != LIVE:
            return reg
        reg.closed_at = now
        if not clean and self.timing.ghosts and self.timing.ghost_ttl > 0:
            reg.state = GHOST
            reg.ghost_until = now + self.timing.ghost_ttl
        else:
            reg.state = GONE
        if not self.live():
            self._zero_since = now
        return reg

    def add_endpoint(self, conn_id: str, now: float) -> Registration:
        """Register a delivery target that is not a socket (the Events API Request URL in HTTP mode)."""
        never = float("inf")
        reg = Registration(
            id=conn_id,
            opened_at=now,
            refresh_at=never,
            warn_at=None,
            drop_at=never,
            next_ping=None,
            endpoint=True,
        )
        self.regs[conn_id] = reg
        return reg

    def forget(self, conn_id: str, now: float) -> None:
        """The server itself ended this socket (a drop it initiated, or a refused one): no ghost is left."""
        reg = self.regs.get(conn_id)
        if reg is None:
            return
        was_live = reg.state == LIVE
        reg.state = GONE
        reg.closed_at = reg.closed_at or now
        if was_live and not self.live():
            self._zero_since = now

    def plant_ghost(self, now: float) -> Registration:
        """Add a ghost registration with no socket behind it (chaos: a crashed replica's leftovers)."""
        self._counter += 1
        reg = self._new(f"s{self._counter}", now, debug=False)
        reg.state = GHOST
        reg.synthetic = True
        reg.closed_at = now
        reg.ghost_until = now + self.timing.ghost_ttl
        self.regs[reg.id] = reg
        return reg

    def expire(self, now: float) -> list[Registration]:
        """Age out ghosts whose time is up; return them."""
        gone = []
        for conn_id, reg in list(self.regs.items()):
            if reg.state == GHOST and reg.ghost_until is not None and now >= reg.ghost_until:
                reg.state = GONE
                gone.append(reg)
            if reg.state == GONE:
                del self.regs[conn_id]  # keep the registry bounded over long churny runs
        return gone

    # -- routing and lifetime --------------------------------------------------------------------------------

    def routable(self, now: float) -> list[Registration]:
        """Registrations a delivery may be routed to: live sockets and ghosts, in opening order."""
        self.expire(now)
        return [r for r in self.regs.values() if r.state in (LIVE, GHOST)]

    def refresh(self, conn_id: str, now: float) -> None:
        """Start the refresh sequence on one socket now: warning now, refresh_requested after the lead."""
        reg = self.regs.get(conn_id)
        if reg is None or reg.state != LIVE or reg.refreshed:
            return
        reg.refresh_at = now + self.timing.warning_lead
        reg.warn_at = now if self.timing.warning_lead > 0 else None
        reg.drop_at = reg.refresh_at + self.timing.grace

    def tick(self, now: float) -> list[Control]:
        """Everything due at ``now``: lifetime messages, hard drops and control pings, in that order per socket."""
        out: list[Control] = []
        self.expire(now)
        for reg in list(self.regs.values()):
            if reg.state != LIVE or reg.endpoint:
                continue
            if reg.warn_at is not None and not reg.warned and now >= reg.warn_at and not reg.refreshed:
                reg.warned = True
                out.append(Control(reg.id, "warning"))
            if not reg.refreshed and now >= reg.refresh_at:
                reg.refreshed = True
                out.append(Control(reg.id, "refresh_requested"))
            if now >= reg.drop_at:
                out.append(Control(reg.id, "drop"))
                continue
            if self.pings_enabled and reg.next_ping is not None and now >= reg.next_ping:
                reg.next_ping = now + self.timing.ping_interval
                if not reg.half_open:
                    out.append(Control(reg.id, "ping"))
        return out

    def next_due(self) -> float | None:
        """The earliest time :meth:`tick` has something to do (for a server that sleeps until then)."""
        times: list[float] = []
        for reg in self.regs.values():
            if reg.state == LIVE and not reg.endpoint:
                if reg.warn_at is not None and not reg.warned:
                    times.append(reg.warn_at)
                times.append(reg.refresh_at if not reg.refreshed else reg.drop_at)
                if self.pings_enabled and reg.next_ping is not None:
                    times.append(reg.next_ping)
            elif reg.state == GHOST and reg.ghost_until is not None:
                times.append(reg.ghost_until)
        return min(times) if times else None
