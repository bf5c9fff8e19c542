"""The errors a use case raises when the database cannot be reached: callers answer "unavailable,
retry later" (every write is idempotent) rather than an internal error."""

from __future__ import annotations

from internal.store.db import UNREACHABLE_ERRORS as UNREACHABLE_ERRORS
