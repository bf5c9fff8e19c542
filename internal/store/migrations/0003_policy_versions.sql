-- Every SLA config version any process has loaded. The first process to insert a version is the
-- one that recomputes the open tickets' deadlines for it; the others see the row and do nothing.
CREATE TABLE policy_versions (
    version       text        PRIMARY KEY,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    recomputed_at timestamptz,
    tickets       integer
);
