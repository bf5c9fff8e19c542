-- Quiet hours of a channel (DESIGN §11): a notification held while its channel is quiet waits
-- with next_attempt_at = quiet_until, the end of the quiet period; no attempt is counted. The
-- column stays set after the release: the delivery deadline of a held row counts from it (the
-- time held does not count), and its message says it was held.
ALTER TABLE notifications ADD COLUMN quiet_until timestamptz;

-- The rows a channel holds (quiet_until in the future), for a reloaded config's new quiet hours
-- and for the metrics; rows never held are not in it.
CREATE INDEX notifications_quiet ON notifications (channel, quiet_until)
    WHERE state = 'pending' AND quiet_until IS NOT NULL;
