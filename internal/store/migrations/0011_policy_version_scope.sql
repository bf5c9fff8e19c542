-- A policy version belongs to the config that produced it: the file-wide config of every tenant
-- (tenant_id '', a name no tenant can have) or, later, one tenant's own file. Two tenants' files
-- may hash alike, and each must still be claimed and recomputed for its own tickets.
ALTER TABLE policy_versions ADD COLUMN tenant_id text NOT NULL DEFAULT '';
ALTER TABLE policy_versions DROP CONSTRAINT policy_versions_pkey;
ALTER TABLE policy_versions ADD PRIMARY KEY (tenant_id, version);
