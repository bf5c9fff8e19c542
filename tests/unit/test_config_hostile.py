"""The SLA config loader against hostile files (issue 18, defects 1-3): alias bombs, deep nesting,
huge values, foreign files behind a symlink, FIFOs and directories. Each is refused with one
short ConfigError that names the problem, in bounded memory, and never echoes foreign content;
small legitimate uses of anchors and aliases keep working."""

from __future__ import annotations

import os
import threading
import tracemalloc
from pathlib import Path

import pytest
import yaml

from internal.config.sla_config import ConfigError, load_config, parse_config
from support.configs import BASE, config_text

MAX_MESSAGE = 300  # no refusal may be longer than a log line
MAX_PEAK_BYTES = 8 * 1024 * 1024


def laughs(levels: int) -> str:
    """The classic bomb, as the red team sent it: each level is a list of ten aliases of the
    level below, all inside pause_statuses[0], so that the first value judged expands to
    10**levels strings, from a file of about 80 bytes per level."""
    lol = ", ".join(['"lol"'] * 10)
    items = [f"&l0 [{lol}]"]
    for i in range(1, levels):
        items.append(f"&l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    return f"pause_statuses: [[{', '.join(items)}]]\n"


def refusal(text: str | bytes) -> tuple[str, int]:
    """The ConfigError message for `text` and the peak memory the refusal took."""
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as info:
            parse_config(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(info.value), peak


@pytest.mark.parametrize("levels", [4, 6, 9])
def test_an_alias_bomb_is_refused_with_a_short_message_in_bounded_memory(levels: int) -> None:
    """However far the aliases would expand (10**9 strings at 9 levels, from ~750 bytes), the
    refusal is one short line and takes a few megabytes at most, never the expansion."""
    text = laughs(levels)
    assert len(text) < 900
    message, peak = refusal(text)
    assert len(message) < MAX_MESSAGE, message[:500]
    assert "lol" not in message
    assert "pause_statuses" in message or "alias" in message or "values" in message
    assert peak < MAX_PEAK_BYTES


def test_the_nine_level_bomb_names_the_alias_expansion() -> None:
    message, _ = refusal(laughs(9))
    assert "more than 100000 values" in message and "aliases" in message


ALIASED = """
calendars:
  emea_office: &emea
    timezone: Europe/Berlin
    hours: &office {mon: "09:00-17:00", tue: "09:00-17:00", wed: "09:00-17:00"}
  paris_office:
    <<: *emea
    holidays: ["2026-07-14"]
  us_office: {timezone: America/New_York, hours: *office}
policies:
  high:
    gold: &fast {response: 15m, resolution: 4h}
    silver: {<<: *fast, calendar: us_office}
  low: {gold: *fast}
"""


def test_small_anchors_and_aliases_still_work() -> None:
    """Reusing one block of office hours in two calendars, and merge keys, are ordinary YAML
    and stay allowed."""
    config = parse_config(ALIASED)
    assert {"emea_office", "paris_office", "us_office"} <= set(config.calendars)
    silver = config.targets("high", "silver")
    assert silver is not None and silver.seconds["resolution"] == 4 * 3600
    assert silver.calendar.name == "us_office"
    assert config.targets("low", "gold") == config.targets("high", "gold")


def test_an_alias_inside_the_node_it_refers_to_is_refused() -> None:
    """A cycle (`&a [*a]`) would make every walk of the tree endless."""
    message, _ = refusal(
        "pause_statuses: &a [*a]\n" + yaml.safe_dump({"policies": BASE["policies"]})
    )
    assert "alias" in message and len(message) < MAX_MESSAGE


def test_deep_nesting_is_refused_with_one_clear_message() -> None:
    """5,000 levels in 10 KB: no RecursionError, one message naming the bound."""
    text = "policies: " + "[" * 5000 + "]" * 5000 + "\n"
    message, _ = refusal(text)
    assert "nested deeper than 64 levels" in message
    assert len(message) < MAX_MESSAGE


def test_nesting_within_the_bound_is_judged_on_its_shape() -> None:
    """60 levels is not refused for its depth: the usual error about the key follows."""
    message, _ = refusal("policies: " + "[" * 60 + "]" * 60 + "\n")
    assert message.startswith("policies: expected a mapping")


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        (
            {"policies": {"high": {"gold": {"response": "x" * 10_000, "resolution": "4h"}}}},
            "response",
        ),
        ({"pause_statuses": ["y" * 10_000]}, "pause_statuses[0]"),
        ({"pause_statuses": [["z"] * 5_000]}, "pause_statuses[0]"),
        ({"k" * 10_000: 1}, "unknown key"),
        (
            {
                "policies": {
                    "high": {
                        "gold": {"response": "1h", "resolution": "2h", "calendar": "c" * 10_000}
                    }
                }
            },
            "calendar",
        ),
        ({"calendars": {"c": {"timezone": "t" * 10_000}}}, "calendars.c"),
        ({"calendars": {"c": {"timezone": ["Europe/Berlin"] * 5_000}}}, "calendars.c"),
        ({"calendars": {"c": {"timezone": "UTC", "hours": {"mon": "9" * 10_000}}}}, "calendars.c"),
        (
            {"calendars": {"c": {"timezone": "UTC", "hours": {"w" * 10_000: "09:00-17:00"}}}},
            "calendars.c",
        ),
        (
            {
                "calendars": {
                    "c": {
                        "timezone": "UTC",
                        "hours": {"mon": "09:00-17:00"},
                        "holidays": ["h" * 10_000],
                    }
                }
            },
            "calendars.c",
        ),
        (
            {"escalation": [{"at_percent": 90, "level": 1, "kind": "k" * 10_000}]},
            "escalation[0].kind",
        ),
        (
            {"escalation": [{"at_percent": 90, "level": 1, "kind": ["breach"] * 5000}]},
            "escalation[0].kind",
        ),
        (
            {
                "escalation": [
                    {"at_percent": 90, "level": 1, "kind": "breach", "notify": ["n" * 10_000]}
                ]
            },
            "notify",
        ),
    ],
)
def test_every_value_shown_in_a_message_is_bounded(doc: dict[str, object], key: str) -> None:
    """A huge value (or a list where a scalar belongs) is named by its key and shown truncated
    or by its type: the message stays short."""
    message, _ = refusal(yaml.safe_dump({**BASE, **doc}))
    assert key in message
    assert len(message) < MAX_MESSAGE, message[:500]


