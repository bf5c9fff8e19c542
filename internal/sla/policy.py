"""What a policy decides for one ticket: its targets, and the rules shared by all tickets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from internal.sla.calendar import Calendar
from internal.sla.ladder import Ladder
from internal.sla.metric import MetricDefinition, default_metrics
from internal.sla.model import Status


@dataclass(frozen=True)
class Targets:
    seconds: Mapping[str, float]  # metric -> target, seconds of calendar time
    calendar: Calendar
    # The name of the policy they are the targets of (Ticket.policy). Not compared: two
    # policies with the same targets decide the same clocks.
    policy: str = field(default="", compare=False)


@dataclass(frozen=True)
class Facts:
    """What a policy matches on: a ticket's current priority and tier (its newest event's), and
    its current group, assignee, tags and attributes (each the latest value given, as GetTicket
    shows them; "" or empty when never given)."""

    priority: str
    customer_tier: str
    group: str = ""
    assignee: str = ""
    tags: frozenset[str] = frozenset()
    attributes: Mapping[str, str] = field(default_factory=dict)


# One event's group, assignee, tags and attributes (None: not given), as the matcher reads them.
FieldRow = tuple[str | None, str | None, Sequence[str] | None, Mapping[str, str] | None]


def facts_of(priority: str, tier: str, fields: Iterable[FieldRow]) -> Facts:
    """A ticket's Facts: `priority` and `tier` of its newest event, and each of the four fields
    from the latest of `fields` (its events' fields, in event-time order) that gives it. Tags
    and attributes are taken whole from that event, as GetTicket's current fields are."""
    group = assignee = ""
    tags: Sequence[str] = ()
    attributes: Mapping[str, str] = {}
    for g, a, t, attrs in fields:
        if g:
            group = g
        if a:
            assignee = a
        if t:
            tags = t
        if attrs:
            attributes = attrs
    return Facts(priority, tier, group, assignee, frozenset(tags), attributes)


@dataclass(frozen=True)
class Match:
    """The conditions of a policy; None is no condition. A value list holds when the ticket's
    value is one of them; `tags_any` when the ticket has one of the tags, `tags_all` when it has
    all; `attributes` when each named attribute has exactly the value given."""

    priority: frozenset[str] | None = None
    customer_tier: frozenset[str] | None = None
    group: frozenset[str] | None = None
    assignee: frozenset[str] | None = None
    tags_any: frozenset[str] | None = None
    tags_all: frozenset[str] | None = None
    attributes: Mapping[str, str] | None = None

    def holds(self, f: Facts) -> bool:
        return (
            (self.priority is None or f.priority in self.priority)
            and (self.customer_tier is None or f.customer_tier in self.customer_tier)
            and (self.group is None or f.group in self.group)
            and (self.assignee is None or f.assignee in self.assignee)
            and (self.tags_any is None or not self.tags_any.isdisjoint(f.tags))
            and (self.tags_all is None or self.tags_all <= f.tags)
            and (
                self.attributes is None
                or all(f.attributes.get(k) == v for k, v in self.attributes.items())
            )
        )

    def may_hold(self, f: Facts) -> bool:
        """Whether it may hold for a ticket whose newest event is `f`: priority and tier are
        the event's; a field the event leaves empty may have been given by an earlier event,
        so a condition on it may hold (tags and attributes are taken whole when given)."""
        return (
            (self.priority is None or f.priority in self.priority)
            and (self.customer_tier is None or f.customer_tier in self.customer_tier)
            and (self.group is None or not f.group or f.group in self.group)
            and (self.assignee is None or not f.assignee or f.assignee in self.assignee)
            and (not f.tags or self.tags_any is None or not self.tags_any.isdisjoint(f.tags))
            and (not f.tags or self.tags_all is None or self.tags_all <= f.tags)
            and (
                not f.attributes
                or self.attributes is None
                or all(f.attributes.get(k) == v for k, v in self.attributes.items())
            )
        )

    @property
    def uses_fields(self) -> bool:
        """Whether it reads more than priority and tier (then the ingest reads the fields)."""
        return not (
            self.group is None
            and self.assignee is None
            and self.tags_any is None
            and self.tags_all is None
            and self.attributes is None
        )


@dataclass(frozen=True)
class Policy:
    name: str
    match: Match
    targets: Targets  # targets.policy is `name`


class PolicyList:
    """Ordered policies: the first whose match holds applies. Candidates are looked up by the
    priority or by the group, whichever more policies name (most configs name one of them), so
    that only the few policies that could hold are tried, not all of them."""

    def __init__(self, policies: Sequence[Policy]) -> None:
        self.policies = tuple(policies)
        self.uses_fields = any(p.match.uses_fields for p in self.policies)
        by_group = sum(p.match.group is not None for p in self.policies)
        by_priority = sum(p.match.priority is not None for p in self.policies)
        self._by_group = by_group > by_priority
        field_of = (lambda m: m.group) if self._by_group else (lambda m: m.priority)
        named = {v for p in self.policies for v in (field_of(p.match) or ())}
        self._index: dict[str, tuple[Policy, ...]] = {
            v: tuple(p for p in self.policies if (field_of(p.match) or {v}).__contains__(v))
            for v in named
        }
        self._unnamed = tuple(p for p in self.policies if field_of(p.match) is None)

    def _candidates(self, facts: Facts) -> Iterable[Policy]:
        key = facts.group if self._by_group else facts.priority
        return self._index.get(key, self._unnamed)

    def choose(self, facts: Facts) -> Policy | None:
        for p in self._candidates(facts):
            if p.match.holds(facts):
                return p
        return None

    def may_match(self, facts: Facts) -> bool:
        # An event without a group may have any group: every policy is a candidate.
        candidates = (
            self.policies if self._by_group and not facts.group else self._candidates(facts)
        )
        return any(p.match.may_hold(facts) for p in candidates)


@dataclass(frozen=True)
class Rules:
    ladder: Ladder  # the config's ladder: that of every metric without its own
    pause_statuses: frozenset[Status]
    version: str  # hash of the config that decided; recorded with every alert
    # The metrics every ticket is measured by, in this order; a ticket has cycles of those its
    # Targets has a target for. Empty: part one's two (default_metrics of pause_statuses).
    metrics: tuple[MetricDefinition, ...] = ()
    # metric name -> the ladder its cycles escalate on (its own, else `ladder`). Derived.
    ladders: Mapping[str, Ladder] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        metrics = self.metrics
        if not metrics:
            metrics = default_metrics(self.pause_statuses)
            object.__setattr__(self, "metrics", metrics)
        object.__setattr__(
            self,
            "ladders",
            {d.name: self.ladder if d.ladder is None else d.ladder for d in metrics},
        )

    def ladder_for(self, metric: str) -> Ladder:
        """The ladder of `metric`'s cycles: its own, else the config's (also for a metric the
        rules no longer define, whose stored cycles are still evaluated)."""
        return self.ladders.get(metric, self.ladder)
