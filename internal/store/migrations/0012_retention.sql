-- Retention (SLAWATCH_RETENTION_DAYS): the worker looks for tickets that are done (resolved or
-- closed, no clock running) and whose latest event is older than the cutoff, oldest first. This
-- partial index holds only done tickets, so a retention batch reads its candidates in order
-- instead of scanning every ticket. updated_at becomes an indexed column of tickets: an event
-- that changes nothing else indexed (a repeated status) is no longer a HOT update; status
-- changes, the usual traffic, never were (tickets_breach covers status).
CREATE INDEX tickets_retention ON tickets (updated_at)
    WHERE NOT active AND status IN ('resolved', 'closed');
