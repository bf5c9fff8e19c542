-- Events carry an activity (a reply, a note) and the fields policies will match on. All of them
-- are optional: NULL means the event did not carry it, and rows written before this migration
-- read as field updates that carried none. Adding nullable columns rewrites no stored row.
ALTER TABLE ticket_events
    ADD COLUMN activity   text CHECK (activity IN ('agent_reply', 'customer_reply', 'internal_note')),
    ADD COLUMN group_name text,     -- "group" is a reserved word
    ADD COLUMN assignee   text,
    ADD COLUMN tags       text[],
    ADD COLUMN attributes jsonb CHECK (jsonb_typeof(attributes) = 'object');

-- An event with an activity may leave the status unchanged (NULL): its status is then the one of
-- the ticket's event before it in event time. An event without one still names its status.
-- NOT VALID: every stored row has a status (the column was NOT NULL), so the check needs no scan
-- of the history under this migration's lock; it holds for every row written from now on.
ALTER TABLE ticket_events ALTER COLUMN status DROP NOT NULL;
ALTER TABLE ticket_events ADD CONSTRAINT ticket_events_status_or_activity
    CHECK (status IS NOT NULL OR activity IS NOT NULL) NOT VALID;
