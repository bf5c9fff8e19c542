-- The dashboard's metrics filter (GetDashboardRequest.metrics) keeps the tickets that have a
-- clock of one of the metrics. The page walks the urgency index and probes each ticket's clocks
-- by the primary key, which costs the page size divided by the share of tickets that have the
-- metric: fine for metrics every ticket has (started at creation), but a metric few tickets have
-- (a target only some policies set, or a name the config no longer has) would walk most tickets.
-- With this index PostgreSQL can instead read that metric's clock rows, fetch their tickets and
-- sort them, and takes whichever it estimates cheaper. Two columns of few distinct values: the
-- index deduplicates to a few MB per million clock rows, and its price is one entry per clock
-- row written (about 1.5 µs of PostgreSQL time each, measured; README, "Dashboard").
CREATE INDEX sla_clocks_by_metric ON sla_clocks (tenant_id, clock);
