"""The config loader under hostile input: any bytes or any YAML-shaped structure either parse or
raise ConfigError with a message; nothing else escapes (a crash would take a process down on a
bad save instead of keeping the last good config)."""

from __future__ import annotations

import itertools
import math

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from internal.config.sla_config import ConfigError, parse_config
from support.configs import BASE

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "15m",
            "4h",
            "0",
            "-1s",
            "24x7",
            "09:00-17:00",
            "25:00-26:00",
            "Europe/Berlin",
            "Mars/Olympus",
            "2026-02-30",
            "warning",
            "breach",
            "on_hold",
            "team",
        ]
    ),
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=12), st.integers()), children, max_size=4),
    ),
    max_leaves=25,
)
SECTIONS = ["escalation", "pause_statuses", "calendars", "channels", "policies"]


def check(text: str | bytes) -> None:
    try:
        config = parse_config(text)
    except ConfigError as err:
        assert str(err)
    else:
        # Whatever was accepted is usable: finite, positive targets and an ascending ladder.
        for tiers in config.policies.values():
            for targets in tiers.values():
                assert 0 < targets.response < math.inf and 0 < targets.resolution < math.inf
        steps = config.ladder.steps
        assert all(0 < s.at_percent < math.inf for s in steps)
        assert all(a.at_percent < b.at_percent for a, b in itertools.pairwise(steps))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes(data: bytes) -> None:
    check(data)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(SECTIONS), trees, max_size=5))
def test_any_structure_in_the_known_sections(doc: dict[str, object]) -> None:
    check(yaml.safe_dump(doc))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SECTIONS), trees)
def test_one_section_of_a_valid_file_replaced_by_anything(section: str, value: object) -> None:
    doc = dict(BASE)
    doc[section] = value
    check(yaml.safe_dump(doc))
