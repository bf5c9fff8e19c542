"""The tokens file (SLAWATCH_TOKENS_FILE) and SLAWATCH_TOKENS against hostile content (issue 18,
item 4): the same bounds as the SLA config — size, aliases, nesting, regular files only — and no
message ever shows a token or any other line of the file."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from internal.config.tokens import AuthConfigError, hash_token, load_tokens

MAX_MESSAGE = 400
CLEAR = "s3cret-clear-token-do-not-log"
DIGEST = hash_token(CLEAR)
ENTRY = f"- {{name: ci, sha256: {DIGEST}, tenant: acme, roles: [ingest]}}\n"


def refusal(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    with pytest.raises(AuthConfigError) as info:
        load_tokens(None, path)
    message = str(info.value)
    assert len(message) < MAX_MESSAGE, message[:500]
    assert CLEAR not in message and DIGEST not in message
    return message


def test_a_valid_tokens_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(ENTRY)
    (principal,) = load_tokens(None, path).values()
    assert (principal.name, principal.tenant) == ("ci", "acme")


def test_an_alias_bomb_in_a_field_nobody_reads_is_refused(tmp_path: Path) -> None:
    """Extra fields of an entry are ignored, so a bomb there used to be accepted silently; it
    is refused while the file is composed, naming the alias expansion."""
    lol = ", ".join(['"lol"'] * 10)
    anchors = [f"&l0 [{lol}]"] + [f"&l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = ENTRY.replace("roles: [ingest]", f"roles: [ingest], note: [{', '.join(anchors)}]")
    assert len(text) < 1000
    message = refusal(tmp_path, text)
    assert "more than 100000 values" in message


def test_deep_nesting_is_an_auth_config_error(tmp_path: Path) -> None:
    """5,000 levels: one AuthConfigError naming the bound, not a RecursionError."""
    message = refusal(tmp_path, "[" * 5000 + "]" * 5000 + "\n")
    assert "nested deeper than 64 levels" in message


def test_deep_nesting_in_the_inline_json_is_an_auth_config_error() -> None:
    with pytest.raises(AuthConfigError, match="SLAWATCH_TOKENS") as info:
        load_tokens("[" * 100_000 + "]" * 100_000, None)
    assert len(str(info.value)) < MAX_MESSAGE


def test_a_syntax_error_next_to_a_clear_token_does_not_show_it(tmp_path: Path) -> None:
    """Someone pasted a clear token by mistake, in a line YAML cannot parse: the message gives
    the position, never the line."""
    message = refusal(tmp_path, f'- {{name: ci, sha256: "{CLEAR}\\q", tenant: acme}}\n')
    assert "not valid YAML at line 1" in message


def test_a_clear_token_where_a_hash_belongs_is_not_shown(tmp_path: Path) -> None:
    message = refusal(tmp_path, ENTRY.replace(DIGEST, CLEAR))
    assert "[0].sha256" in message


def test_an_inline_json_error_does_not_show_the_tokens() -> None:
    broken = json.dumps([{"name": "ci", "sha256": CLEAR}])[:-1]
    with pytest.raises(AuthConfigError) as info:
        load_tokens(broken, None)
    assert CLEAR not in str(info.value)


def test_a_file_over_one_mebibyte_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, ENTRY + "#" + "x" * (1024 * 1024) + "\n")
    assert "larger than 1048576 bytes" in message


def test_a_symlink_to_a_foreign_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    foreign = tmp_path / "shadow"
    foreign.write_text("root:$6$Qx9sAlt$Zm9vYmFy:19700:0:99999:7:::\n_apt:*:19700:0:99999:7:::\n")
    path = tmp_path / "tokens.yaml"
    path.symlink_to(foreign)
    with pytest.raises(AuthConfigError) as info:
        load_tokens(None, path)
    for fragment in ("root:", "$6$", "Qx9s", "_apt", "19700"):
        assert fragment not in str(info.value)


def test_a_directory_is_refused_as_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="a directory, not a regular file"):
        load_tokens(None, tmp_path)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "tokens.yaml"
    os.mkfifo(fifo)
    outcome: list[object] = []

    def load() -> None:
        try:
            outcome.append(load_tokens(None, fifo))
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
    assert isinstance(err, AuthConfigError)
    assert "a FIFO, not a regular file" in str(err)


def test_one_token_in_two_entries_is_refused_naming_the_second(tmp_path: Path) -> None:
    """Two entries with one hash would give one token two tenants or role sets: refused, at
    start-up as on a reload, naming both entries and showing neither the hash nor the token."""
    second = ENTRY.replace("name: ci", "name: ci-globex").replace("tenant: acme", "tenant: globex")
    message = refusal(tmp_path, ENTRY + second)
    assert "tokens.yaml[1].sha256: the same token as" in message
    assert message.endswith("tokens.yaml[0]; one entry a token")
