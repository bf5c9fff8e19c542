"""Hot reload of the SLA config file.

The watch is on the file's DIRECTORY, not the file: editors save by writing a temporary file and
renaming it over the old one, and Kubernetes ConfigMaps swap a `..data` symlink, so the inode a
file watch would follow is replaced rather than written. Any event in the directory schedules a
re-read (debounced); the content hash decides whether anything changed. A slow poll of the same
hash covers filesystems where inotify says nothing (network mounts).

A valid new file replaces the config in the holder; an invalid one is refused with one ERROR line
naming the file and the key, and the last good config keeps running.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from internal.config.holder import ConfigHolder
from internal.config.sla_config import ConfigError, parse_config
from internal.obs.metrics import CONFIG_RELOADS

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.2
POLL_SECONDS = 3.0


class ConfigWatcher:
    def __init__(
        self,
        path: Path,
        holder: ConfigHolder,
        *,
        debounce: float = DEBOUNCE_SECONDS,
        poll: float = POLL_SECONDS,
    ) -> None:
        self._path = Path(path).absolute()
        self._holder = holder
        self._debounce = debounce
        self._poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_digest: str | None = None
        self._observer = Observer()
        self._thread = threading.Thread(target=self._run, name="config-watcher", daemon=True)

    def start(self) -> ConfigWatcher:
        self._last_digest = self._digest()
        wake = self._wake

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                wake.set()

        self._observer.schedule(Handler(), str(self._path.parent), recursive=False)
        self._observer.daemon = True
        self._observer.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._observer.stop()
        self._observer.join(timeout=5)
        self._thread.join(timeout=5)

    def _digest(self) -> str | None:
        try:
            return hashlib.sha256(self._path.read_bytes()).hexdigest()
        except OSError:
            return None  # mid-swap, or removed: keep the last good config

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._poll)
            if self._stop.is_set():
                return
            if self._wake.is_set():
                # Editors and ConfigMaps produce bursts of events; let the burst finish.
                self._stop.wait(self._debounce)
                self._wake.clear()
            self.check()

    def check(self) -> None:
        """Re-read the file if its bytes changed; install it if valid."""
        digest = self._digest()
        if digest is None or digest == self._last_digest:
            return
        self._last_digest = digest
        try:
            config = parse_config(self._path.read_bytes())
        except (ConfigError, OSError) as err:
            CONFIG_RELOADS.labels(result="rejected").inc()
            log.error(
                "refused new SLA config %s: %s; still running policy %s",
                self._path,
                err,
                self._holder.current.version,
                extra={"config_path": str(self._path)},
            )
            return
        applied = self._holder.replace(config)
        CONFIG_RELOADS.labels(result="applied" if applied else "unchanged").inc()
        if applied:
            log.info(
                "loaded SLA config %s: policy %s",
                self._path,
                config.version,
                extra={"policy_version": config.version},
            )
