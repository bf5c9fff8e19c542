"""The SLA config file: parsed and validated in full before anything uses it.

Every error names the key it is about (`policies.high.gold.response: ...`,
`metrics.next_reply.stop[1]: ...`), so that an operator
who saved a broken file can fix it from one log line. The file may be hostile (an alias bomb, a
symlink to a foreign file): it is read and parsed within the bounds of yaml_load, and a message
shows a value only as `show_value` bounds it and a key only as `show_key` does, so that no
message is long or repeats a foreign file.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
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
from internal.sla.metric import (
    STATUS_PREFIX,
    TRIGGERS,
    Cycles,
    MetricDefinition,
    Triggers,
    default_metrics,
    once_resume_default,
)
from internal.sla.model import AlertKind, Status
from internal.sla.policy import Facts, Match, Policy, PolicyList, Rules, Targets
from internal.sla.quiet_hours import QuietHours


class ConfigError(ValueError):
    """The config file is invalid; the message names the offending key."""


# The kinds of notifier a channel may name (`type:`); internal/notify has one implementation each.
CHANNEL_TYPES = ("slack",)


@dataclass(frozen=True)
class Channel:
    name: str
    # Where the webhook URL is: an environment variable (`slack_webhook_env`; '' when the
    # channel names a file instead) or a file (`slack_webhook_file`, a mounted Secret), read at
    # each send so that a rotated secret applies without a reload.
    slack_webhook_env: str
    type: str = "slack"
    # `quiet_hours` and `quiet_min_level` (internal/sla/quiet_hours.py); None: never quiet.
    quiet: QuietHours | None = None
    slack_webhook_file: str | None = None


@dataclass(frozen=True)
class SlaConfig:
    version: str  # hash of the file's bytes: recorded with every alert it decides
    ladder: Ladder
    pause_statuses: frozenset[Status]
    channels: Mapping[str, Channel]
    # The part-one map form's priority -> tier -> targets; empty for the list form.
    policies: Mapping[str, Mapping[str, Targets]]
    calendars: Mapping[str, Calendar] = field(default_factory=dict)
    # The metrics every ticket is measured by, in the file's order: without a `metrics:`
    # section, part one's response and resolution (default_metrics).
    metrics: tuple[MetricDefinition, ...] = ()
    defines_metrics: bool = False  # whether the file has a `metrics:` section
    # The ordered policies, the first that matches applies; None: the map form's, one per
    # priority x tier (named "priority/tier"), made from `policies`.
    policy_list: PolicyList | None = None
    # The file's text, as GetPolicy shows it and policy_versions records it.
    text: str = field(default="", repr=False, compare=False)
    _rules: Rules = field(init=False, repr=False, compare=False)

    @property
    def is_map_form(self) -> bool:
        """Whether `policies` is part one's map (then priority and tier alone choose)."""
        return bool(self.policies)

    def targets(self, priority: str, tier: str) -> Targets | None:
        """The targets of a ticket with this priority and tier and no other field given."""
        if self.policies:
            return self.policies.get(priority, {}).get(tier)
        chosen = self.ordered_policies.choose(Facts(priority, tier))
        return None if chosen is None else chosen.targets

    @property
    def ordered_policies(self) -> PolicyList:
        assert self.policy_list is not None  # made in __post_init__
        return self.policy_list

    def may_match(
        self,
        priority: str,
        tier: str,
        group: str = "",
        assignee: str = "",
        tags: Iterable[str] = (),
        attributes: Mapping[str, str] | None = None,
    ) -> bool:
        """Whether some policy may apply to a ticket whose newest event carries these fields
        (a field it leaves empty may come from an earlier event: see Match.may_hold)."""
        if self.policies:
            return tier in self.policies.get(priority, {})
        facts = Facts(priority, tier, group, assignee, frozenset(tags), attributes or {})
        return self.ordered_policies.may_match(facts)

    def choose(self, facts: Facts) -> Policy | None:
        """The first policy whose match holds for a ticket's current fields; None if none."""
        return self.ordered_policies.choose(facts)

    def metric(self, name: str) -> MetricDefinition:
        """The metric named `name`; KeyError if the config has none."""
        for d in self.metrics:
            if d.name == name:
                return d
        raise KeyError(name)

    def ladder_for(self, name: str) -> Ladder:
        """The ladder of the metric named `name`: its own if it has one, else the config's (also
        for a metric this config no longer defines, whose stored cycles still count)."""
        return self.rules.ladder_for(name)

    @property
    def rules(self) -> Rules:
        """What internal/sla computes every ticket's cycles with (made once per config)."""
        return self._rules

    def __post_init__(self) -> None:
        if self.policy_list is None:
            object.__setattr__(self, "policy_list", _map_policies(self.policies))
        rules = Rules(self.ladder, self.pause_statuses, self.version, self.metrics)
        object.__setattr__(self, "_rules", rules)

    def for_tenant(self, tenant: str) -> SlaConfig:
        """One file-wide config serves every tenant (a TenantPolicies of its own)."""
        return self

    def scope_of(self, tenant: str) -> str:
        """The config a tenant is served by: '' names the file-wide one (holder.ServedPolicies)."""
        return ""

    def scopes(self) -> Mapping[str, SlaConfig]:
        return {"": self}


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


