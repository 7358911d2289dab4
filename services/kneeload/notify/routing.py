"""Which channels an alert goes to: a small JSON routing document per deployment.

    {
      "channels": {
        "team-a-hook":  {"type": "webhook", "url": "https://example.org/hook",
                         "headers": {"Authorization": "Bearer ..."}},
        "team-a-slack": {"type": "slack", "url": "https://hooks.slack.com/services/..."},
        "clinic-x-mail": {"type": "email", "to": ["physio@clinic-x.example"],
                          "daily_digest": {"at": "07:00", "time_zone": "Europe/Oslo",
                                           "transitions": ["resolved"]}}
      },
      "routes": [
        {"team_id": "team-a", "channels": ["team-a-hook", "team-a-slack"]},
        {"clinic_id": "clinic-x", "channels": ["clinic-x-mail"], "min_severity": "warning"},
        {"team_id": "*", "kinds": ["pain_high"], "channels": ["team-a-hook"]}
      ]
    }

A route matches when every selector it names matches the alert (``team_id``,
``clinic_id``: an id or ``"*"`` for any non-null one; ``kinds``: a list;
``min_severity``: info < warning < critical). A route naming no team/clinic selector
matches every alert. An alert goes to the union of the channels of all matching
routes, each channel once. A channel is one recipient: the rate limit and the digest
are per channel name, and the delivery ledger is keyed by (alert_id, channel name), so
renaming a channel means "new recipient".

A channel's optional ``daily_digest`` holds back the episode changes whose transition it
lists (default ``["resolved"]``: "it is over" rarely needs a push) and every change of the
alert ``kinds`` it lists (slow signals such as a 7-day pain trend) and sends them as ONE
digest message at ``at`` (HH:MM, 24 h) in ``time_zone`` (IANA, default UTC) each day;
opened and escalated changes are pushed at once as before. The digest's message id is
``digest-daily-<local date>``, so a retry or a crashed notifier resends the same digest.

The document comes from ``KNEELOAD_NOTIFY_ROUTES`` (inline JSON) or the file named by
``KNEELOAD_NOTIFY_ROUTES_FILE``; neither means "deliver nowhere" (alerts are still
consumed and committed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from kneeload.settings import Settings, reveal

__all__ = [
    "SEVERITY_RANK",
    "Channel",
    "DailyDigest",
    "Route",
    "Routing",
    "RoutingError",
    "load_routing",
]

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
ChannelType = Literal["webhook", "slack", "email"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class RoutingError(ValueError):
    """The routing document is malformed (the message says where)."""


TRANSITIONS = ("opened", "escalated", "resolved")


@dataclass(frozen=True, slots=True)
class DailyDigest:
    """Changes of the listed transitions wait for one message a day at ``at`` local time."""

    at: dt.time
    time_zone: str = "UTC"
    transitions: frozenset[str] = frozenset({"resolved"})
    kinds: frozenset[str] = frozenset()  # slow signals (trends): every change waits

    def holds(self, alert: Mapping[str, Any]) -> bool:
        """Does ``alert`` (an episode change) wait for the digest?"""
        if alert.get("kind") in self.kinds:
            return True
        values = alert.get("values")
        tr = values.get("episode_transition") if isinstance(values, Mapping) else None
        return tr in self.transitions

    def next_send(self, now: dt.datetime) -> dt.datetime:
        """The first digest time strictly after ``now`` (aware), as an aware UTC datetime;
        local wall-clock time, so it stays at ``at`` across daylight-saving changes."""
        tz = ZoneInfo(self.time_zone)
        local = now.astimezone(tz)
        at = dt.datetime.combine(local.date(), self.at, tz)
        if at <= local:
            at = dt.datetime.combine(local.date() + dt.timedelta(days=1), self.at, tz)
        return at.astimezone(dt.UTC)

    def message_id(self, send_at: dt.datetime) -> str:
        """``digest-daily-<local date>``: the same for every member and every retry."""
        return f"digest-daily-{send_at.astimezone(ZoneInfo(self.time_zone)).date().isoformat()}"


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    type: ChannelType
    url: str | None = None
    to: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    daily_digest: DailyDigest | None = None

    @property
    def recipient(self) -> str:
        """The rate-limit key: the channel itself (one inbox / one webhook endpoint)."""
        return self.name


@dataclass(frozen=True, slots=True)
class Route:
    channels: tuple[str, ...]
    team_id: str | None = None
    clinic_id: str | None = None
    kinds: frozenset[str] | None = None
    min_severity: str = "info"

    def matches(self, alert: Mapping[str, Any]) -> bool:
        for key, want in (("team_id", self.team_id), ("clinic_id", self.clinic_id)):
            if want is None:
                continue
            have = alert.get(key)
            if have is None or (want != "*" and have != want):
                return False
        if self.kinds is not None and alert.get("kind") not in self.kinds:
            return False
        return SEVERITY_RANK.get(_route_severity(alert), 0) >= SEVERITY_RANK[self.min_severity]


def _route_severity(alert: Mapping[str, Any]) -> str:
    """The severity a route judges: a resolved episode's change (severity info) is routed by
    the episode's highest severity, so it reaches every channel that heard of the episode."""
    values = alert.get("values")
    if isinstance(values, Mapping) and values.get("episode_transition") == "resolved":
        return str(values.get("episode_severity") or alert.get("severity"))
    return str(alert.get("severity"))


