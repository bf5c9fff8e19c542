"""An independent reference model of slawatch's SLA metrics, for tests.

Written from DESIGN §5 and §8 and the rule agreed to make §8 precise (restated step by step in
`metric_model.replay`) only, never from `internal/`: tests compare the production engine and the
running server with it, so the two must not share a mistake. It favours the plainest correct
computation over speed.

- `calendar_model`: the 24x7 and business calendars (working time, the instant a duration is
  reached);
- `metric_model`: events, metric definitions, the ladder, and `clocks()`, every cycle of every
  metric as of `now`;
- `histories`: random ticket histories (hypothesis and seeded) for the comparisons.
"""