def _parse_ladder(raw: object, where: str = "escalation") -> Ladder:
    steps: list[Step] = []
    for i, item in enumerate(_list(raw, where)):
        key = f"{where}[{i}]"
        entry = _mapping(item, key)
        _unknown_keys(
            entry, {"at_percent", "level", "kind", "notify", "repeat_every", "repeat_max"}, key
        )
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
        every, most = _parse_repeat(entry, key)
        steps.append(Step(float(pct), level, AlertKind(kind), tuple(notify), every, most))
    if not steps:
        raise ConfigError(f"{where}: at least one step is required")
    for i in range(1, len(steps)):
        if steps[i].at_percent <= steps[i - 1].at_percent or steps[i].level <= steps[i - 1].level:
            raise ConfigError(f"{where}[{i}]: steps must ascend in both at_percent and level")
    return Ladder(tuple(steps))


MAX_REPEATS = 100


def _parse_repeat(entry: Mapping[str, Any], key: str) -> tuple[float | None, int | None]:
    """A step's (repeat_every, repeat_max): both or neither."""
    if "repeat_every" not in entry and "repeat_max" not in entry:
        return None, None
    for required in ("repeat_every", "repeat_max"):
        if required not in entry:
            other = "repeat_max" if required == "repeat_every" else "repeat_every"
            raise ConfigError(f"{key}.{required}: missing (a step with {other} needs both)")
    every = parse_duration(entry["repeat_every"], f"{key}.repeat_every")
    most = entry["repeat_max"]
    if isinstance(most, bool) or not isinstance(most, int) or not 1 <= most <= MAX_REPEATS:
        raise ConfigError(
            f"{key}.repeat_max: expected an integer from 1 to {MAX_REPEATS}, got {show_value(most)}"
        )
    return every, most


def _check_notify(ladder: Ladder, where: str, channels: Mapping[str, Channel]) -> None:
    for i, step in enumerate(ladder.steps):
        for name in step.notify:
            if name not in channels:
                raise ConfigError(f"{where}[{i}].notify: unknown channel {show_value(name)}")


# A metric's name is a key of policies' targets, a column value and part of alert text: a plain
# identifier, and not `calendar`, which targets use for the calendar's name.
_METRIC_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_METRIC_KEYS = {"start", "stop", "pause", "resume", "cycles", "escalation"}
_CYCLES = tuple(c.value for c in Cycles)


def _parse_triggers(raw: object, key: str, statuses_only: bool = False) -> Triggers:
    names: list[str] = []
    for i, name in enumerate(_list(raw, key)):
        item = f"{key}[{i}]"
        if not isinstance(name, str):
            raise ConfigError(f"{item}: expected a trigger name, got {show_value(name)}")
        if name not in TRIGGERS:
            if name.startswith(STATUS_PREFIX):
                raise ConfigError(
                    f"{item}: unknown status {show_value(name[len(STATUS_PREFIX) :])}"
                    f" (statuses: {', '.join(s.value for s in Status)})"
                )
            raise ConfigError(f"{item}: unknown trigger {show_value(name)}")
        if statuses_only and not name.startswith(STATUS_PREFIX):
            raise ConfigError(
                f"{item}: pause takes status:<name> triggers only, got {show_value(name)}"
            )
        names.append(name)
    return Triggers.parse(names)


