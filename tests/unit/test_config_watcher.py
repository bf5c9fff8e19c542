"""The SLA config watcher on real files: every way a config gets saved is noticed within 2 s, a
broken save is refused with one error line while the last good config keeps running, and an idle
watcher stays idle."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from watchdog.events import FileOpenedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from internal.config.holder import ConfigHolder
from internal.config.sla_config import load_config, parse_config
from internal.config.watcher import ConfigWatcher
from support.configs import config_text
from support.env import ROOT

GOLD_2H = {
    "high": {"gold": {"response": "15m", "resolution": "2h"}},
    "low": {"gold": {"response": "1h", "resolution": "12h"}},
}
GOLD_3H = {
    "high": {"gold": {"response": "15m", "resolution": "3h"}},
    "low": {"gold": {"response": "1h", "resolution": "12h"}},
}
APPLY_WITHIN = 2.0  # the promise: a valid save takes effect within 2 s


def eventually(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s: {what}")


def resolution_of(holder: ConfigHolder) -> float:
    targets = holder.current.targets("high", "gold")
    assert targets is not None
    return targets.seconds["resolution"]


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, ConfigHolder]]:
    """A watcher that only events can wake: its poll is too slow to matter in a test."""
    path = tmp_path / "sla_config.yaml"
    path.write_text(config_text())
    holder = ConfigHolder(load_config(path))
    watcher = ConfigWatcher(path, holder, poll=60).start()
    yield path, holder
    watcher.stop()


def test_a_save_in_place_applies_within_two_seconds(watched: tuple[Path, ConfigHolder]) -> None:
    """A plain write to the file (truncate and rewrite the same inode) is noticed."""
    path, holder = watched
    path.write_text(config_text(policies=GOLD_2H))
    eventually(lambda: resolution_of(holder) == 7200, APPLY_WITHIN, "in-place save applied")


def test_a_save_by_rename_applies_within_two_seconds(watched: tuple[Path, ConfigHolder]) -> None:
    """Editors write a temporary file and rename it over the old one: the watched inode is
    replaced, never written, which only a watch on the directory sees."""
    path, holder = watched
    tmp = path.with_name(".sla_config.yaml.swp")
    tmp.write_text(config_text(policies=GOLD_2H))
    os.replace(tmp, path)
    eventually(lambda: resolution_of(holder) == 7200, APPLY_WITHIN, "renamed save applied")


def _configmap(root: Path, name: str, text: str) -> Path:
    """A new `..<timestamp>` data directory, as the kubelet writes one."""
    data = root / name
    data.mkdir()
    (data / "sla_config.yaml").write_text(text)
    return data


def _swap_data_link(root: Path, target: Path) -> None:
    staged = root / "..data_tmp"
    staged.symlink_to(target.name)
    os.replace(staged, root / "..data")  # atomic, as the kubelet does it


def test_a_configmap_symlink_swap_applies_within_two_seconds(tmp_path: Path) -> None:
    """Kubernetes ConfigMap volumes: sla_config.yaml -> ..data/sla_config.yaml, ..data ->
    ..<timestamp>/; an update swaps ..data atomically, twice in a row here, and neither file
    nor link is ever written in place."""
    first = _configmap(tmp_path, "..2026_01_05_10_00_00.1", config_text())
    (tmp_path / "..data").symlink_to(first.name)
    path = tmp_path / "sla_config.yaml"
    path.symlink_to("..data/sla_config.yaml")
    holder = ConfigHolder(load_config(path))
    watcher = ConfigWatcher(path, holder, poll=60).start()
    try:
        assert resolution_of(holder) == 4 * 3600
        second = _configmap(tmp_path, "..2026_01_05_10_05_00.2", config_text(policies=GOLD_2H))
        _swap_data_link(tmp_path, second)
        eventually(lambda: resolution_of(holder) == 7200, APPLY_WITHIN, "first swap applied")
        for old in first.iterdir():  # the kubelet removes the old data directory afterwards
            old.unlink()
        first.rmdir()
        third = _configmap(tmp_path, "..2026_01_05_10_10_00.3", config_text(policies=GOLD_3H))
        _swap_data_link(tmp_path, third)
        eventually(lambda: resolution_of(holder) == 3 * 3600, APPLY_WITHIN, "second swap applied")
    finally:
        watcher.stop()


def test_a_symlink_into_another_directory_edited_in_place_applies(tmp_path: Path) -> None:
    """The configured path is a symlink to a file elsewhere, and that file is written in place:
    the target's own directory is watched too."""
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir()
    target = elsewhere / "slawatch.yaml"
    target.write_text(config_text())
    home = tmp_path / "etc"
    home.mkdir()
    path = home / "sla_config.yaml"
    path.symlink_to(target)
    holder = ConfigHolder(load_config(path))
    watcher = ConfigWatcher(path, holder, poll=60).start()
    try:
        target.write_text(config_text(policies=GOLD_2H))
        eventually(lambda: resolution_of(holder) == 7200, APPLY_WITHIN, "target edit applied")
    finally:
        watcher.stop()


