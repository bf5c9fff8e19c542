-- What GetPolicy and ListPolicyVersions show of each version (DESIGN §9): the file's text, as
-- the first process to claim the version read it (NULL for versions recorded before this
-- column), and when the version last came into force: its first claim, or the claim that
-- returned the config to it after another version (a rollback).
ALTER TABLE policy_versions ADD COLUMN text text;
ALTER TABLE policy_versions ADD COLUMN applied_at timestamptz;
UPDATE policy_versions SET applied_at = first_seen_at;
ALTER TABLE policy_versions ALTER COLUMN applied_at SET DEFAULT now();
ALTER TABLE policy_versions ALTER COLUMN applied_at SET NOT NULL;
-- ListPolicyVersions pages newest first within a scope.
CREATE INDEX policy_versions_history
    ON policy_versions (tenant_id, first_seen_at DESC, version DESC);
