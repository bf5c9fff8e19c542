"""Hot reload of SLAWATCH_TOKENS_FILE, watched like the SLA config (internal/config/watcher.py:
saves in place, by rename, or by a swapped ConfigMap/Secret symlink, within 2 s).

A valid file, merged with SLAWATCH_TOKENS (which only a restart changes), replaces the
authenticator's tokens: an added token works at once, a removed one is refused from its next
call, and the authenticator's listeners end the open streams and WebSockets it no longer allows.
An invalid file is refused with one ERROR line naming the entry and field (never a value),
counted in slawatch_tokens_reloads_total{result="rejected"}, and the last good tokens stay.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from internal.config.tokens import (
    AuthConfigError,
    Authenticator,
    Principal,
    inline_tokens,
    parse_tokens_file,
)
from internal.config.watcher import DEBOUNCE_SECONDS, POLL_SECONDS, FileWatcher, Installed
from internal.obs.metrics import TOKENS_RELOADS

log = logging.getLogger(__name__)


class TokensWatcher(FileWatcher):
    """Follows one tokens file into one Authenticator."""

    what = "tokens file"
    refusals = (AuthConfigError,)
    reloads = TOKENS_RELOADS

    def __init__(
        self,
        path: Path,
        auth: Authenticator,
        inline: Mapping[str, Principal] | None = None,
        *,
        debounce: float = DEBOUNCE_SECONDS,
        poll: float = POLL_SECONDS,
    ) -> None:
        self._auth = auth
        self._inline = dict(inline or {})
        self._last_change = ""
        super().__init__(path, debounce=debounce, poll=poll)

    def install(self, data: bytes, *, startup: bool) -> Installed:
        tokens = {**self._inline, **parse_tokens_file(data, str(self._path))}
        if self._auth.open_dev and tokens:
            # Switching a running process from open to authenticated would leave its open
            # streams and the bridge's single-tenant setup behind: the mode is the start's.
            raise AuthConfigError(
                f"{self._path}: this process started in the insecure development mode (no"
                " tokens); restart it to use tokens"
            )
        change = self._auth.replace(tokens)
        if not change:
            return "startup" if startup else "unchanged"
        self._last_change = change.summary()
        return "applied"

    def in_force(self) -> str:
        return f"the last good tokens ({len(self._auth)})"

    def applied(self) -> None:
        log.info(
            "loaded tokens file %s: %d tokens (%s)",
            self._path,
            len(self._auth),
            self._last_change,
            extra={"config_path": str(self._path)},
        )
        if not len(self._auth):
            log.warning("tokens file %s leaves no tokens: every call is refused", self._path)


def start_tokens_reload(
    auth: Authenticator, inline: str | None, path: Path | None
) -> TokensWatcher | None:
    """Watch `path` (SLAWATCH_TOKENS_FILE) into `auth`; None without a file. `inline` is
    SLAWATCH_TOKENS, already accepted at start, kept under every reload."""
    if path is None:
        return None
    return TokensWatcher(path, auth, inline_tokens(inline)).start()