def _parse_metric(name: str, raw: object, channels: Mapping[str, Channel]) -> MetricDefinition:
    key = f"metrics.{show_key(name)}"
    if not _METRIC_NAME.fullmatch(name) or name == "calendar":
        raise ConfigError(
            f"{key}: a metric name is lower-case letters, digits and '_', starting with a letter,"
            " at most 64 characters, and not 'calendar'"
        )
    entry = _mapping(raw, key)
    _unknown_keys(entry, _METRIC_KEYS, key)
    for required in ("start", "stop"):
        if required not in entry:
            raise ConfigError(f"{key}.{required}: missing")
    cycles = entry.get("cycles", Cycles.ONCE.value)
    if not isinstance(cycles, str) or cycles not in _CYCLES:
        raise ConfigError(
            f"{key}.cycles: expected 'once' or 'each_start', got {show_value(cycles)}"
        )
    start = _parse_triggers(entry["start"], f"{key}.start")
    stop = _parse_triggers(entry["stop"], f"{key}.stop")
    pause = _parse_triggers(entry.get("pause", []), f"{key}.pause", statuses_only=True)
    if "resume" in entry:
        resume = _parse_triggers(entry["resume"], f"{key}.resume")
        if cycles == Cycles.EACH_START.value:
            # Named at all, even empty: each_start metrics have no resume to configure.
            raise ConfigError(
                f"{key}.resume: an each_start metric cannot resume (each start is a new cycle)"
            )
    else:
        resume = once_resume_default() if cycles == Cycles.ONCE.value else Triggers()
    ladder = None
    if "escalation" in entry:
        ladder = _parse_ladder(entry["escalation"], f"{key}.escalation")
        _check_notify(ladder, f"{key}.escalation", channels)
    definition = MetricDefinition(name, start, stop, pause.statuses, resume, Cycles(cycles), ladder)
    problems = definition.problems()
    if problems:
        where, problem = problems[0]
        raise ConfigError(f"{key}.{where}: {problem}")
    return definition


def _parse_metrics(raw: object, channels: Mapping[str, Channel]) -> tuple[MetricDefinition, ...]:
    metrics = tuple(
        _parse_metric(name, item, channels) for name, item in _mapping(raw, "metrics").items()
    )
    if not metrics:
        raise ConfigError("metrics: at least one metric is required (or leave the section out)")
    return metrics


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


def _map_policies(policies: Mapping[str, Mapping[str, Targets]]) -> PolicyList:
    """The map form as the ordered list it means: one policy per priority x tier."""
    return PolicyList(
        [
            Policy(t.policy, Match(frozenset({priority}), frozenset({tier})), t)
            for priority, tiers in policies.items()
            for tier, t in tiers.items()
        ]
    )


def _parse_targets(
    entry: Mapping[str, Any],
    key: str,
    metrics: tuple[str, ...] | None,
    calendar: tuple[object, str, Mapping[str, Calendar]],
    policy: str,
) -> Targets:
    """A policy's targets (`entry`, at `key`), on `calendar`: (its name, the name's key, the
    calendars). In the map form the calendar's name is a key of `entry` itself."""
    allowed = {"calendar"} if calendar[1] == f"{key}.calendar" else set()
    if metrics is None:
        _unknown_keys(entry, {"response", "resolution", *allowed}, key)
        for required in ("response", "resolution"):
            if required not in entry:
                raise ConfigError(f"{key}.{required}: missing")
        names: tuple[str, ...] = ("response", "resolution")
    else:
        for target in entry:
            if target not in allowed and target not in metrics:
                raise ConfigError(
                    f"{key}.{show_key(target)}: a target for a metric that is not"
                    " defined under metrics"
                )
        names = tuple(n for n in metrics if n in entry)
    cal = _parse_calendar_name(*calendar)
    return Targets({n: parse_duration(entry[n], f"{key}.{n}") for n in names}, cal, policy)


def _parse_calendar_name(value: object, key: str, calendars: Mapping[str, Calendar]) -> Calendar:
    # isinstance first: a list or mapping here cannot even be looked up (unhashable).
    if not isinstance(value, str) or value not in calendars:
        raise ConfigError(f"{key}: unknown calendar {show_value(value)}")
    return calendars[value]


_MATCH_LISTS = ("priority", "customer_tier", "group", "assignee", "tags_any", "tags_all")
_POLICY_KEYS = {"name", "match", "targets", "calendar"}
_POLICY_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
MAX_MATCH_VALUES = 1000


