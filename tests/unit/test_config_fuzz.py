"""The config loader under hostile input: any bytes or any YAML-shaped structure either parse or
raise ConfigError with a short message; nothing else escapes (a crash would take a process down
on a bad save instead of keeping the last good config). Hostile YAML too: anchors and aliases
in any arrangement, deep nesting, tags, odd scalars, binary bytes."""

from __future__ import annotations

import itertools
import math

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from internal.config.sla_config import ConfigError, parse_config
from support.configs import BASE

MAX_MESSAGE = 300

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
SECTIONS = ["escalation", "pause_statuses", "calendars", "channels", "policies", "metrics"]


def check(text: str | bytes) -> None:
    try:
        config = parse_config(text)
    except ConfigError as err:
        assert str(err)
        assert len(str(err)) < MAX_MESSAGE, str(err)[:500]
        assert "\n" not in str(err)
    else:
        # Whatever was accepted is usable: finite, positive targets and an ascending ladder.
        for tiers in config.policies.values():
            for targets in tiers.values():
                if not config.defines_metrics:
                    assert set(targets.seconds) == {"response", "resolution"}
                assert {d.name for d in config.metrics} >= set(targets.seconds)
                assert all(0 < s < math.inf for s in targets.seconds.values())
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


METRICS = {
    "first_reply": {"start": ["created"], "stop": ["agent_reply"], "pause": ["status:on_hold"]},
    "next_reply": {"start": ["customer_reply"], "stop": ["agent_reply"], "cycles": "each_start"},
}
METRIC_FIELDS = ["start", "stop", "pause", "resume", "cycles", "escalation"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(METRICS)), st.sampled_from(METRIC_FIELDS), trees)
def test_one_field_of_a_metric_replaced_by_anything(name: str, key: str, value: object) -> None:
    metrics = {n: dict(d) for n, d in METRICS.items()}
    metrics[name][key] = value
    policies = {"high": {"gold": {"first_reply": "1h", "next_reply": value}}}
    check(yaml.safe_dump({**BASE, "metrics": metrics, "policies": policies}))
    check(yaml.safe_dump({**BASE, "metrics": metrics, "policies": {"high": {"gold": {}}}}))


# Pieces of YAML syntax, so that random sequences of them reach deep into the parser: anchors,
# aliases (defined or not), merge keys, tags (unsafe ones included), flow and block collections,
# quoting, escapes, directives, odd scalars and characters YAML refuses.
FRAGMENTS = [
    "&a ", "&b ", "*a", "*b", "*c", "<<: ", "[", "]", "{", "}", ": ", ", ", "\n", "\n  ", "- ",
    "? ", "!!binary ", "!!python/object/apply:os.system ", "!!set ", "!!timestamp ", "!custom ",
    "'", '"', "\\", "\\q", "2026-02-30", "2026-12-25", "1e999", "0x1f", "0o17", "~", "null",
    "%YAML 1.1\n", "---\n", "...\n", "\t", "\x00", "\ufeff", "é", "policies", "pause_statuses",
    "calendars", "high", "gold", "response", "15m", "metrics", "start", "stop", "created",
    "status:on_hold", "agent_reply", "each_start", "x" * 200,
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60))
def test_any_sequence_of_yaml_syntax(pieces: list[str]) -> None:
    check("".join(pieces))


@st.composite
def alias_documents(draw: st.DrawFn) -> str:
    """Anchored lists and mappings, each made of aliases of earlier ones (a random bomb), then
    one of them used somewhere in a valid file."""
    count = draw(st.integers(min_value=1, max_value=12))
    anchors = ['&a0 ["lol", "on_hold", 15m]']
    for i in range(1, count):
        refs = draw(st.lists(st.integers(min_value=0, max_value=i - 1), min_size=1, max_size=12))
        if draw(st.booleans()):
            anchors.append(f"&a{i} [{', '.join(f'*a{r}' for r in refs)}]")
        else:
            anchors.append(f"&a{i} {{{', '.join(f'k{j}: *a{r}' for j, r in enumerate(refs))}}}")
    section = draw(st.sampled_from(SECTIONS))
    used = draw(st.integers(min_value=0, max_value=count - 1))
    doc = yaml.safe_dump({k: v for k, v in BASE.items() if k != section}, sort_keys=False)
    return f"{doc}{section}: [[{', '.join(anchors)}], *a{used}]\n"


@settings(max_examples=200, deadline=None)
@given(alias_documents())
def test_any_arrangement_of_anchors_and_aliases(text: str) -> None:
    check(text)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(["[", "{k: ", "- "]), min_size=1, max_size=400),
    st.sampled_from(SECTIONS),
)
def test_any_nesting_depth(openers: list[str], section: str) -> None:
    """Flow and block nesting up to 400 levels, closed or left open."""
    closers = {"[": "]", "{k: ": "}", "- ": ""}
    body = "".join(o if o != "- " else "\n" + "  " * i + "- " for i, o in enumerate(openers))
    text = f"{section}: {body}1{''.join(closers[o] for o in reversed(openers))}\n"
    check(text)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SECTIONS), st.binary(max_size=200))
def test_binary_bytes_inside_a_section(section: str, data: bytes) -> None:
    check(section.encode() + b": " + data)
