"""One LISTEN connection per server process, fanning new alerts out to every WatchAlerts stream.

A dedicated thread LISTENs on the alerts channel. On each notification, and every
`poll_interval` seconds as a safety net for a NOTIFY that never arrived, it reads the alerts with
id > the last it has seen and offers them, in id order, to each subscription's bounded queue.
After its connection drops it reconnects with backoff and reads from the same id, so nothing
committed meanwhile is skipped. Changes of alerts written earlier (a repeat, an acknowledgement)
are read the same way from alert_updates, after the new alerts of each round.

Each alert is converted to its protobuf message once, here, and shared by every stream.

A stream the hub ends (too slow, shutting down, its token revoked by a reload) is told so and
ends itself, so that its status carries the resume point as a google.rpc.ErrorInfo; only a stream
whose thread stays blocked sending is cut from here, with the resume point in the message alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg

from internal.config.tokens import Principal
from internal.rpc import convert
from internal.rpc.errors import status_with_reason
from internal.usecase import alert_changes, alerts
from internal.usecase.alerts import AlertFilter, AlertRow
from slawatch.errors import RESUME_KEY, SERVER_SHUTTING_DOWN, STREAM_TOO_SLOW
from slawatch.v1 import ticket_service_pb2 as pb

log = logging.getLogger(__name__)

RECONNECT_MIN_SECONDS = 0.2
RECONNECT_MAX_SECONDS = 5.0
# How long the listener blocks at a time, so that close() is noticed promptly.
WAIT_SLICE_SECONDS = 0.5
# A stream told to end ends itself, with the full status, as soon as its thread is free. One
# whose thread stays blocked sending to a client that does not read is cut after this long (a
# client that merely reads slowly still gets the full status); at shutdown, after the second.
SLOW_CUT_SECONDS = 10.0
SHUTDOWN_CUT_SECONDS = 1.0
# A revoked token's stream must be over within 2 s of the save, stuck sender or not.
REVOKED_CUT_SECONDS = 0.5

Ender = Callable[[grpc.StatusCode, str], None]

CHANGE_TO_PB = {
    alert_changes.REPEAT: pb.ALERT_CHANGE_REPEATED,
    alert_changes.ACKNOWLEDGED: pb.ALERT_CHANGE_ACKNOWLEDGED,
}


@dataclass(frozen=True, slots=True)
class LiveAlert:
    alert_id: int
    row: AlertRow  # the stored columns, for filtering
    response: pb.WatchAlertsResponse
    # A repeat or acknowledgement of an alert (possibly one the stream sent long ago): sent
    # whatever the stream's position, which it does not move.
    update: bool = False


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """Why the hub ends a stream; the stream's own thread turns it into the status."""

    code: grpc.StatusCode
    reason: str  # ErrorInfo.reason
    why: str

    def message(self, last_sent: int) -> str:
        return f"{self.why}; {resume_hint(last_sent)}"

    def status(self, last_sent: int) -> grpc.Status:
        """With ErrorInfo metadata `after_alert_id`, the resume point, for clients that do not
        track the ids they received."""
        return status_with_reason(
            self.code, self.message(last_sent), self.reason, {RESUME_KEY: str(last_sent)}
        )


# Why a stream of this caller may not run (any more) under the tokens in force; None if it may.
Guard = Callable[[Principal], StreamEnd | None]


class HubUnavailable(Exception):
    """The hub is not (or no longer) able to take subscribers."""


class StreamRefused(Exception):
    """The guard refuses the caller's stream: its token was revoked as the stream started."""

    def __init__(self, end: StreamEnd) -> None:
        super().__init__(end.why)
        self.end = end


class TooManySubscribers(Exception):
    pass