def _parse_match(raw: object, key: str) -> Match:
    entry = _mapping(raw, key)
    _unknown_keys(entry, {*_MATCH_LISTS, "attributes"}, key)
    values: dict[str, frozenset[str]] = {}
    for name in _MATCH_LISTS:
        if name not in entry:
            continue
        items = _list(entry[name], f"{key}.{name}")
        if not items:
            raise ConfigError(f"{key}.{name}: at least one value (or leave the key out)")
        if len(items) > MAX_MATCH_VALUES:
            raise ConfigError(f"{key}.{name}: at most {MAX_MATCH_VALUES} values")
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item or len(item) > 256:
                raise ConfigError(
                    f"{key}.{name}[{i}]: expected a non-empty string of at most 256 characters,"
                    f" got {show_value(item)}"
                )
        values[name] = frozenset(items)
    attributes = None
    if "attributes" in entry:
        attrs = _mapping(entry["attributes"], f"{key}.attributes")
        if not attrs:
            raise ConfigError(f"{key}.attributes: at least one attribute (or leave the key out)")
        for k, v in attrs.items():
            if not k or len(k) > 64 or not isinstance(v, str) or len(v) > 256:
                raise ConfigError(
                    f"{key}.attributes.{show_key(k)}: expected a key of 1-64 characters and a"
                    f" string value of at most 256, got {show_value(v)}"
                )
        attributes = dict(attrs)
    return Match(
        values.get("priority"),
        values.get("customer_tier"),
        values.get("group"),
        values.get("assignee"),
        values.get("tags_any"),
        values.get("tags_all"),
        attributes,
    )


def _parse_policy_list(
    raw: list[Any], calendars: Mapping[str, Calendar], metrics: tuple[str, ...] | None
) -> PolicyList:
    """The list form: `policies[i]` with a unique `name`, an optional `match`, `targets` and an
    optional `calendar`."""
    policies: list[Policy] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        key = f"policies[{i}]"
        if not isinstance(item, Mapping):
            # Either form is meant: say both (a list of lists is neither).
            raise ConfigError(
                f"policies: expected a mapping (priority -> tier -> targets) or a list of"
                f" policies, each a mapping; {key} is a {type(item).__name__}"
            )
        entry = _mapping(item, key)
        _unknown_keys(entry, _POLICY_KEYS, key)
        for required in ("name", "targets"):
            if required not in entry:
                raise ConfigError(f"{key}.{required}: missing")
        name = entry["name"]
        if not isinstance(name, str) or not _POLICY_NAME.fullmatch(name):
            raise ConfigError(
                f"{key}.name: expected 1-128 printable characters, got {show_value(name)}"
            )
        if name in names:
            raise ConfigError(f"{key}.name: {show_value(name)} names an earlier policy too")
        names.add(name)
        match = _parse_match(entry.get("match", {}), f"{key}.match")
        targets = _parse_targets(
            _mapping(entry["targets"], f"{key}.targets"),
            f"{key}.targets",
            metrics,
            (entry.get("calendar", TWENTY_FOUR_SEVEN), f"{key}.calendar", calendars),
            name,
        )
        policies.append(Policy(name, match, targets))
    if not policies:
        raise ConfigError("policies: at least one policy is required")
    return PolicyList(policies)


def _parse_policies(
    raw: object, calendars: Mapping[str, Calendar], metrics: tuple[str, ...] | None = None
) -> dict[str, dict[str, Targets]]:
    """`metrics`: the names a `metrics:` section defines, each target optional (a ticket has no
    clock of a metric its policy has no target for); None: part one's two, both required."""
    policies: dict[str, dict[str, Targets]] = {}
    for priority, tiers in _mapping(raw, "policies").items():
        policies[priority] = {}
        for tier, item in _mapping(tiers, f"policies.{show_key(priority)}").items():
            key = f"policies.{show_key(priority)}.{show_key(tier)}"
            entry = _mapping(item, key)
            policies[priority][tier] = _parse_targets(
                entry,
                key,
                metrics,
                (entry.get("calendar", TWENTY_FOUR_SEVEN), f"{key}.calendar", calendars),
                f"{priority}/{tier}",
            )
        if not policies[priority]:
            raise ConfigError(f"policies.{show_key(priority)}: no customer tiers")
    if not policies:
        raise ConfigError("policies: at least one policy is required")
    return policies


