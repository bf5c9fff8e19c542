"""What a PromQL expression refers to: the metric names it selects and the label names its
matchers use. A small scanner, not a parser: enough for the queries of deploy/ (it is tested on
the constructs they use), and strict in that every bare identifier that is not a function,
keyword or grouping label counts as a metric name."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VARIABLE = re.compile(r"\$\{?\w+\}?")  # Grafana's $__rate_interval, ${datasource}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r'(?<![\w:])([A-Za-z_:][\w:]*)?\s*\{((?:[^{}"]|"(?:[^"\\]|\\.)*")*)\}')
_MATCHER = re.compile(r'\s*([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*(?:,|$)')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?[\w.]+")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "offset", "inf", "nan"}
)


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: frozenset[str]


def selectors(expr: str) -> list[Selector]:
    """Every metric an expression selects, with the label names its matchers test."""
    text = _VARIABLE.sub("1m", expr)
    found: list[Selector] = []
    for name, body in _SELECTOR.findall(text):
        labels, rest = set(), body
        while rest.strip():
            match = _MATCHER.match(rest)
            if match is None:
                raise ValueError(f"cannot read the label matchers {{{body}}} of {expr!r}")
            labels.add(match.group(1))
            rest = rest[match.end() :]
        if not name:
            raise ValueError(f"a selector without a metric name in {expr!r}")
        found.append(Selector(name, frozenset(labels)))
    bare = _MATCHERS.sub("", _STRING.sub('""', text))
    bare = _OFFSET.sub("", _GROUPING.sub("", _RANGE.sub("", bare)))
    selected = {s.metric for s in found}
    for name, call in _IDENTIFIER.findall(bare):
        if call or name in _KEYWORDS or name in selected:
            continue
        found.append(Selector(name, frozenset()))
    return found