class Subscription:
    """A stream's view of the hub: a bounded queue of matching live alerts.

    While its owner replays stored alerts the subscription is not yet live, and overflowing its
    queue only marks it stale (the replay re-reads the table, which has everything). Once live,
    overflowing it ends the stream: the hub calls `terminate`.
    """

    def __init__(
        self,
        wanted: AlertFilter,
        capacity: int,
        ender: Ender,
        principal: Principal | None = None,
    ) -> None:
        self.wanted = wanted
        self.principal = principal  # whose token the stream runs on, for the guard
        self.capacity = capacity
        self.last_sent = 0  # written by the stream, read when composing the end message
        self.cut_at = 0.0  # monotonic time after which a terminated, unfinished stream is cut
        self.finished = threading.Event()  # the call is over
        self._ender = ender
        self._cond = threading.Condition()
        self._items: deque[LiveAlert] = deque()
        self._live = False
        self._stale = False
        self._ended = False
        self.end: StreamEnd | None = None

    def offer(self, batch: Sequence[LiveAlert]) -> bool:
        """Queue the alerts of `batch` it wants; False when that overflowed a live queue."""
        wanted = [a for a in batch if self.wanted.matches(a.row)]
        if not wanted:
            return True
        with self._cond:
            if self._ended or self._stale:
                return True
            if len(self._items) + len(wanted) > self.capacity:
                self._items.clear()
                if self._live:
                    return False
                self._stale = True
                return True
            self._items.extend(wanted)
            self._cond.notify()
        return True

    def go_live(self) -> bool:
        """Switch to live delivery, unless alerts were dropped during the replay: then False, the
        queue is reset, and the caller replays from the table again before retrying."""
        with self._cond:
            if self._stale:
                self._stale = False
                return False
            self._live = True
            return True

    def take(self, timeout: float) -> list[LiveAlert] | None:
        """The queued alerts, oldest first (possibly none after `timeout`); None once ended."""
        with self._cond:
            if not self._items and not self._ended:
                self._cond.wait(timeout)
            if self._ended:
                return None
            items = list(self._items)
            self._items.clear()
            return items

    def close(self) -> None:
        """The stream is gone (client cancelled or finished): wake its thread, end nothing."""
        with self._cond:
            self._ended = True
            self._items.clear()
            self._cond.notify_all()
        self.finished.set()

    def terminate(self, end: StreamEnd, cut_after: float) -> None:
        """Tell the stream to end, from any thread. Its own thread ends the call with the full
        status (details cannot be sent from another thread); if it is still blocked sending
        `cut_after` seconds later, the hub `cut`s the call."""
        with self._cond:
            if self._ended:
                return
            self._ended = True
            self.end = end
            self._items.clear()
            self.cut_at = time.monotonic() + cut_after
            self._cond.notify_all()

    def cut(self) -> None:
        """End the call now, even while its thread is blocked sending: code and message only
        (gRPC core's cancel-with-status carries no details), the resume point in the message."""
        if self.end is not None and not self.finished.is_set():
            self._ender(self.end.code, self.end.message(self.last_sent))

    @property
    def ended(self) -> bool:
        return self._ended


def resume_hint(last_sent: int) -> str:
    return f"resume with after_alert_id={last_sent} (or the last alert_id you received, if larger)"


