-- When a process last took on the recompute of this version. Kept apart from first_seen_at
-- because a version can be taken on again: when a process died half-way, and when the config
-- returns to it after another version (a rollback), since the open tickets then carry the other
-- version's deadlines. NULL when a process stopping half-way handed the job back, so that the
-- next process to see the version takes it on at once.
ALTER TABLE policy_versions ADD COLUMN claimed_at timestamptz DEFAULT now();
UPDATE policy_versions SET claimed_at = first_seen_at;
