-- Every cycle of every metric is its own SLA instance (DESIGN §8): a clock row per ticket, metric
-- and cycle, and alerts once per ticket, metric, cycle and level. Rows written before this
-- migration are cycle 1 of their metric, which is what part one's clocks are. Adding a column
-- with a constant default rewrites no stored row; the new keys are built once.
ALTER TABLE sla_clocks ADD COLUMN cycle integer NOT NULL DEFAULT 1 CHECK (cycle >= 1);
ALTER TABLE sla_clocks DROP CONSTRAINT sla_clocks_pkey;
ALTER TABLE sla_clocks ADD PRIMARY KEY (tenant_id, ticket_id, clock, cycle);

ALTER TABLE alerts ADD COLUMN cycle integer NOT NULL DEFAULT 1 CHECK (cycle >= 1);
ALTER TABLE alerts DROP CONSTRAINT alerts_tenant_id_ticket_id_clock_escalation_level_key;
ALTER TABLE alerts ADD CONSTRAINT alerts_once_per_cycle_and_level
    UNIQUE (tenant_id, ticket_id, clock, cycle, escalation_level);