class AlertHub:
    def __init__(
        self,
        database_url: str,
        *,
        max_subscribers: int,
        max_per_tenant: int | None = None,
        queue_size: int,
        poll_interval: float = 5.0,
        page_size: int = 1000,
        guard: Guard | None = None,
    ) -> None:
        self._url = database_url
        self._guard = guard
        self.max_subscribers = max_subscribers
        self.max_per_tenant = max_per_tenant or max_subscribers
        self.queue_size = queue_size
        self._poll_interval = poll_interval
        self._page = page_size
        self._lock = threading.Lock()
        # Copied on write: the listener iterates a snapshot without holding the lock.
        self._subs: tuple[Subscription, ...] = ()
        # Terminated; cut unless finished in time. Under _lock: a reload adds to it too.
        self._ending: list[Subscription] = []
        self._closed = False
        self._stopping = threading.Event()
        self.connected = threading.Event()
        self.position: int | None = None  # the last alert id read from the table
        self.update_position: int | None = None  # the last alert_updates id read
        self.overflows = 0
        self.reconnects = 0
        self._thread = threading.Thread(target=self._run, name="alert-listener", daemon=True)

    # -- subscribers ---------------------------------------------------------------------------

    def subscribe(
        self, wanted: AlertFilter, ender: Ender, principal: Principal | None = None
    ) -> Subscription:
        """Register a stream. Every alert the listener reads from now on is offered to it.

        StreamRefused when the guard refuses `principal`: checked after registering, so that a
        reload either finds the stream in `recheck` or has already swapped the tokens."""
        sub = Subscription(wanted, self.queue_size, ender, principal)
        with self._lock:
            if self._closed:
                raise HubUnavailable("server shutting down")
            if self.position is None:
                # Without a starting position, live-only streams could miss what is written
                # before the listener first connects.
                raise HubUnavailable("alert feed not connected to the database yet")
            if len(self._subs) >= self.max_subscribers:
                raise TooManySubscribers(
                    f"at most {self.max_subscribers} concurrent WatchAlerts streams per server"
                    " (SLAWATCH_MAX_STREAMS)"
                )
            # One tenant must not take every stream of a server shared with others.
            if sum(s.wanted.tenant == wanted.tenant for s in self._subs) >= self.max_per_tenant:
                raise TooManySubscribers(
                    f"at most {self.max_per_tenant} concurrent WatchAlerts streams per tenant"
                    " (SLAWATCH_MAX_STREAMS_PER_TENANT)"
                )
            self._subs = (*self._subs, sub)
        end = self._verdict(sub)
        if end is not None:
            self.unsubscribe(sub)
            raise StreamRefused(end)
        return sub

    def _verdict(self, sub: Subscription) -> StreamEnd | None:
        if self._guard is None or sub.principal is None:
            return None
        return self._guard(sub.principal)

    def recheck(self) -> int:
        """End every stream the guard now refuses (the tokens were reloaded), from any thread;
        how many were ended."""
        refused = [(sub, end) for sub in self._subs if (end := self._verdict(sub)) is not None]
        if not refused:
            return 0
        gone = {id(sub) for sub, _ in refused}
        with self._lock:
            self._subs = tuple(s for s in self._subs if id(s) not in gone)
            self._ending.extend(sub for sub, _ in refused)
        for sub, end in refused:
            sub.terminate(end, REVOKED_CUT_SECONDS)
        log.info("ended %d WatchAlerts stream(s) whose token no longer allows them", len(refused))
        return len(refused)

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        self._remove(sub)

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, wait: float = 0.0) -> None:
        """Start the listener; wait up to `wait` seconds for its first connection."""
        self._thread.start()
        if wait:
            self.connected.wait(wait)

    def close(self) -> None:
        """Refuse new subscribers and end every stream with UNAVAILABLE, so clients resume on
        another server (or this one once restarted)."""
        with self._lock:
            self._closed = True
            subs, self._subs = self._subs, ()
        self._stopping.set()
        end = StreamEnd(grpc.StatusCode.UNAVAILABLE, SERVER_SHUTTING_DOWN, "server shutting down")
        for sub in subs:
            sub.terminate(end, SHUTDOWN_CUT_SECONDS)
        if self._thread.is_alive():
            self._thread.join(WAIT_SLICE_SECONDS * 4)
        cut_by = time.monotonic() + SHUTDOWN_CUT_SECONDS
        with self._lock:
            ending = list(self._ending)
        for sub in (*subs, *ending):
            sub.finished.wait(max(0.0, min(sub.cut_at, cut_by) - time.monotonic()))
            sub.cut()

    # -- the listener thread -------------------------------------------------------------------

    def _run(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        while not self._stopping.is_set():
            try:
                with alerts.listening(self._url) as conn:
                    if self.position is None:
                        self.update_position = alerts.latest_update_id(conn)
                        self.position = alerts.latest_alert_id(conn)
                    self.connected.set()
                    log.info("alert listener connected (after alert %d)", self.position)
                    delay = RECONNECT_MIN_SECONDS
                    self._pump(conn)
            except psycopg.Error as err:
                if self.connected.is_set():
                    log.warning("alert listener lost its connection (%s); reconnecting", err)
            except Exception:
                log.exception("alert listener failed; reconnecting")
            if self.connected.is_set():
                self.connected.clear()
                self.reconnects += 1
            self._stopping.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    def _pump(self, conn: psycopg.Connection[Any]) -> None:
        # Read first: notifications sent while we were disconnected are lost for good.
        self._catch_up(conn)
        next_poll = time.monotonic() + self._poll_interval
        while not self._stopping.is_set():
            timeout = min(WAIT_SLICE_SECONDS, max(0.0, next_poll - time.monotonic()))
            notified = alerts.wait_for_alerts(conn, timeout)
            if notified or time.monotonic() >= next_poll:
                self._catch_up(conn)
                next_poll = time.monotonic() + self._poll_interval
            self._cut_stuck()

    def _cut_stuck(self) -> None:
        now = time.monotonic()
        with self._lock:
            ending = list(self._ending)
        for sub in ending:
            if not sub.finished.is_set() and now >= sub.cut_at:
                sub.cut()
        with self._lock:
            self._ending = [s for s in self._ending if not s.finished.is_set() and now < s.cut_at]

    def _catch_up(self, conn: psycopg.Connection[Any]) -> None:
        assert self.position is not None
        while not self._stopping.is_set():
            rows = alerts.alerts_after(conn, self.position, self._page)
            if not rows:
                break
            batch = [
                LiveAlert(
                    row.alert_id,
                    row,
                    pb.WatchAlertsResponse(
                        alert=convert.alert_to_pb(row), change=pb.ALERT_CHANGE_RAISED
                    ),
                )
                for row in rows
            ]
            self._publish(batch)
            self.position = batch[-1].alert_id
            if len(rows) < self._page:
                break
        self._catch_up_updates(conn)

    def _catch_up_updates(self, conn: psycopg.Connection[Any]) -> None:
        assert self.update_position is not None
        while not self._stopping.is_set():
            updates = alerts.updates_after(conn, self.update_position, self._page)
            if not updates:
                return
            self._publish(
                [
                    LiveAlert(
                        u.alert.alert_id,
                        u.alert,
                        pb.WatchAlertsResponse(
                            alert=convert.alert_to_pb(u.alert), change=CHANGE_TO_PB[u.kind]
                        ),
                        update=True,
                    )
                    for u in updates
                ]
            )
            self.update_position = updates[-1].update_id
            if len(updates) < self._page:
                return

    def _publish(self, batch: Sequence[LiveAlert]) -> None:
        for sub in self._subs:
            if not sub.offer(batch):
                self.overflows += 1
                self._remove(sub)
                sub.terminate(
                    StreamEnd(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        STREAM_TOO_SLOW,
                        f"stream fell more than {sub.capacity} alerts behind",
                    ),
                    SLOW_CUT_SECONDS,
                )
                with self._lock:
                    self._ending.append(sub)