def test_a_broken_save_is_refused_with_one_error_line_then_a_fix_applies(
    watched: tuple[Path, ConfigHolder], caplog: pytest.LogCaptureFixture
) -> None:
    """A broken save is refused with exactly one ERROR line that names the file and the bad key;
    the last good config keeps running; the next valid save is applied as usual."""
    path, holder = watched
    before = holder.current.version
    caplog.set_level(logging.INFO, logger="internal.config.watcher")

    def errors() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.levelno >= logging.ERROR]

    path.write_text(
        config_text(policies={"high": {"gold": {"response": "soon", "resolution": "2h"}}})
    )
    eventually(errors, APPLY_WITHIN, "refusal logged")
    # A save raises several events (modify, close): none may log the refusal again.
    time.sleep(1.0)
    assert len(errors()) == 1
    message = errors()[0].getMessage()
    assert "policies.high.gold.response" in message
    assert str(path) in message
    assert holder.current.version == before

    path.write_text(config_text(policies=GOLD_2H))
    eventually(lambda: resolution_of(holder) == 7200, APPLY_WITHIN, "fixed save applied")
    assert len(errors()) == 1


def test_restoring_the_running_config_after_a_broken_save_says_so(
    watched: tuple[Path, ConfigHolder], caplog: pytest.LogCaptureFixture
) -> None:
    """A YAML syntax error (whose text spans several lines) is still refused in one line.
    Putting back the file that is still running changes nothing, and the log says the file is
    valid again (the operator is not left with only the error)."""
    path, holder = watched
    good = path.read_text()
    before = holder.current.version
    caplog.set_level(logging.INFO, logger="internal.config.watcher")
    path.write_text("policies: [")
    eventually(lambda: any(r.levelno == logging.ERROR for r in caplog.records), APPLY_WITHIN)
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "not valid YAML" in error and "\n" not in error
    path.write_text(good)
    eventually(
        lambda: any("valid again" in r.getMessage() for r in caplog.records),
        APPLY_WITHIN,
        "recovery logged",
    )
    assert holder.current.version == before


def test_a_deleted_file_keeps_the_last_config_until_it_returns(
    watched: tuple[Path, ConfigHolder], caplog: pytest.LogCaptureFixture
) -> None:
    """A config file that disappears is not an empty config: the last good one keeps running,
    one warning says so, and the file coming back (with new content) is applied."""
    path, holder = watched
    before = holder.current.version
    caplog.set_level(logging.WARNING, logger="internal.config.watcher")
    path.unlink()
    eventually(lambda: caplog.records, APPLY_WITHIN, "missing file reported")
    assert holder.current.version == before
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    path.write_text(config_text(policies=GOLD_2H))
    eventually(lambda: resolution_of(holder) == 7200, APPLY_WITHIN, "returned file applied")


def test_a_change_before_the_watch_started_is_not_missed(tmp_path: Path) -> None:
    """The file may change between the holder's load and the watcher's start: the start itself
    compares the file with the running config."""
    path = tmp_path / "sla_config.yaml"
    path.write_text(config_text())
    holder = ConfigHolder(load_config(path))
    path.write_text(config_text(policies=GOLD_2H))
    watcher = ConfigWatcher(path, holder, poll=60).start()
    try:
        assert resolution_of(holder) == 7200
    finally:
        watcher.stop()


def test_the_poll_catches_a_change_no_watch_reported(tmp_path: Path) -> None:
    """Where inotify reports nothing (network filesystems; here, a directory that did not exist
    when the watcher started, so nothing watches it), the periodic content check still applies
    a new file."""
    running = tmp_path / "initial.yaml"
    running.write_text(config_text())
    holder = ConfigHolder(load_config(running))
    path = tmp_path / "mounted-later" / "sla_config.yaml"
    watcher = ConfigWatcher(path, holder, poll=0.5).start()
    try:
        path.parent.mkdir()
        path.write_text(config_text(policies=GOLD_2H))
        eventually(lambda: resolution_of(holder) == 7200, 5, "change found by the poll")
    finally:
        watcher.stop()


