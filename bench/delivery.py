"""Delivery benchmark (issue 15): draining a backlog of notifications after a Slack outage.

5,000 alerts with their notification rows, split over two webhooks, are written and enqueued
while the Slack stand-in (tests/support/fake_slack.py) answers 500: the breakers open and the
rows wait. The outage ends; measured from then: the time until every row is sent, the highest
rate of successful posts to one webhook over any 10 s and the shortest gap between two (the
pacing's ceiling is one per SLAWATCH_DELIVERY_SEND_INTERVAL), whether each webhook received its
alerts oldest first, and duplicates.

At Slack's real rate (one message per second per webhook) a backlog of 2,500 per webhook takes
2,500 s by design; the benchmark runs the real worker with a 10 ms interval so that it measures
the machinery (breaker, slot hand-out, claims) rather than the wait. `--interval 1 --backlog 60`
measures the real rate on a small backlog.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.common import ROOT, scratch_database
from internal.config.settings import Settings
from internal.embedded.redis import EmbeddedRedis
from internal.store.migrate import migrate
from internal.worker import actors

sys.path.insert(0, str(ROOT / "tests"))
from support.fake_slack import FakeSlack  # the tests' Slack stand-in

HOOKS = {"team": "/hooks/team", "lead": "/hooks/lead"}
ENV_OF = {"team": "SLACK_WEBHOOK_URL", "lead": "SLACK_WEBHOOK_URL_LEAD"}

# Alerts of distinct tickets, one notification row each, alternating between the channels.
_BACKLOG = """
WITH a AS (
    INSERT INTO alerts (tenant_id, ticket_id, clock, kind, escalation_level, due_at, priority,
                        customer_tier, policy_version, clock_mode)
    SELECT 'default', 'BL-' || g, 'response', 'breach', 3, now(), 'high', 'gold', 'bench',
           'running'
    FROM generate_series(1, %(count)s) AS g
    RETURNING alert_id
)
INSERT INTO notifications (tenant_id, alert_id, channel)
SELECT 'default', alert_id, CASE WHEN alert_id %% 2 = 0 THEN 'team' ELSE 'lead' END FROM a
RETURNING notification_id
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backlog", type=int, default=5_000)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds of 500s")
    parser.add_argument("--interval", default="0.01", help="SLAWATCH_DELIVERY_SEND_INTERVAL")
    parser.add_argument("--threads", type=int, default=8)
    opts = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database() as db,
        FakeSlack() as slack,
    ):
        config_path = Path(tmp) / "sla_config.yaml"
        config_path.write_text((ROOT / "sla_config.yaml").read_text())
        migrate(db)
        redis_server = EmbeddedRedis(ROOT / ".data" / f"bench-redis-{os.getpid()}").start()
        env = dict(
            os.environ,
            DATABASE_URL=db,
            REDIS_URL=redis_server.url,
            SLA_CONFIG_PATH=str(config_path),
            SLAWATCH_LOG_LEVEL="WARNING",
            SLAWATCH_WORKER_METRICS_PORT="0",
            SLAWATCH_SCHEDULER_METRICS_PORT="0",
            SLAWATCH_SLACK_TIMEOUT_SECONDS="5",
            SLAWATCH_DELIVERY_SEND_INTERVAL=opts.interval,
            SLAWATCH_DELIVERY_BACKOFF_MAX="2s",
            SLAWATCH_BREAKER_COOL_DOWN="1s",
        )
        env.update({ENV_OF[c]: slack.url(path) for c, path in HOOKS.items()})
        for path in HOOKS.values():
            slack.outage(path, opts.outage)
        outage_ends = time.monotonic() + opts.outage
        worker = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "cmd/slawatch-worker/main.py"),
                "--threads",
                str(opts.threads),
            ],
            env=env,
            start_new_session=True,
        )
        scheduler = subprocess.Popen(
            [sys.executable, str(ROOT / "cmd/slawatch-scheduler/main.py")],
            env=env,
            start_new_session=True,
        )
        try:
            with psycopg.connect(db) as conn:
                ids = [int(r[0]) for r in conn.execute(_BACKLOG, {"count": opts.backlog})]
            declared = actors.declare(Settings.from_env(env))
            for notification_id in ids:  # as the evaluator would have, during the outage
                declared.deliver.send(notification_id)
            while True:
                with psycopg.connect(db) as conn:
                    pending = conn.execute(
                        "SELECT count(*) FROM notifications WHERE state = 'pending'"
                    ).fetchone()
                if pending is not None and pending[0] == 0:
                    break
                time.sleep(0.2)
            done = time.monotonic()
            with psycopg.connect(db) as conn:
                states = dict(conn.execute("SELECT state, count(*) FROM notifications GROUP BY 1"))
        finally:
            for proc in (scheduler, worker):
                os.killpg(proc.pid, 15)
                proc.wait(30)
            redis_server.stop()

        failed_posts = [r for r in slack.requests() if r.status != 200]
        print(
            f"backlog of {opts.backlog:,} notifications on {len(HOOKS)} webhooks after a"
            f" {opts.outage:g} s outage ({len(failed_posts)} posts answered 500 during it),"
            " send interval"
            f" {opts.interval} s: drained in {done - outage_ends:.1f} s after Slack recovered"
            f" (rows: {states}, at {datetime.now(UTC):%H:%M} UTC)"
        )
        for channel, path in HOOKS.items():
            ok = [r for r in slack.requests(path) if r.status == 200]
            ids_in_order = [_alert_id(r.body) for r in ok]
            repeats = sum(n - 1 for n in Counter(ids_in_order).values())
            arrivals = [r.at for r in ok]
            peak = _peak(arrivals, 10.0)
            gap = min((b - a for a, b in itertools.pairwise(arrivals)), default=float("nan"))
            print(
                f"  {channel}: {len(ok):,} posted, max rate {peak / 10:.1f}/s over any 10 s"
                f" (ceiling {1 / float(opts.interval):.0f}/s), shortest gap {gap * 1000:.1f} ms,"
                f" arrived oldest first: {ids_in_order == sorted(ids_in_order)}"
                f" ({_swaps(ids_in_order)} neighbours swapped), repeats: {repeats}"
            )


def _alert_id(body: dict[str, object]) -> int:
    context = body["blocks"][-1]["elements"][0]["text"]  # type: ignore[index]
    return int(str(context).split()[1])  # "alert <id> · clock ..."


def _swaps(ids: list[int]) -> int:
    """Posts that arrived before an older one: sends granted 10 ms apart are in flight together,
    and may reach the stand-in out of order; at one per second they do not overlap."""
    return sum(1 for a, b in itertools.pairwise(ids) if b < a)


def _peak(arrivals: list[float], window: float) -> int:
    """The most arrivals within any `window` seconds (a window of one second would count two
    posts granted exactly one second apart, whose arrivals jitter by a millisecond)."""
    peak, start = 0, 0
    for end, t in enumerate(arrivals):
        while t - arrivals[start] >= window:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


if __name__ == "__main__":
    main()
