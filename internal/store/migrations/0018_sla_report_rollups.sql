-- GetSlaReport's rollups (DESIGN §10; internal/sla/report.py says what an instance adds and
-- internal/store/report_rollups.py how the counts are kept): SLA instances counted by metric,
-- priority, customer tier, the UTC block of their decided instant (kept at four sizes: 15 min,
-- 1 h, 6 h, 1 day), outcome, and whether they have stopped; with the histogram of the elapsed
-- times of those that stopped, one column per bin (h0 .. h79), so that a report sums columns.
DO $$
DECLARE
    bins text := '';
BEGIN
    FOR k IN 0..79 LOOP
        bins := bins || format(', h%s int4 NOT NULL DEFAULT 0', k);
    END LOOP;
    EXECUTE format($t$
        CREATE TABLE sla_report_rollups (
            tenant_id text NOT NULL,
            span_s int4 NOT NULL,
            block int8 NOT NULL,
            metric text NOT NULL,
            priority text NOT NULL,
            customer_tier text NOT NULL,
            breached boolean NOT NULL,
            stopped boolean NOT NULL,
            instances int8 NOT NULL DEFAULT 0 %s,
            PRIMARY KEY (tenant_id, span_s, block, metric, priority, customer_tier, breached,
                         stopped)
        )$t$, bins);
END $$;

-- Every instance the clocks already stored hold, as ingest would have added it (the bin of an
-- elapsed time by the formula of internal/sla/report.py's elapsed_bin).
DO $$
DECLARE
    cols text := '';
    sums text := '';
BEGIN
    FOR k IN 0..79 LOOP
        cols := cols || format(', h%s', k);
        sums := sums || format(', count(*) FILTER (WHERE d.stopped AND d.bin = %s)', k);
    END LOOP;
    EXECUTE format($t$
        INSERT INTO sla_report_rollups (tenant_id, span_s, block, metric, priority,
                                        customer_tier, breached, stopped, instances %s)
        SELECT c.tenant_id, s.span, floor(extract(epoch FROM d.decided_at) / s.span)::int8,
               c.clock, t.priority, t.customer_tier, d.breached, d.stopped, count(*) %s
        FROM sla_clocks c
        JOIN tickets t USING (tenant_id, ticket_id)
        CROSS JOIN LATERAL (
            SELECT c.due_at IS NOT NULL AND (c.mode <> 'stopped' OR c.due_at <= c.anchor_at)
                       AS breached,
                   c.mode = 'stopped' AS stopped,
                   CASE WHEN c.anchor_elapsed < 30 THEN 0
                        ELSE least(79, 1 + floor(log(2.0, (c.anchor_elapsed / 30)::numeric)
                                                 * 4)::int) END AS bin
        ) AS b
        CROSS JOIN LATERAL (
            SELECT b.breached, b.stopped, b.bin,
                   CASE WHEN b.breached THEN c.due_at
                        WHEN b.stopped THEN c.anchor_at END AS decided_at
        ) AS d
        CROSS JOIN (VALUES (900), (3600), (21600), (86400)) AS s(span)
        WHERE d.decided_at IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8$t$, cols, sums);
END $$;
