-- Alerts remember whether their clock was still running when the evaluator wrote them, and since
-- when it had been in that mode. An alert on a clock that stopped (or paused) past a step before
-- the evaluator saw it has no due time; its message says when the clock stopped instead.
ALTER TABLE alerts
    ADD COLUMN clock_mode       text CHECK (clock_mode IN ('running', 'paused', 'stopped')),
    ADD COLUMN clock_mode_since timestamptz;

-- The attempt in flight: set by the claim, cleared when its result is recorded, except after a
-- timeout. A row claimed with it still set had a worker die while its POST was in flight (its
-- lease ran out) or a send that timed out, so Slack may already have the message: the next
-- attempt says it may be a repeat.
ALTER TABLE notifications ADD COLUMN sending_at timestamptz;
