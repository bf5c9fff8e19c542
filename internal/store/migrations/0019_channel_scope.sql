-- Per-tenant SLA configs (DESIGN §9): two tenants' files may both name a channel `team`, with
-- different webhooks. A channel's breaker and pacing are kept per config: `scope` is '' for the
-- file-wide config (and a directory's default.yaml), else the tenant whose own file names the
-- channel. Existing rows are the file-wide config's.
ALTER TABLE delivery_channels ADD COLUMN scope text NOT NULL DEFAULT '';
ALTER TABLE delivery_channels DROP CONSTRAINT delivery_channels_pkey;
ALTER TABLE delivery_channels ADD PRIMARY KEY (scope, channel);
