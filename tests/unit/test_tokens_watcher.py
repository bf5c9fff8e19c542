"""The tokens file watcher on real files, with a real Authenticator: the ways a tokens file gets
saved (in place, by rename, by a Kubernetes Secret's symlink swap) are each noticed within 2 s;
the listeners hear what changed; a broken save is refused and the last good tokens stay; and a
process started with tokens never falls back to the open development mode."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from internal.config.tokens import Authenticator, TokenChange, load_tokens
from internal.config.tokens_watcher import TokensWatcher, start_tokens_reload
from support.tokens import save_by_rename, secret, tokens_json

APPLY_WITHIN = 2.0  # the promise: a save takes effect within 2 s
ONE = {"one": ("acme", ["read"])}
TWO = {**ONE, "two": ("globex", ["watch"])}


def eventually(predicate: Callable[[], object], timeout: float = APPLY_WITHIN) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s")


def knows(auth: Authenticator, name: str) -> bool:
    return auth.lookup(secret(name)) is not None


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, Authenticator, list[TokenChange]]]:
    """A watcher only events can wake (its poll is too slow to matter), and what it changed."""
    path = tmp_path / "tokens.yaml"
    path.write_text(tokens_json(ONE))
    auth = Authenticator(load_tokens(None, path))
    changes: list[TokenChange] = []
    auth.on_change(changes.append)
    watcher = TokensWatcher(path, auth, poll=60).start()
    yield path, auth, changes
    watcher.stop()


def test_a_save_in_place_adds_a_token_within_two_seconds(
    watched: tuple[Path, Authenticator, list[TokenChange]],
) -> None:
    path, auth, changes = watched
    assert not knows(auth, "two")
    path.write_text(tokens_json(TWO))
    eventually(lambda: knows(auth, "two"))
    (change,) = changes
    assert [p.name for p in change.added.values()] == ["two"]
    assert not change.removed and not change.changed


def test_a_save_by_rename_removes_a_token_within_two_seconds(
    watched: tuple[Path, Authenticator, list[TokenChange]],
) -> None:
    path, auth, changes = watched
    save_by_rename(path, tokens_json({"two": ("globex", ["watch"])}))
    eventually(lambda: not knows(auth, "one"))
    assert knows(auth, "two")
    (change,) = changes
    assert [p.name for p in change.removed.values()] == ["one"]


def test_a_changed_role_is_a_change_and_the_new_principal_is_in_force(
    watched: tuple[Path, Authenticator, list[TokenChange]],
) -> None:
    path, auth, changes = watched
    save_by_rename(path, tokens_json({"one": ("acme", ["read", "watch"])}))
    eventually(lambda: changes)
    ((old, new),) = changes[0].changed.values()
    assert {r.value for r in old.roles} == {"read"}
    assert {r.value for r in new.roles} == {"read", "watch"}
    principal = auth.lookup(secret("one"))
    assert principal is not None and principal == new
    assert auth.by_hash(principal.token_hash) == new


def test_a_secret_symlink_swap_applies_within_two_seconds(tmp_path: Path) -> None:
    """A Kubernetes Secret volume: tokens.yaml -> ..data/tokens.yaml, ..data -> ..<timestamp>/;
    an update swaps ..data atomically and writes neither the file nor the link."""
    first = tmp_path / "..2026_01_05_10_00_00.1"
    first.mkdir()
    (first / "tokens.yaml").write_text(tokens_json(ONE))
    (tmp_path / "..data").symlink_to(first.name)
    path = tmp_path / "tokens.yaml"
    path.symlink_to("..data/tokens.yaml")
    auth = Authenticator(load_tokens(None, path))
    watcher = TokensWatcher(path, auth, poll=60).start()
    try:
        second = tmp_path / "..2026_01_05_10_05_00.2"
        second.mkdir()
        (second / "tokens.yaml").write_text(tokens_json(TWO))
        staged = tmp_path / "..data_tmp"
        staged.symlink_to(second.name)
        os.replace(staged, tmp_path / "..data")
        eventually(lambda: knows(auth, "two"))
    finally:
        watcher.stop()


def test_the_inline_tokens_stay_under_every_reload(tmp_path: Path) -> None:
    """SLAWATCH_TOKENS is the environment's: a reload of the file never drops its tokens."""
    path = tmp_path / "tokens.yaml"
    path.write_text(tokens_json(ONE))
    inline = tokens_json({"env": ("acme", ["ingest"])})
    auth = Authenticator(load_tokens(inline, path))
    watcher = start_tokens_reload(auth, inline, path)
    assert watcher is not None
    try:
        save_by_rename(path, tokens_json(TWO))
        eventually(lambda: knows(auth, "two"))
        assert knows(auth, "env") and knows(auth, "one")
    finally:
        watcher.stop()
    assert start_tokens_reload(auth, inline, None) is None  # no file, nothing to watch


def test_a_broken_save_keeps_the_last_good_tokens(
    watched: tuple[Path, Authenticator, list[TokenChange]], caplog: pytest.LogCaptureFixture
) -> None:
    path, auth, changes = watched
    save_by_rename(path, tokens_json(TWO).replace('"watch"', '"wtach"'))
    eventually(lambda: any("refused new tokens file" in r.getMessage() for r in caplog.records))
    (line,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert f"{path}[1].roles: unknown role" in line
    assert knows(auth, "one") and not knows(auth, "two")
    assert changes == []


def test_emptying_the_file_refuses_every_call_and_never_opens_the_process(tmp_path: Path) -> None:
    """The insecure development mode is decided at start: a process that started with tokens,
    even with the switch on, refuses everyone once the file lists none."""
    path = tmp_path / "tokens.yaml"
    path.write_text(tokens_json(ONE))
    auth = Authenticator(load_tokens(None, path), insecure_dev=True)
    watcher = TokensWatcher(path, auth, poll=60).start()
    try:
        save_by_rename(path, "[]\n")
        eventually(lambda: not knows(auth, "one"))
        assert len(auth) == 0
        assert not auth.open_dev
        assert auth.authenticate(None) is None
    finally:
        watcher.stop()


def test_a_process_started_open_refuses_a_file_that_brings_tokens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The other way round: tokens in the file of a process started open need a restart, and
    the refusal says so."""
    path = tmp_path / "tokens.yaml"
    path.write_text("[]\n")
    auth = Authenticator(load_tokens(None, path), insecure_dev=True)
    assert auth.open_dev
    watcher = TokensWatcher(path, auth, poll=60).start()
    try:
        save_by_rename(path, tokens_json(ONE))
        eventually(lambda: any("restart it" in r.getMessage() for r in caplog.records))
        assert auth.open_dev and len(auth) == 0
    finally:
        watcher.stop()
