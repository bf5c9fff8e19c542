-- Tickets, their event history, SLA clocks, alerts and the notification outbox.
-- Every table carries tenant_id; one default tenant until authentication lands.

CREATE TABLE tickets (
    tenant_id        text        NOT NULL DEFAULT 'default',
    ticket_id        text        NOT NULL,
    priority         text        NOT NULL,
    customer_tier    text        NOT NULL,
    status           text        NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    escalation_level integer     NOT NULL DEFAULT 0,
    policy_version   text        NOT NULL,
    -- Derived from the clocks so that the dashboard computes states in SQL, exact at query time:
    -- breached once breach_at <= now(), warning once warn_at <= now() while active.
    breach_at        timestamptz,
    warn_at          timestamptz,
    active           boolean     NOT NULL,           -- some clock is not stopped
    urgent_at        timestamptz NOT NULL,           -- earliest running due time, or 'infinity'
    PRIMARY KEY (tenant_id, ticket_id)
);
CREATE INDEX tickets_urgency ON tickets (tenant_id, urgent_at, ticket_id);

CREATE TABLE ticket_events (
    tenant_id     text        NOT NULL,
    ticket_id     text        NOT NULL,
    updated_at    timestamptz NOT NULL,
    status        text        NOT NULL,
    priority      text        NOT NULL,
    customer_tier text        NOT NULL,
    created_at    timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, ticket_id, updated_at)
);

CREATE TABLE sla_clocks (
    tenant_id      text             NOT NULL,
    ticket_id      text             NOT NULL,
    clock          text             NOT NULL CHECK (clock IN ('response', 'resolution')),
    target_s       double precision NOT NULL,
    calendar       text             NOT NULL,
    mode           text             NOT NULL CHECK (mode IN ('running', 'paused', 'stopped')),
    anchor_at      timestamptz      NOT NULL,  -- last change of mode
    anchor_elapsed double precision NOT NULL,  -- seconds counted up to anchor_at
    due_at         timestamptz,                -- when elapsed reaches the target (past or future)
    warn_at        timestamptz,                -- when elapsed reaches the first warning step
    fired_level    integer          NOT NULL DEFAULT 0,
    next_check_at  timestamptz,                -- when the next unfired step is crossed
    -- No foreign key to tickets: clocks are only ever written with their ticket, in the same
    -- transaction, and tickets are never deleted; the per-row check cost ~10% of ingest time.
    PRIMARY KEY (tenant_id, ticket_id, clock)
);
-- The evaluator's only access path: cost follows due clocks, not open tickets.
CREATE INDEX sla_clocks_due ON sla_clocks (next_check_at) WHERE next_check_at IS NOT NULL;

CREATE TABLE alerts (
    alert_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        text        NOT NULL,
    ticket_id        text        NOT NULL,
    clock            text        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('warning', 'breach')),
    escalation_level integer     NOT NULL,
    due_at           timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    priority         text        NOT NULL,
    customer_tier    text        NOT NULL,
    policy_version   text        NOT NULL,
    UNIQUE (tenant_id, ticket_id, clock, escalation_level)
);
CREATE INDEX alerts_by_ticket ON alerts (tenant_id, ticket_id);

CREATE TABLE notifications (
    notification_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text        NOT NULL,
    alert_id        bigint      NOT NULL REFERENCES alerts (alert_id),
    channel         text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    correlation_id  text,
    UNIQUE (alert_id, channel)
);
CREATE INDEX notifications_pending ON notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notifications_by_alert ON notifications (alert_id);