@dataclass(frozen=True, slots=True)
class Routing:
    channels: Mapping[str, Channel]
    routes: tuple[Route, ...]

    def channels_for(self, alert: Mapping[str, Any]) -> list[Channel]:
        """The channels ``alert`` goes to, each once, in document order."""
        names: dict[str, None] = {}
        for route in self.routes:
            if route.matches(alert):
                names.update(dict.fromkeys(route.channels))
        return [self.channels[n] for n in names]

    @classmethod
    def empty(cls) -> Routing:
        return cls(channels={}, routes=())

    @classmethod
    def parse(cls, doc: Any) -> Routing:
        if not isinstance(doc, dict):
            raise RoutingError("routing document must be a JSON object")
        unknown = set(doc) - {"channels", "routes"}
        if unknown:
            raise RoutingError(f"unknown top-level keys: {sorted(unknown)}")
        channels: dict[str, Channel] = {}
        for name, spec in (doc.get("channels") or {}).items():
            channels[name] = _channel(name, spec)
        routes = tuple(_route(i, spec, channels) for i, spec in enumerate(doc.get("routes") or []))
        return cls(channels=channels, routes=routes)


def _daily_digest(where: str, spec: Any) -> DailyDigest | None:
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise RoutingError(f"{where}: must be an object")
    unknown = set(spec) - {"at", "time_zone", "transitions", "kinds"}
    if unknown:
        raise RoutingError(f"{where}: unknown keys {sorted(unknown)}")
    at = spec.get("at")
    m = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", at) if isinstance(at, str) else None
    if m is None:
        raise RoutingError(f"{where}.at: a local time HH:MM (24 h) is required, got {at!r}")
    tz = spec.get("time_zone", "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise RoutingError(f"{where}.time_zone: not an IANA time zone: {tz!r}") from exc
    trs = spec.get("transitions", ["resolved"])
    if not isinstance(trs, list) or not trs or not set(trs) <= set(TRANSITIONS):
        raise RoutingError(f"{where}.transitions: a non-empty list of {', '.join(TRANSITIONS)}")
    kinds = spec.get("kinds", [])
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise RoutingError(f"{where}.kinds: must be a list of alert kinds")
    return DailyDigest(
        dt.time(int(m.group(1)), int(m.group(2))), tz, frozenset(trs), frozenset(kinds)
    )


def _channel(name: str, spec: Any) -> Channel:
    where = f"channels.{name}"
    if not _NAME.match(name):
        raise RoutingError(f"{where}: channel names are 1-64 of [A-Za-z0-9._:-]")
    if not isinstance(spec, dict):
        raise RoutingError(f"{where}: must be an object")
    digest = _daily_digest(f"{where}.daily_digest", spec.get("daily_digest"))
    ch = _channel_transport(name, where, spec)
    return ch if digest is None else dataclasses.replace(ch, daily_digest=digest)


def _channel_transport(name: str, where: str, spec: dict[str, Any]) -> Channel:
    kind = spec.get("type")
    if kind in ("webhook", "slack"):
        url = spec.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise RoutingError(f"{where}.url: an http(s) URL is required")
        headers = spec.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise RoutingError(f"{where}.headers: must map strings to strings")
        return Channel(name=name, type=kind, url=url, headers=dict(headers))
    if kind == "email":
        to = spec.get("to")
        if isinstance(to, str):
            to = [to]
        ok = isinstance(to, list) and to and all(isinstance(a, str) and "@" in a for a in to)
        if not ok:
            raise RoutingError(f"{where}.to: one or more email addresses are required")
        return Channel(name=name, type="email", to=tuple(str(a) for a in to or ()))
    raise RoutingError(f"{where}.type: must be webhook, slack or email (got {kind!r})")


def _route(i: int, spec: Any, channels: Mapping[str, Channel]) -> Route:
    where = f"routes[{i}]"
    if not isinstance(spec, dict):
        raise RoutingError(f"{where}: must be an object")
    unknown = set(spec) - {"channels", "team_id", "clinic_id", "kinds", "min_severity"}
    if unknown:
        raise RoutingError(f"{where}: unknown keys {sorted(unknown)}")
    names = spec.get("channels")
    if not isinstance(names, list) or not names:
        raise RoutingError(f"{where}.channels: a non-empty list of channel names is required")
    for n in names:
        if n not in channels:
            raise RoutingError(f"{where}.channels: unknown channel {n!r}")
    kinds = spec.get("kinds")
    if kinds is not None and (
        not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds)
    ):
        raise RoutingError(f"{where}.kinds: must be a list of alert kinds")
    sev = spec.get("min_severity", "info")
    if sev not in SEVERITY_RANK:
        raise RoutingError(f"{where}.min_severity: one of info, warning, critical")
    return Route(
        channels=tuple(names),
        team_id=spec.get("team_id"),
        clinic_id=spec.get("clinic_id"),
        kinds=frozenset(kinds) if kinds is not None else None,
        min_severity=sev,
    )


def load_routing(settings: Settings) -> Routing:
    """The routing of ``settings`` (inline JSON first, then the file; else empty)."""
    inline = reveal(settings.notify_routes)
    if inline:
        raw: bytes = inline.encode()
    elif settings.notify_routes_file is not None:
        raw = settings.notify_routes_file.read_bytes()
    else:
        return Routing.empty()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RoutingError(f"routing document is not JSON: {exc}") from exc
    return Routing.parse(doc)
