-- The correlation id (gRPC x-request-id) of the last ingest call that changed each ticket, so that
-- an alert raised later on the ticket, its notification rows, the worker's log lines and the Slack
-- message can all be traced back to that call.
ALTER TABLE tickets ADD COLUMN correlation_id text;
