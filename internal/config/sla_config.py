"""The SLA config file: parsed and validated in full before anything uses it.

Every error names the key it is about (`policies.high.gold.response: ...`), so that an operator
who saved a broken file can fix it from one log line. The file may be hostile (an alias bomb, a
symlink to a foreign file): it is read and parsed within the bounds of yaml_load, and a message
shows a value only as `show_value` bounds it and a key only as `show_key` does, so that no
message is long or repeats a foreign file.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from internal.config.yaml_load import (
    YamlLoadError,
    load_yaml,
    read_bounded,
    show_key,
    show_value,
)
from internal.sla.business_calendar import BusinessCalendar, CalendarError
from internal.sla.calendar import ALWAYS_OPEN, TWENTY_FOUR_SEVEN, Calendar
from internal.sla.ladder import Ladder, Step
from internal.sla.model import AlertKind, Status
from internal.sla.policy import Rules, Targets


class ConfigError(ValueError):
    """The config file is invalid; the message names the offending key."""


# The kinds of notifier a channel may name (`type:`); internal/notify has one implementation each.
CHANNEL_TYPES = ("slack",)


@dataclass(frozen=True)
class Channel:
    name: str
    slack_webhook_env: str
    type: str = "slack"


@dataclass(frozen=True)
class SlaConfig:
    version: str  # hash of the file's bytes: recorded with every alert it decides
    ladder: Ladder
    pause_statuses: frozenset[Status]
    channels: Mapping[str, Channel]
    policies: Mapping[str, Mapping[str, Targets]]
    calendars: Mapping[str, Calendar] = field(default_factory=dict)

    def targets(self, priority: str, tier: str) -> Targets | None:
        return self.policies.get(priority, {}).get(tier)

    @property
    def rules(self) -> Rules:
        return Rules(self.ladder, self.pause_statuses, self.version)

    def for_tenant(self, tenant: str) -> SlaConfig:
        """One file-wide config serves every tenant (a TenantPolicies of its own)."""
        return self


MAX_DURATION_SECONDS = 3650 * 86400
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DEFAULT_STEPS = (
    (85, 1, AlertKind.WARNING),
    (95, 2, AlertKind.WARNING),
    (100, 3, AlertKind.BREACH),
    (150, 4, AlertKind.BREACH),
)
_DEFAULT_CHANNEL = "team"
_PAUSABLE = frozenset({Status.IN_PROGRESS, Status.ON_HOLD})


def parse_duration(value: object, key: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(
            f"{key}: expected a duration such as 900, '15m' or '4h', got {show_value(value)}"
        )
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value.strip())):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ConfigError(
            f"{key}: expected a duration such as 900, '15m' or '4h', got {show_value(value)}"
        )
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_DURATION_SECONDS:
        raise ConfigError(
            f"{key}: a duration must be positive and at most 3650d, got {show_value(value)}"
        )
    return seconds


def _mapping(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
    for k in value:
        if not isinstance(k, str):
            raise ConfigError(f"{key}: keys must be strings, got {show_value(k)}")
    return value


def _list(value: object, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
    return value


def _unknown_keys(value: Mapping[str, Any], allowed: set[str], key: str) -> None:
    extra = sorted(set(value) - allowed)
    if extra:
        prefix = f"{key}." if key else ""
        raise ConfigError(
            f"{prefix}{show_key(extra[0])}: unknown key (allowed: {', '.join(sorted(allowed))})"
        )


def _parse_ladder(raw: object) -> Ladder:
    steps: list[Step] = []
    for i, item in enumerate(_list(raw, "escalation")):
        key = f"escalation[{i}]"
        entry = _mapping(item, key)
        _unknown_keys(entry, {"at_percent", "level", "kind", "notify"}, key)
        for required in ("at_percent", "level", "kind"):
            if required not in entry:
                raise ConfigError(f"{key}.{required}: missing")
        pct, level, kind = entry["at_percent"], entry["level"], entry["kind"]
        if (
            isinstance(pct, bool)
            or not isinstance(pct, int | float)
            or not math.isfinite(pct)
            or not 0 < pct <= 10_000
        ):
            raise ConfigError(
                f"{key}.at_percent: expected a number in (0, 10000], got {show_value(pct)}"
            )
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 1000:
            raise ConfigError(
                f"{key}.level: expected an integer from 1 to 1000, got {show_value(level)}"
            )
        if not isinstance(kind, str) or kind not in {k.value for k in AlertKind}:
            raise ConfigError(f"{key}.kind: expected 'warning' or 'breach', got {show_value(kind)}")
        notify = _list(entry.get("notify", []), f"{key}.notify")
        if not all(isinstance(n, str) for n in notify):
            raise ConfigError(f"{key}.notify: expected a list of channel names")
        steps.append(Step(float(pct), level, AlertKind(kind), tuple(notify)))
    if not steps:
        raise ConfigError("escalation: at least one step is required")
    for i in range(1, len(steps)):
        if steps[i].at_percent <= steps[i - 1].at_percent or steps[i].level <= steps[i - 1].level:
            raise ConfigError(f"escalation[{i}]: steps must ascend in both at_percent and level")
    return Ladder(tuple(steps))


def _parse_calendars(raw: object) -> dict[str, Calendar]:
    calendars: dict[str, Calendar] = {TWENTY_FOUR_SEVEN: ALWAYS_OPEN}
    for name, item in _mapping(raw, "calendars").items():
        key = f"calendars.{show_key(name)}"
        if name == TWENTY_FOUR_SEVEN:
            raise ConfigError(f"{key}: '24x7' is built in and cannot be redefined")
        entry = _mapping(item, key)
        _unknown_keys(entry, {"timezone", "hours", "holidays"}, key)
        if "timezone" not in entry:
            raise ConfigError(f"{key}.timezone: missing")
        timezone = entry["timezone"]
        if not isinstance(timezone, str) or len(timezone) > 64:
            raise ConfigError(
                f"{key}.timezone: expected an IANA time zone name, got {show_value(timezone)}"
            )
        hours = _mapping(entry.get("hours", {}), f"{key}.hours")
        for day, ranges in hours.items():
            if show_key(day) != day:
                raise ConfigError(f"{key}.hours.{show_key(day)}: unknown weekday")
            if not isinstance(ranges, str) or len(ranges) > 200:
                raise ConfigError(
                    f'{key}.hours.{show_key(day)}: expected ranges like "09:00-17:00",'
                    f" got {show_value(ranges)}"
                )
        holidays = _list(entry.get("holidays", []), f"{key}.holidays")
        for i, day in enumerate(holidays):
            if not isinstance(day, str | date) or (isinstance(day, str) and len(day) > 32):
                raise ConfigError(
                    f'{key}.holidays[{i}]: expected a date like "2026-12-25", got {show_value(day)}'
                )
        try:
            calendars[name] = BusinessCalendar(name, timezone, hours, holidays)
        except CalendarError as err:
            # Its message quotes values, which the checks above have kept short.
            raise ConfigError(f"{key}: {_bounded(str(err))}") from None
    return calendars


def _parse_policies(
    raw: object, calendars: Mapping[str, Calendar]
) -> dict[str, dict[str, Targets]]:
    policies: dict[str, dict[str, Targets]] = {}
    for priority, tiers in _mapping(raw, "policies").items():
        policies[priority] = {}
        for tier, item in _mapping(tiers, f"policies.{show_key(priority)}").items():
            key = f"policies.{show_key(priority)}.{show_key(tier)}"
            entry = _mapping(item, key)
            _unknown_keys(entry, {"response", "resolution", "calendar"}, key)
            for required in ("response", "resolution"):
                if required not in entry:
                    raise ConfigError(f"{key}.{required}: missing")
            cal_name = entry.get("calendar", TWENTY_FOUR_SEVEN)
            # isinstance first: a list or mapping here cannot even be looked up (unhashable).
            if not isinstance(cal_name, str) or cal_name not in calendars:
                raise ConfigError(f"{key}.calendar: unknown calendar {show_value(cal_name)}")
            policies[priority][tier] = Targets(
                {
                    "response": parse_duration(entry["response"], f"{key}.response"),
                    "resolution": parse_duration(entry["resolution"], f"{key}.resolution"),
                },
                calendars[cal_name],
            )
        if not policies[priority]:
            raise ConfigError(f"policies.{show_key(priority)}: no customer tiers")
    if not policies:
        raise ConfigError("policies: at least one policy is required")
    return policies


def _parse_channels(raw: object) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    for name, item in _mapping(raw, "channels").items():
        key = f"channels.{show_key(name)}"
        entry = _mapping(item, key)
        _unknown_keys(entry, {"type", "slack_webhook_env"}, key)
        kind = entry.get("type", "slack")
        if not isinstance(kind, str) or kind not in CHANNEL_TYPES:
            raise ConfigError(
                f"{key}.type: expected one of {', '.join(CHANNEL_TYPES)}, got {show_value(kind)}"
            )
        env = entry.get("slack_webhook_env")
        if not isinstance(env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
            raise ConfigError(f"{key}.slack_webhook_env: expected an environment variable name")
        channels[name] = Channel(name, env, kind)
    return channels


def _bounded(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_config(text: str | bytes) -> SlaConfig:
    raw_bytes = text.encode() if isinstance(text, str) else text
    try:
        raw = load_yaml(raw_bytes)
    except YamlLoadError as err:
        raise ConfigError(str(err)) from None
    doc = _mapping(raw if raw is not None else {}, "(top level)")
    _unknown_keys(doc, {"escalation", "pause_statuses", "calendars", "channels", "policies"}, "")
    pauses: set[Status] = set()
    for i, name in enumerate(_list(doc.get("pause_statuses", ["on_hold"]), "pause_statuses")):
        if not isinstance(name, str):
            raise ConfigError(
                f"pause_statuses[{i}]: expected a status name, got {show_value(name)}"
            )
        try:
            status = Status(name.lower())
        except ValueError:
            raise ConfigError(f"pause_statuses[{i}]: unknown status {show_value(name)}") from None
        if status not in _PAUSABLE:
            raise ConfigError(f"pause_statuses[{i}]: {show_value(name)} cannot pause a clock")
        pauses.add(status)
    calendars = _parse_calendars(doc.get("calendars", {}))
    channels = _parse_channels(doc.get("channels", {}))
    if "escalation" in doc:
        ladder = _parse_ladder(doc["escalation"])
    else:
        notify = (_DEFAULT_CHANNEL,) if _DEFAULT_CHANNEL in channels else ()
        ladder = Ladder(tuple(Step(p, lv, k, notify) for p, lv, k in _DEFAULT_STEPS))
    for i, step in enumerate(ladder.steps):
        for name in step.notify:
            if name not in channels:
                raise ConfigError(f"escalation[{i}].notify: unknown channel {show_value(name)}")
    return SlaConfig(
        version=hashlib.sha256(raw_bytes).hexdigest()[:16],
        ladder=ladder,
        pause_statuses=frozenset(pauses),
        channels=channels,
        policies=_parse_policies(doc.get("policies"), calendars),
        calendars=calendars,
    )


def read_config_file(path: Path) -> bytes:
    """The file's bytes (see yaml_load.read_bounded); OSError when it cannot be opened,
    ConfigError when it is not a regular file or is too large."""
    try:
        return read_bounded(path)
    except YamlLoadError as err:
        raise ConfigError(str(err)) from None


def load_config(path: Path) -> SlaConfig:
    try:
        data = read_config_file(path)
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    except ConfigError as err:
        raise ConfigError(f"refused {path}: {err}") from None
    return parse_config(data)
