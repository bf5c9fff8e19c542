-- A clock is named by its definition (internal/sla/clock_definition.py), no longer one of two
-- fixed kinds: response and resolution are the defaults, and a config may define others. The
-- name stays a non-empty short word (alerts.clock never had a list of its own).
ALTER TABLE sla_clocks DROP CONSTRAINT sla_clocks_clock_check;
ALTER TABLE sla_clocks ADD CONSTRAINT sla_clocks_clock_check
    CHECK (clock <> '' AND length(clock) <= 64);
