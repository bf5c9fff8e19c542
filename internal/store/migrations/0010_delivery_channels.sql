-- One row per notification channel, shared by every worker (DESIGN §11): its circuit breaker and
-- its send pacing. Rows are created on a channel's first delivery. A worker changes a row only
-- inside the transaction that holds it FOR UPDATE; the decisions are internal/worker/breaker.py's.
CREATE TABLE delivery_channels (
    channel              text PRIMARY KEY,
    state                text        NOT NULL DEFAULT 'closed'
                                     CHECK (state IN ('closed', 'open', 'half_open')),
    -- Transient failures in a row (5xx, timeouts, connection errors); a success resets it.
    consecutive_failures integer     NOT NULL DEFAULT 0,
    opened_at            timestamptz,            -- when the current outage opened the breaker
    retry_at             timestamptz,            -- open: the first instant a probe may go
    cool_down_seconds    double precision NOT NULL DEFAULT 0,  -- of the current open period
    probe_id             bigint,                 -- half_open: the notification being the probe
    probe_until          timestamptz,            -- its lease: past it another worker may probe
    -- Pacing: no send is granted before next_send_at (one per send interval, Retry-After
    -- pushes it further); waiting deliveries are handed slots up to reserved_until, one
    -- interval apart, so that a backlog wakes one message per slot instead of all at once.
    next_send_at         timestamptz,            -- NULL: nothing sent yet
    reserved_until       timestamptz,
    -- The channel's last transient failure, kept after it recovers: a message sent late says
    -- why when the channel failed after its alert was written.
    last_failure_at      timestamptz,
    last_failure         text
);

-- Attempts that raised inside slawatch (not an answer from the channel): capped, since retrying
-- a bug until the delivery deadline only fills the log.
ALTER TABLE notifications ADD COLUMN crashes integer NOT NULL DEFAULT 0;

-- A delivery sends the oldest due row of its channel (by alert): the backlog drains in order.
CREATE INDEX notifications_pending_by_channel ON notifications (channel, alert_id)
    WHERE state = 'pending';
