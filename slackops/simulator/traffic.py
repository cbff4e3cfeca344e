"""Event generation: Slack-shaped payloads for every traffic kind, and the scenario's background rate. Pure.

Payload shapes follow the Events API callback and the Socket Mode examples in shared/reference/socket-mode.md
§2.3: an ``events_api`` payload is the full ``event_callback`` object (``event_id`` stable across retries, the
inner ``event`` carrying ``ts``), slash commands and interactive payloads are what Slack documents for them.
Two Slack habits matter for bots and are reproduced: one @-mention arrives as an ``app_mention`` *and* a
``message`` with the same ``ts``; and a bot's own post comes back as a ``message`` event with its ``bot_id``.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from slackops.simulator.ledger import Event
from slackops.simulator.scenario import TRAFFIC_KINDS, TrafficSettings

TEAM_ID = "T0SIM0001"
APP_ID = "A0SIMAPP01"
BOT_USER_ID = "U0SIMBOT01"
BOT_ID = "B0SIMBOT01"
OTHER_BOT_ID = "B0OTHERBOT"

#: accepts_response_payload per kind (Slack docs: true for slash commands and view_submission; python-slack-sdk
#: fixtures show false for shortcut and block_actions)
ACCEPTS_RESPONSE = {"slash_command": True, "view_submission": True, "block_suggestion": True}


@dataclass
class Identity:
    """The ids a simulated workspace uses."""

    team_id: str = TEAM_ID
    app_id: str = APP_ID
    bot_user_id: str = BOT_USER_ID
    bot_id: str = BOT_ID


def _pad(event: Event, size: int) -> None:
    """Grow the payload by about ``size`` bytes with a section block (where a real large payload's bulk is)."""
    block = {"type": "section", "block_id": "pad", "text": {"type": "mrkdwn", "text": "x" * size}}
    target = event.payload.get("event") if event.type == "events_api" else event.payload
    if event.type == "slash_commands":
        target["text"] = (target.get("text") or "") + " " + "x" * size
        return
    target.setdefault("blocks", []).append(block)


class TrafficGenerator:
    """Makes events: on demand (:meth:`make`), at the scenario's rate (:meth:`due`), and bot echoes (:meth:`echo`)."""

    def __init__(
        self,
        settings: TrafficSettings,
        rng: random.Random,
        *,
        identity: Identity | None = None,
        response_base: str = "http://127.0.0.1/commands/",
    ) -> None:
        self.settings = settings
        self.rng = rng
        self.ids = identity or Identity()
        self.response_base = response_base
        self.channels = [f"C0SIM{n:04d}" for n in range(1, settings.channels + 1)]
        self.users = [f"U0SIM{n:04d}" for n in range(1, settings.users + 1)]
        self._last_ts = 0.0
        self._emitted = 0
        self._started: float | None = None
        kinds = [(k, w) for k, w in settings.mix.items() if w > 0]
        self._kinds = [k for k, _ in kinds]
        self._weights = [w for _, w in kinds]

    # -- background rate -------------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        self._started = now
        self._emitted = 0

    def due(self, now: float, wall: float) -> list[Event]:
        """Events the background rate owes at monotonic ``now`` (evenly spaced, kinds drawn from the mix)."""
        if self._started is None or self.settings.rate <= 0 or not self._kinds:
            return []
        owed = int((now - self._started) * self.settings.rate) - self._emitted
        out: list[Event] = []
        for _ in range(max(0, owed)):
            self._emitted += 1
            kind = self.rng.choices(self._kinds, weights=self._weights)[0]
            out.extend(self.make(kind, wall))
        return out

    # -- builders --------------------------------------------------------------------------------------------

    def next_ts(self, wall: float) -> str:
        """A message ts: epoch seconds with 6 decimals, unique and increasing like Slack's."""
        # Count in whole microseconds: float seconds 1 us apart can format to the same 6-digit ts in a burst,
        # and replies are attributed by ts.
        micros = max(round(wall * 1_000_000), round(self._last_ts * 1_000_000) + 1)
        self._last_ts = micros / 1_000_000
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _id(self, prefix: str, n: int = 10) -> str:
        return prefix + "".join(self.rng.choices(string.ascii_uppercase + string.digits, k=n))

    def make(
        self,
        kind: str,
        wall: float,
        *,
        channel: str | None = None,
        user: str | None = None,
        text: str | None = None,
        thread_ts: str | None = None,
        pad_bytes: int = 0,
    ) -> list[Event]:
        """One occurrence of ``kind`` (an app_mention may bring its paired ``message``).

        ``pad_bytes`` adds a block of about that many bytes (large payloads arrive as fragmented frames);
        otherwise the scenario's ``large_share`` decides whether this one is large.
        """
        if kind not in TRAFFIC_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; known: {', '.join(TRAFFIC_KINDS)}")
        channel = channel or self.rng.choice(self.channels)
        user = user or self.rng.choice(self.users)
        if TRAFFIC_KINDS[kind] == "events_api":
            events = self._events_api(kind, wall, channel, user, text, thread_ts)
        elif kind == "slash_command":
            events = [self._slash(wall, channel, user, text)]
        else:
            events = [self._interactive(kind, wall, channel, user)]
        if not pad_bytes and self.settings.large_share > 0 and self.rng.random() < self.settings.large_share:
            pad_bytes = self.settings.large_bytes
        if pad_bytes:
            for event in events:
                _pad(event, pad_bytes)
        return events

    def _events_api(
        self, kind: str, wall: float, channel: str, user: str, text: str | None, thread_ts: str | None
    ) -> list[Event]:
        ts = self.next_ts(wall)
        mention = f"<@{self.ids.bot_user_id}>"
        if kind == "app_mention":
            inner = self._message(ts, channel, user, text or f"{mention} can you help?", thread_ts)
            inner["type"] = "app_mention"
            events = [self._callback(inner, wall, kind, ts=ts, channel=channel, user=user)]
            if self.settings.mention_pairs:
                # Slack delivers the same mention as a plain message event too (when subscribed to message.*).
                plain = self._message(ts, channel, user, inner["text"], thread_ts)
                events.append(self._callback(plain, wall, "message", ts=ts, channel=channel, user=user))
            return events
        if kind == "message_changed":
            original_ts = self.next_ts(wall - 30.0)
            edited = self._message(original_ts, channel, user, text or "edited text", thread_ts)
            edited["edited"] = {"user": user, "ts": ts}
            inner = {
                "type": "message",
                "subtype": "message_changed",
                "hidden": True,
                "channel": channel,
                "message": edited,
                "previous_message": self._message(original_ts, channel, user, "original text", thread_ts),
                "ts": ts,
                "event_ts": ts,
                "channel_type": "channel",
            }
            # A bot that answers an edit threads on the edited message: attribute replies to that ts.
            return [
                self._callback(
                    inner, wall, kind, ts=original_ts, channel=channel, user=user, subtype="message_changed"
                )
            ]
        if kind == "bot_message":
            inner = self._message(ts, channel, None, text or "deploy finished", thread_ts)
            inner.update({"subtype": "bot_message", "bot_id": OTHER_BOT_ID, "username": "ci-bot"})
            return [
                self._callback(
                    inner, wall, kind, ts=ts, channel=channel, bot_id=OTHER_BOT_ID, subtype="bot_message"
                )
            ]
        if kind == "reaction_added":
            item_ts = self.next_ts(wall - 60.0)
            inner = {
                "type": "reaction_added",
                "user": user,
                "reaction": "eyes",
                "item": {"type": "message", "channel": channel, "ts": item_ts},
                "item_user": self.rng.choice(self.users),
                "event_ts": ts,
            }
            return [self._callback(inner, wall, kind, ts=ts, channel=channel, user=user)]
        inner = self._message(ts, channel, user, text or "hello there", thread_ts)
        return [self._callback(inner, wall, kind, ts=ts, channel=channel, user=user)]

    def echo(
        self, wall: float, *, channel: str, ts: str, thread_ts: str | None, text: str, depth: int
    ) -> Event:
        """The bot's own chat.postMessage, delivered back as a message event (what Slack does)."""
        inner = self._message(ts, channel, self.ids.bot_user_id, text, thread_ts)
        inner.update({"bot_id": self.ids.bot_id, "app_id": self.ids.app_id})
        event = self._callback(
            inner, wall, "message", ts=ts, channel=channel, user=self.ids.bot_user_id, bot_id=self.ids.bot_id
        )
        event.origin = "echo"
        event.depth = depth
        event.from_bot = True
        return event

    def _message(self, ts: str, channel: str, user: str | None, text: str, thread_ts: str | None) -> dict:
        msg = {
            "type": "message",
            "text": text,
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
            "channel_type": "channel",
            "team": self.ids.team_id,
            "blocks": [{"type": "rich_text", "block_id": "b0", "elements": []}],
        }
        if user:
            msg["user"] = user
            msg["client_msg_id"] = self._uuid()
        if thread_ts:
            msg["thread_ts"] = thread_ts
        return msg

    def _uuid(self) -> str:
        hexes = f"{self.rng.getrandbits(128):032x}"
        return f"{hexes[:8]}-{hexes[8:12]}-4{hexes[13:16]}-a{hexes[17:20]}-{hexes[20:]}"

    def _callback(
        self,
        inner: dict,
        wall: float,
        kind: str,
        *,
        ts: str,
        channel: str,
        user: str | None = None,
        bot_id: str | None = None,
        subtype: str | None = None,
    ) -> Event:
        event_id = self._id("Ev")
        payload = {
            "token": "sim-verification-token",
            "team_id": self.ids.team_id,
            "api_app_id": self.ids.app_id,
            "event": inner,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(wall),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.ids.team_id,
                    "user_id": self.ids.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{inner['type']}-{self.ids.team_id}-{channel}",
        }
        return Event(
            event_id=event_id,
            type="events_api",
            payload=payload,
            accepts_response_payload=False,
            kind=kind,
            ts=ts,
            channel=channel,
            user=user,
            bot_id=bot_id,
            subtype=subtype,
        )

    def _slash(self, wall: float, channel: str, user: str, text: str | None) -> Event:
        event_id = self._id("Sc")
        payload = {
            "token": "sim-verification-token",
            "team_id": self.ids.team_id,
            "team_domain": "sim",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/sim",
            "text": text or "status",
            "api_app_id": self.ids.app_id,
            "response_url": f"{self.response_base}{event_id}",
            "trigger_id": f"{int(wall)}.{self._id('', 8)}",
        }
        return Event(
            event_id=event_id,
            type="slash_commands",
            payload=payload,
            accepts_response_payload=True,
            kind="slash_command",
            channel=channel,
            user=user,
        )

    def _interactive(self, kind: str, wall: float, channel: str, user: str) -> Event:
        event_id = self._id("In")
        base = {
            "type": kind,
            "token": "sim-verification-token",
            "api_app_id": self.ids.app_id,
            "team": {"id": self.ids.team_id, "domain": "sim"},
            "user": {"id": user, "username": user.lower(), "team_id": self.ids.team_id},
            "is_enterprise_install": False,
            "enterprise": None,
            "trigger_id": f"{int(wall)}.{self._id('', 8)}",
        }
        ts = None
        if kind == "block_actions":
            ts = self.next_ts(wall - 5.0)
            base.update(
                {
                    "container": {
                        "type": "message",
                        "message_ts": ts,
                        "channel_id": channel,
                        "is_ephemeral": False,
                    },
                    "channel": {"id": channel, "name": "general"},
                    "message": {
                        "type": "message",
                        "ts": ts,
                        "user": self.ids.bot_user_id,
                        "text": "Approve?",
                    },
                    "response_url": f"{self.response_base}{event_id}",
                    "actions": [
                        {
                            "action_id": "approve",
                            "block_id": "b1",
                            "type": "button",
                            "value": "yes",
                            "action_ts": f"{wall:.6f}",
                        }
                    ],
                }
            )
        elif kind == "shortcut":
            base.update({"callback_id": "sim-shortcut", "action_ts": f"{wall:.6f}"})
        else:  # view_submission
            base["view"] = {
                "id": self._id("V"),
                "type": "modal",
                "callback_id": "sim-form",
                "state": {"values": {}},
                "hash": self._id("", 12),
            }
        return Event(
            event_id=event_id,
            type="interactive",
            payload=base,
            accepts_response_payload=ACCEPTS_RESPONSE.get(kind, False),
            kind=kind,
            ts=ts,
            channel=channel,
            user=user,
        )
