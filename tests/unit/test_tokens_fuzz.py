"""The tokens loader (SLAWATCH_TOKENS_FILE, on every reload) under hostile input: any bytes, any
YAML-shaped entries, any field of an entry replaced by anything, random YAML syntax — either
valid tokens or an AuthConfigError whose one short line names the file and, for a bad entry,
the entry and field; never a traceback (which would kill the watcher's reload instead of keeping
the last good tokens), and never a token or a hash of the file in the message."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from internal.config.tokens import AuthConfigError, Role, hash_token, parse_tokens_file

SOURCE = "/etc/slawatch/tokens.yaml"
MAX_MESSAGE = 300
FIELDS = ["name", "sha256", "tenant", "roles"]
CLEAR = "s3cret-fuzz-token"
DIGEST = hash_token(CLEAR)


def valid_entry(i: int) -> dict[str, object]:
    return {
        "name": f"token-{i}",
        "sha256": hash_token(f"{CLEAR}-{i}"),
        "tenant": "acme",
        "roles": ["read", "watch"],
    }


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=70),
    st.sampled_from(
        [CLEAR, DIGEST, DIGEST.upper(), DIGEST[:63], "token-0", "acme", "", "x" * 65]
        + [r.value for r in Role]
        + ["root", "READ"]
    ),
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=12), st.integers()), children, max_size=4),
    ),
    max_leaves=20,
)


def check(data: bytes | str) -> str | None:
    """The refusal's message, checked; None when the file was accepted (and is usable)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        tokens = parse_tokens_file(raw, SOURCE)
    except AuthConfigError as err:
        message = str(err)
        assert message.startswith(SOURCE), message[:500]
        assert len(message) < MAX_MESSAGE, message[:500]
        assert "\n" not in message
        assert CLEAR not in message and DIGEST not in message
        return message
    for digest, principal in tokens.items():
        assert len(digest) == 64 and principal.token_hash == digest
        assert principal.name and principal.tenant and principal.roles
    assert len({p.name for p in tokens.values()}) == len(tokens)
    return None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes(data: bytes) -> None:
    check(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(trees, max_size=5))
def test_any_list_of_anything(entries: list[object]) -> None:
    check(yaml.safe_dump(entries))


@settings(max_examples=300, deadline=None)
@given(trees)
def test_anything_at_the_top(doc: object) -> None:
    message = check(yaml.safe_dump(doc))
    if not isinstance(doc, list):
        assert message == f"{SOURCE}: expected a list of tokens"


@settings(max_examples=500, deadline=None)
@given(
    st.integers(min_value=1, max_value=4),
    st.data(),
    st.sampled_from(FIELDS),
    st.one_of(trees, st.just(DIGEST)),
)
def test_one_field_of_one_entry_replaced_by_anything(
    count: int, data: st.DataObject, field: str, value: object
) -> None:
    """Entries before the replaced one are valid, so a refusal names exactly that entry and
    field: `<file>[i].field`."""
    i = data.draw(st.integers(min_value=0, max_value=count - 1))
    entries = [valid_entry(j) for j in range(count)]
    entries[i][field] = value
    message = check(yaml.safe_dump(entries))
    if message is not None:
        assert message.startswith(f"{SOURCE}[{i}].{field}: "), message


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=3), st.sampled_from(FIELDS))
def test_a_missing_field_is_named(i: int, field: str) -> None:
    entries = [valid_entry(j) for j in range(4)]
    del entries[i][field]
    message = check(yaml.safe_dump(entries))
    assert message is not None and message.startswith(f"{SOURCE}[{i}].{field}: ")


FRAGMENTS = [
    "- ", "{", "}", "[", "]", ": ", ", ", "\n", "\n  ", "&a ", "*a", "*b", "<<: ", "? ",
    "!!binary ", "!!python/object/apply:os.system ", "!!set ", "'", '"', "\\", "\\q", "~",
    "\t", "\x00", "\ufeff", "é", "name", "sha256", "tenant", "roles", "read", "watch", "admin",
    "acme", CLEAR, DIGEST, "%YAML 1.1\n", "---\n", "...\n", "x" * 200,
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60))
def test_any_sequence_of_yaml_syntax(pieces: list[str]) -> None:
    check("".join(pieces))
