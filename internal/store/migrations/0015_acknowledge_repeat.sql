-- Acknowledge and repeat (DESIGN §11). An alert may be acknowledged once (by a token's name, with
-- an optional note); a ladder step with repeat_every/repeat_max notifies its unacknowledged
-- alerts again. The repeat settings are copied onto the alert when it is written, so that a
-- later config change neither starts nor stops the repeats of alerts already raised.
ALTER TABLE alerts
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN acknowledged_by text,
    ADD COLUMN ack_note        text,
    ADD COLUMN repeat          integer NOT NULL DEFAULT 0,  -- repeats notified so far
    ADD COLUMN repeat_every_s  double precision,            -- NULL: the step does not repeat
    ADD COLUMN repeat_max      integer,
    ADD COLUMN next_repeat_at  timestamptz;                 -- NULL: no repeat to come
-- The repeat pass reads due repeats only (cost follows due work, as sla_clocks_due).
CREATE INDEX alerts_repeat_due ON alerts (next_repeat_at) WHERE next_repeat_at IS NOT NULL;

-- A repeat is another notification of the same alert to the same channels: one row per
-- (alert, channel, repeat).
ALTER TABLE notifications ADD COLUMN repeat integer NOT NULL DEFAULT 0;
ALTER TABLE notifications DROP CONSTRAINT notifications_alert_id_channel_key;
ALTER TABLE notifications ADD CONSTRAINT notifications_alert_channel_repeat_key
    UNIQUE (alert_id, channel, repeat);

-- What changed about an alert after it was written (a repeat, an acknowledgement), in commit
-- order like alerts themselves (written under the same advisory lock), so that every server's
-- alert feed streams the change once to its WatchAlerts subscribers.
CREATE TABLE alert_updates (
    update_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  text        NOT NULL,
    alert_id   bigint      NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    kind       text        NOT NULL CHECK (kind IN ('repeat', 'acknowledged')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_updates_by_alert ON alert_updates (alert_id);