def test_listeners_see_each_new_version_once(watched: tuple[Path, ConfigHolder]) -> None:
    """Several saves of the same content (an editor saving twice, a touch) are one change: the
    holder's listeners, which start a recompute, hear of each new version once."""
    path, holder = watched
    heard: list[str] = []
    holder.on_change(lambda config: heard.append(config.version))
    text = config_text(policies=GOLD_2H)
    path.write_text(text)
    eventually(lambda: heard, APPLY_WITHIN, "change heard")
    path.write_text(text)
    os.utime(path)
    time.sleep(1.0)  # past the debounce of both saves
    assert heard == [parse_config(text).version]


class _Opens(FileSystemEventHandler):
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.lock = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileOpenedEvent) and Path(str(event.src_path)).name == self.name:
            with self.lock:
                self.count += 1


def test_an_idle_watcher_does_not_keep_reading_the_file(
    watched: tuple[Path, ConfigHolder],
) -> None:
    """Reading the file raises inotify events of its own (open, close); a watcher that woke on
    them would re-read the file forever. Once a save is handled, the file is left alone."""
    path, holder = watched
    path.write_text(config_text(policies=GOLD_2H))
    eventually(lambda: resolution_of(holder) == 7200, APPLY_WITHIN, "save applied")
    opens = _Opens(path.name)
    spy = Observer()
    spy.schedule(opens, str(path.parent))
    spy.start()
    try:
        time.sleep(1.5)  # several debounce periods
    finally:
        spy.stop()
        spy.join()
    assert opens.count == 0


def rejected() -> float:
    value = REGISTRY.get_sample_value("slawatch_config_reloads_total", {"result": "rejected"})
    return value or 0.0


def test_a_deeply_nested_save_is_counted_as_rejected_with_one_short_line(
    watched: tuple[Path, ConfigHolder], caplog: pytest.LogCaptureFixture
) -> None:
    """5,000 levels of nesting (10 KB) is a refused config like any other: the `rejected`
    counter moves, one short ERROR line names the bound, no traceback, the old config runs."""
    path, holder = watched
    before, count = holder.current.version, rejected()
    caplog.set_level(logging.INFO, logger="internal.config.watcher")
    path.write_text("policies: " + "[" * 5000 + "]" * 5000 + "\n")
    eventually(lambda: rejected() == count + 1, APPLY_WITHIN, "rejection counted")
    time.sleep(0.5)  # later events of the same save must not count or log it again
    assert rejected() == count + 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is None
    message = errors[0].getMessage()
    assert "nested deeper than 64 levels" in message and len(message) < 500
    assert holder.current.version == before


def test_a_fifo_in_place_of_the_file_is_refused_without_blocking_the_watcher(
    watched: tuple[Path, ConfigHolder], caplog: pytest.LogCaptureFixture
) -> None:
    """Opening a FIFO for reading waits for a writer; the watcher refuses it instead (once) and
    still applies the next valid save."""
    path, holder = watched
    count = rejected()
    caplog.set_level(logging.INFO, logger="internal.config.watcher")
    fifo = path.with_name("fifo")
    os.mkfifo(fifo)
    os.replace(fifo, path)
    eventually(lambda: rejected() == count + 1, APPLY_WITHIN, "FIFO refused")
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "a FIFO, not a regular file" in error
    staged = path.with_name(".sla_config.yaml.tmp")
    staged.write_text(config_text(policies=GOLD_2H))
    os.replace(staged, path)
    eventually(lambda: resolution_of(holder) == 7200, APPLY_WITHIN, "next save applied")


def test_a_save_with_a_metrics_section_is_served_and_reloads(
    watched: tuple[Path, ConfigHolder], caplog: pytest.LogCaptureFixture
) -> None:
    """examples/zendesk-like.yaml is applied on save (its metrics are served); a broken metric
    in the next save is refused naming its key, the example keeps running; a plain file after
    it is applied again."""
    path, holder = watched
    example = (ROOT / "examples" / "zendesk-like.yaml").read_text()
    caplog.set_level(logging.INFO, logger="internal.config.watcher")
    path.write_text(example)
    eventually(lambda: holder.current.defines_metrics, APPLY_WITHIN, "example applied")
    served = holder.current.version
    assert [d.name for d in holder.current.rules.metrics] == [
        d.name for d in holder.current.metrics
    ]
    path.write_text(example.replace("stop:  [agent_reply,", "stop:  [agent_replied,", 1))
    eventually(lambda: any(r.levelno == logging.ERROR for r in caplog.records), APPLY_WITHIN)
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "metrics." in error and ".stop[0]: unknown trigger 'agent_replied'" in error
    assert holder.current.version == served
    path.write_text(config_text(policies=GOLD_2H))
    eventually(lambda: resolution_of(holder) == 7200, APPLY_WITHIN, "plain file applied")
    assert not holder.current.defines_metrics
