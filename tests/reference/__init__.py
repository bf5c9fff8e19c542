"""An independent reference model of slawatch's SLA metrics, for tests.

Written from DESIGN §5 and §8 and the agreed metric rule (metric_semantics.md) only, never from
`internal/`: tests compare the production engine and the running server with it, so the two must
not share a mistake. It favours the plainest correct computation over speed.
"""
