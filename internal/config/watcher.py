"""Hot reload of a watched file: the SLA config (ConfigWatcher, here) and the tokens file
(internal/config/tokens_watcher.py) share the watching; each says how its bytes are parsed and
installed.

The watch is on the file's DIRECTORY, not the file: editors save by writing a temporary file and
renaming it over the old one, and Kubernetes ConfigMaps swap a `..data` symlink, so the inode a
file watch would follow is replaced rather than written. When the path is a symlink into another
directory (outside the watched one), that directory is watched too, so that an in-place edit of
the target is seen as well.

Any write-type event in a watched directory schedules a re-read once the burst of events has been
quiet for a moment (debounce); the content hash decides whether anything changed. Read-only
events (open, close without write) are not listened to: the watcher's own reads would otherwise
wake it again, forever. A slow poll of the same hash covers filesystems where inotify says
nothing (network mounts).

A valid new file is installed (the config replaces the holder's, the tokens the authenticator's);
an invalid one is refused with one ERROR line naming the file and the key, counted, and the last
good content stays in force.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import ClassVar, Literal, Self

from prometheus_client import Counter
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

from internal.config.holder import ConfigHolder
from internal.config.sla_config import ConfigError, parse_served_config
from internal.config.yaml_load import YamlLoadError, read_bounded
from internal.obs.metrics import CONFIG_RELOADS

log = logging.getLogger(__name__)

# What installing a valid file did: "applied" (it differs from what was in force), "unchanged"
# (it is what is in force, e.g. a refused file put back), "startup" (the file the process was
# started from, seen by the first check: nothing to count or log).
Installed = Literal["applied", "unchanged", "startup"]

DEBOUNCE_SECONDS = 0.2
# A writer that never pauses must not postpone the reload past the 2 s promise.
MAX_SETTLE_SECONDS = 1.0
POLL_SECONDS = 3.0

_WRITE_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
]


class _Wake(FileSystemEventHandler):
    def __init__(self, wake: threading.Event) -> None:
        self._wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._wake.set()


class FileWatcher(abc.ABC):
    """Follows one file; `start()` it, `stop()` it on shutdown. Subclasses say what the file is
    (`what`, `refusals`, `reloads`) and how valid bytes are installed (`install`, `in_force`,
    `applied`)."""

    what: ClassVar[str]  # "SLA config", for log lines
    # The errors that mean "this content is refused" (their message names the key).
    refusals: ClassVar[tuple[type[Exception], ...]]
    reloads: ClassVar[Counter]  # labelled by result: applied, rejected, unchanged

    def __init__(
        self,
        path: Path,
        *,
        debounce: float = DEBOUNCE_SECONDS,
        poll: float = POLL_SECONDS,
    ) -> None:
        self._path = Path(path).absolute()
        self._debounce = debounce
        self._poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_digest: str | None = None
        self._refused = False  # the file on disk is the broken one last refused
        self._unreadable = False
        self._handler = _Wake(self._wake)
        self._watches: dict[Path, tuple[int, ObservedWatch]] = {}  # dir -> (inode, watch)
        self._unwatchable: set[Path] = set()
        self._observer = Observer()
        self._observer.daemon = True
        name = self.what.lower().replace(" ", "-") + "-watcher"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- what the file is ----------------------------------------------------------------------

    @abc.abstractmethod
    def install(self, data: bytes, *, startup: bool) -> Installed:
        """Parse `data` and put it in force; raise one of `refusals` when it is invalid."""

    @abc.abstractmethod
    def in_force(self) -> str:
        """What keeps running when a save is refused, for the log line ("policy 3f2a...")."""

    @abc.abstractmethod
    def applied(self) -> None:
        """Log what a new valid file put in force."""

    # -- the watching ----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    def start(self) -> Self:
        self._observer.start()
        self._sync_watches()
        # The file may have changed between the start-up load and the first watch.
        self.check(startup=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._observer.stop()
        if self._observer.is_alive():
            self._observer.join(timeout=5)
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _dirs_to_watch(self) -> set[Path]:
        home = self._path.parent
        dirs = {home}
        target = self._path.resolve().parent
        # A ConfigMap's target lives in a `..<timestamp>` subdirectory that is swapped, never
        # edited; the watch on `home` already sees the swap.
        if target != home and not target.is_relative_to(home):
            dirs.add(target)
        return dirs

    def _sync_watches(self) -> None:
        """Watch what `_dirs_to_watch` names now; a directory replaced by another one of the same
        name (a deploy moving a new folder into place) is watched afresh, since inotify follows
        the old inode."""
        wanted: dict[Path, int] = {}
        for d in self._dirs_to_watch():
            try:
                wanted[d] = d.stat().st_ino
            except OSError:
                continue
        for d, (inode, watch) in list(self._watches.items()):
            if wanted.get(d) != inode:
                del self._watches[d]
                with contextlib.suppress(KeyError):  # its emitter may have ended with the dir
                    self._observer.unschedule(watch)
        for d, inode in wanted.items():
            if d in self._watches:
                continue
            try:
                watch = self._observer.schedule(
                    self._handler, str(d), recursive=False, event_filter=_WRITE_EVENTS
                )
            except OSError as err:
                # The poll still covers the file; the watch is tried again after each check.
                if d not in self._unwatchable:
                    self._unwatchable.add(d)
                    log.warning("cannot watch %s for %s changes: %s", d, self.what, err)
                continue
            self._unwatchable.discard(d)
            self._watches[d] = (inode, watch)

    def _run(self) -> None:
        while not self._stop.is_set():
            woke = self._wake.wait(self._poll)
            if self._stop.is_set():
                return
            if woke:
                self._settle()
                if self._stop.is_set():
                    return
            try:
                self.check()
                self._sync_watches()
            except Exception:
                # The thread must outlive any surprise: a dead watcher silently freezes the config.
                log.exception("%s watcher: unexpected error checking %s", self.what, self._path)

    def _settle(self) -> None:
        """Return once events have been quiet for `debounce`, or after MAX_SETTLE_SECONDS."""
        deadline = time.monotonic() + MAX_SETTLE_SECONDS
        self._wake.clear()
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._wake.wait(min(self._debounce, remaining)):
                return
            self._wake.clear()

    def _read(self) -> bytes | None:
        """The file's bytes; None when it cannot be read (warned once). YamlLoadError when it is
        not a regular file or is too large."""
        try:
            data = read_bounded(self._path)  # follows symlinks, as a ConfigMap needs
        except OSError as err:
            if not self._unreadable:
                self._unreadable = True
                log.warning(
                    "cannot read %s %s: %s; still running %s",
                    self.what,
                    self._path,
                    err.strerror or err,
                    self.in_force(),
                    extra={"config_path": str(self._path)},
                )
            return None
        self._unreadable = False
        return data

    def _refuse(self, err: Exception) -> None:
        self._refused = True
        self.reloads.labels(result="rejected").inc()
        log.error(
            "refused new %s %s: %s; still running %s",
            self.what,
            self._path,
            " ".join(str(err).split()),  # one log line, whatever the message holds
            self.in_force(),
            extra={"config_path": str(self._path)},
        )

    def check(self, *, startup: bool = False) -> None:
        """Re-read the file; if its bytes changed, install it when valid or refuse it loudly."""
        try:
            data = self._read()
        except YamlLoadError as err:
            # Refused unread (a FIFO, a huge file): what was refused is remembered by its
            # message, so that the poll does not count and log it again.
            if self._last_digest != f"refused: {err}":
                self._last_digest = f"refused: {err}"
                self._refuse(err)
            return
        if data is None:
            return
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._last_digest:
            return
        self._last_digest = digest
        try:
            installed = self.install(data, startup=startup)
        except self.refusals as err:
            self._refuse(err)
            return
        was_refused, self._refused = self._refused, False
        if installed == "startup":
            return  # the file the process was started from: nothing happened
        self.reloads.labels(result=installed).inc()
        if installed == "applied":
            self.applied()
        elif was_refused:
            log.info(
                "%s %s is valid again; %s unchanged",
                self.what,
                self._path,
                self.in_force(),
                extra={"config_path": str(self._path)},
            )


class ConfigWatcher(FileWatcher):
    """Follows one SLA config file into one ConfigHolder."""

    what = "SLA config"
    refusals = (ConfigError,)
    reloads = CONFIG_RELOADS

    def __init__(
        self,
        path: Path,
        holder: ConfigHolder,
        *,
        debounce: float = DEBOUNCE_SECONDS,
        poll: float = POLL_SECONDS,
    ) -> None:
        self._holder = holder
        super().__init__(path, debounce=debounce, poll=poll)

    def install(self, data: bytes, *, startup: bool) -> Installed:
        if self._holder.replace(parse_served_config(data)):
            return "applied"
        return "startup" if startup else "unchanged"

    def in_force(self) -> str:
        return f"policy {self._holder.current.version}"

    def applied(self) -> None:
        version = self._holder.current.version
        log.info(
            "loaded SLA config %s: policy %s",
            self._path,
            version,
            extra={"policy_version": version},
        )
