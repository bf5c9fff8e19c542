"""A program that uses only the client distribution (run by test_client_distribution with the
python of a virtualenv that has nothing but `pip install ./pkg`).

    python client_session.py HOST:PORT

It ingests three tickets, reads one back and walks the dashboard, printing one JSON line for
each; then it watches alerts, printing `{"ready": true}` once the stream is up and
`{"alert": id}` for each alert, until a line `stop` arrives on stdin; last it prints
`{"reconnects": n}`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from slawatch import SlawatchClient
from slawatch.v1 import ticket_service_pb2 as pb


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def stamp(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def main(target: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    events = [
        pb.TicketEvent(
            ticket_id=f"CLIENT-{i}",
            priority="high",
            customer_tier="gold" if i else "silver",
            status=pb.TICKET_STATUS_OPEN,
            created_at=stamp(now - timedelta(minutes=10 * i)),
            updated_at=stamp(now - timedelta(minutes=10 * i)),
        )
        for i in range(3)
    ]
    with SlawatchClient(target) as client:
        reply = client.ingest(events)
        say(ingested=[r.ticket_id for r in reply])
        say(ticket=client.get_ticket("CLIENT-0").ticket.customer_tier)
        say(dashboard=[t.ticket_id for t in client.iter_dashboard(page_size=2)])

        watch = client.watch_alerts(max_backoff=0.5)

        def read() -> None:
            for alert in watch:
                say(alert=alert.alert_id)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while watch.last_alert_id is None and time.monotonic() < deadline:
            time.sleep(0.05)
        say(ready=watch.last_alert_id is not None)
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        watch.close()
        reader.join(10)
        say(reconnects=watch.reconnects)


if __name__ == "__main__":
    main(sys.argv[1])