def _parse_quiet(
    entry: Mapping[str, Any], key: str, calendars: Mapping[str, Calendar]
) -> QuietHours | None:
    """A channel's quiet hours: `quiet_hours` names the calendar of its speaking hours,
    `quiet_min_level` the lowest escalation level that still goes out while it is quiet."""
    level = entry.get("quiet_min_level")
    if "quiet_min_level" in entry and (
        isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 1000
    ):
        raise ConfigError(
            f"{key}.quiet_min_level: expected an integer from 1 to 1000, got {show_value(level)}"
        )
    if "quiet_hours" not in entry:
        if "quiet_min_level" in entry:
            raise ConfigError(
                f"{key}.quiet_min_level: needs quiet_hours (the calendar it applies on)"
            )
        return None
    cal_name = entry["quiet_hours"]
    if not isinstance(cal_name, str) or cal_name not in calendars:
        raise ConfigError(f"{key}.quiet_hours: unknown calendar {show_value(cal_name)}")
    return QuietHours(calendars[cal_name], level)


def _parse_webhook(entry: Mapping[str, Any], key: str) -> tuple[str, str | None]:
    """(variable, file): a channel names exactly one place its webhook URL is read from."""
    if "slack_webhook_file" in entry:
        if "slack_webhook_env" in entry:
            raise ConfigError(
                f"{key}.slack_webhook_file: give slack_webhook_env or slack_webhook_file, not both"
            )
        path = entry["slack_webhook_file"]
        if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
            raise ConfigError(f"{key}.slack_webhook_file: expected an absolute file path")
        if len(path) > 4096:
            raise ConfigError(f"{key}.slack_webhook_file: a path of at most 4096 characters")
        return "", path
    env = entry.get("slack_webhook_env")
    if not isinstance(env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
        raise ConfigError(f"{key}.slack_webhook_env: expected an environment variable name")
    return env, None


def _parse_channels(raw: object, calendars: Mapping[str, Calendar]) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    for name, item in _mapping(raw, "channels").items():
        key = f"channels.{show_key(name)}"
        entry = _mapping(item, key)
        _unknown_keys(
            entry,
            {"type", "slack_webhook_env", "slack_webhook_file", "quiet_hours", "quiet_min_level"},
            key,
        )
        kind = entry.get("type", "slack")
        if not isinstance(kind, str) or kind not in CHANNEL_TYPES:
            raise ConfigError(
                f"{key}.type: expected one of {', '.join(CHANNEL_TYPES)}, got {show_value(kind)}"
            )
        env, path = _parse_webhook(entry, key)
        channels[name] = Channel(name, env, kind, _parse_quiet(entry, key, calendars), path)
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
    _unknown_keys(
        doc, {"escalation", "pause_statuses", "calendars", "channels", "policies", "metrics"}, ""
    )
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
    channels = _parse_channels(doc.get("channels", {}), calendars)
    if "escalation" in doc:
        ladder = _parse_ladder(doc["escalation"])
    else:
        notify = (_DEFAULT_CHANNEL,) if _DEFAULT_CHANNEL in channels else ()
        ladder = Ladder(tuple(Step(p, lv, k, notify) for p, lv, k in _DEFAULT_STEPS))
    _check_notify(ladder, "escalation", channels)
    defines_metrics = "metrics" in doc
    if defines_metrics:
        metrics = _parse_metrics(doc["metrics"], channels)
        names: tuple[str, ...] | None = tuple(d.name for d in metrics)
    else:
        metrics, names = default_metrics(pauses), None
    raw_policies = doc.get("policies")
    if isinstance(raw_policies, list):
        policies: dict[str, dict[str, Targets]] = {}
        policy_list: PolicyList | None = _parse_policy_list(raw_policies, calendars, names)
    else:
        policies, policy_list = _parse_policies(raw_policies, calendars, names), None
    return SlaConfig(
        version=hashlib.sha256(raw_bytes).hexdigest()[:16],
        ladder=ladder,
        pause_statuses=frozenset(pauses),
        channels=channels,
        policies=policies,
        policy_list=policy_list,
        calendars=calendars,
        metrics=metrics,
        defines_metrics=defines_metrics,
        text=raw_bytes.decode("utf-8", errors="replace"),
    )


def parse_served_config(text: str | bytes) -> SlaConfig:
    """parse_config, for a process that serves the file. Every config parse_config accepts is
    served, a `metrics:` section included (its cycles are stored, evaluated and shown); the name
    stays for the callers that load a file to serve it."""
    return parse_config(text)


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
    return parse_served_config(data)