def test_a_yaml_syntax_error_does_not_quote_the_file() -> None:
    """The parser's own message quotes the offending line; ours gives line and column only."""
    message, _ = refusal('policies:\n  note: "hunter2-secret-\\q"\n')
    assert "hunter2" not in message
    assert "not valid YAML at line 2" in message


SHADOW = (
    "root:$6$Qx9sAlt$Zm9vYmFyYmF6cXV4cXV1eGZyb2Jub3J0aHVuZGVy:19700:0:99999:7:::\n"
    "_apt:*:19700:0:99999:7:::\n"
    "nobody:*:19700:0:99999:7:::\n"
)


def test_a_symlink_to_a_foreign_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    """The config path points at a file like /etc/shadow: the refusal names no line of it."""
    foreign = tmp_path / "shadow"
    foreign.write_text(SHADOW)
    path = tmp_path / "sla_config.yaml"
    path.symlink_to(foreign)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "unknown key" in message
    for fragment in ("root:", "$6$", "Qx9s", "_apt", "19700", "99999", "nobody"):
        assert fragment not in message, message


def test_a_symlink_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    """Symlinks stay allowed (Kubernetes ConfigMaps are symlinks): only the target is judged."""
    target = tmp_path / "real.yaml"
    target.write_text(config_text())
    path = tmp_path / "sla_config.yaml"
    path.symlink_to(target)
    assert load_config(path).version == parse_config(config_text()).version


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer: the loader must refuse it at once."""
    fifo = tmp_path / "sla_config.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException | object] = []

    def load() -> None:
        try:
            outcome.append(load_config(fifo))
        except BaseException as err:  # handed to the test thread
            outcome.append(err)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(timeout=10)
    try:
        assert not thread.is_alive(), "the loader blocked on a FIFO"
    finally:
        if thread.is_alive():  # release it: a writer opening the FIFO unblocks the reader
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(timeout=10)
    (err,) = outcome
    assert isinstance(err, ConfigError)
    assert "a FIFO, not a regular file" in str(err)


def test_a_directory_is_refused_as_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a directory, not a regular file"):
        load_config(tmp_path)


def test_a_file_over_one_mebibyte_is_refused_before_parsing(tmp_path: Path) -> None:
    """A valid config padded past 1 MiB with a comment is refused for its size alone."""
    path = tmp_path / "sla_config.yaml"
    path.write_text(config_text() + "#" + "x" * (1024 * 1024) + "\n")
    with pytest.raises(ConfigError, match="larger than 1048576 bytes"):
        load_config(path)


def test_a_file_just_under_the_bound_is_read(tmp_path: Path) -> None:
    text = config_text()
    path = tmp_path / "sla_config.yaml"
    path.write_text(text + "#" + "x" * (1024 * 1024 - len(text) - 2) + "\n")
    assert path.stat().st_size == 1024 * 1024
    load_config(path)
