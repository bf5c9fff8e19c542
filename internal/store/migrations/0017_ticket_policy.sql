-- The name of the policy that applies to a ticket (the first of the ordered policies whose match
-- holds; "priority/tier" for the map form). Tickets stored before get '' until rewritten.
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS policy text NOT NULL DEFAULT '';
