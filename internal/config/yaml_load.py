"""Reading and parsing a config file that may be hostile: bounded in every dimension.

Used by the SLA config and the tokens file. The rules (stated in README, Security):
- the path must resolve (symlinks are followed) to a regular file: a directory, FIFO, socket or
  device is refused without reading it (a FIFO is opened non-blocking, so it never hangs us);
- at most MAX_FILE_BYTES, checked by reading at most one byte more, before any parsing;
- collections nested at most MAX_DEPTH deep, and at most MAX_NODES nodes in all, where an alias
  counts as the whole node it refers to each time it is used: anchors and aliases stay usable
  for small reuse, but a "billion laughs" file is refused while it is being composed, before
  anything is expanded; an alias inside the node it refers to (a cycle) is refused;
- messages never echo the file: YAML errors give line, column and the parser's problem with
  quoted file content left out; values are shown by `show_value` (short scalars, truncated) and
  keys by `show_key` (only when they look like a name).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_SHOWN_CHARS = 60

_READ_CHUNK = 64 * 1024


class YamlLoadError(ValueError):
    """The file is refused; the message is short and holds none of the file's content."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_bounded(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at `path` (symlinks followed), at most `limit` of them.

    OSError for a file that cannot be opened (missing, no permission); YamlLoadError for one
    that is not a regular file or is too large."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise YamlLoadError(f"{_kind(mode)}, not a regular file")
    # Non-blocking: the path may have become a FIFO since the stat; fstat below decides.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise YamlLoadError(f"{_kind(mode)}, not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(_READ_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise YamlLoadError(f"larger than {limit} bytes")
    return b"".join(chunks)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def show_value(value: object) -> str:
    """A value for a message: a short scalar as repr (truncated), anything else by its type."""
    if value is None or isinstance(value, bool | int | float | str):
        shown = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a big int"
        if len(shown) > MAX_SHOWN_CHARS:
            shown = shown[: MAX_SHOWN_CHARS - 1] + "…"
        return _printable(shown)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


_NAME = re.compile(r"[^\W\d][\w .@+-]{0,63}|\d[\w.+-]{0,63}")


def show_key(key: object) -> str:
    """A key for a message: as it is when it looks like a name; otherwise only its length, so that
    a line of a foreign file (`user:$6$...:19000:0:99999:7:::`) is never repeated."""
    if isinstance(key, str) and _NAME.fullmatch(key) and key.strip() == key:
        return key
    if isinstance(key, str):
        return f"<a key of {len(key)} characters>"
    return f"<a key of type {type(key).__name__}>"


# Token names such as '<block end>' and single punctuation characters are the parser's words;
# any other quoted text in a problem is the file's content.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_PARSER_WORD = re.compile(r"'(?:<[a-z ]+>|[^\w\s])'")


def _parser_text(text: str) -> str:
    def keep(match: re.Match[str]) -> str:
        return match.group(0) if _PARSER_WORD.fullmatch(match.group(0)) else "'…'"

    return _printable(_QUOTED.sub(keep, text))[:120]


def _describe(err: yaml.YAMLError) -> str:
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        parts = [p for p in (err.context, err.problem) if p]
        return f"not valid YAML{where}: {_parser_text(': '.join(parts))}"
    if isinstance(err, yaml.reader.ReaderError):
        return f"not valid YAML at position {err.position}: {_parser_text(str(err.reason))}"
    return "not valid YAML"


class _Limit(Exception):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer counts depth and nodes, aliases expanded (see module doc)."""

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self._depth = 0  # collections open around the node being composed
        self._deepest = 0  # deepest level reached in the node being composed
        self._nodes = 0  # nodes so far, each alias counted as its whole node
        self._anchored: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, height)

    def _reach(self, depth: int, mark: yaml.Mark) -> None:
        if depth > MAX_DEPTH:
            raise _Limit(f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
        self._deepest = max(self._deepest, depth)

    def _count(self, nodes: int, mark: yaml.Mark) -> None:
        self._nodes += nodes
        if self._nodes > MAX_NODES:
            raise _Limit(
                f"line {mark.line + 1}: more than {MAX_NODES} values (aliases counted as often"
                " as they are used)"
            )

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            size = self._anchored.get(id(node))
            if size is None:
                raise _Limit(f"line {mark.line + 1}: an alias inside the node it refers to")
            nodes, height = size
            self._reach(self._depth + height, mark)
            self._count(nodes, mark)
            return node
        collection = isinstance(event, yaml.CollectionStartEvent)
        start_nodes, outer_deepest = self._nodes, self._deepest
        self._count(1, mark)
        if collection:
            self._depth += 1
            self._reach(self._depth, mark)
        self._deepest = self._depth
        node = super().compose_node(parent, index)
        height = self._deepest - self._depth + (1 if collection else 0)
        if collection:
            self._depth -= 1
        self._deepest = max(outer_deepest, self._deepest)
        if event.anchor is not None:
            self._anchored[id(node)] = (self._nodes - start_nodes, height)
        return node


def load_yaml(data: bytes) -> Any:
    """The one YAML document in `data`, within the bounds; YamlLoadError otherwise."""
    if len(data) > MAX_FILE_BYTES:
        raise YamlLoadError(f"larger than {MAX_FILE_BYTES} bytes")
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(data)  # reads the start of the stream: may raise already
        return loader.get_single_data()
    except _Limit as err:
        raise YamlLoadError(f"refused YAML: {err}") from None
    except yaml.YAMLError as err:
        raise YamlLoadError(_describe(err)) from None
    except RecursionError:
        raise YamlLoadError(f"refused YAML: nested deeper than {MAX_DEPTH} levels") from None
    except Exception:
        # PyYAML's constructors let others through on odd scalars: ValueError for the date
        # 2026-02-30, AttributeError for `!!timestamp ''`. Any of them is a file we refuse.
        raise YamlLoadError("not valid YAML: a value that cannot be constructed") from None
    finally:
        if loader is not None:
            loader.dispose()
