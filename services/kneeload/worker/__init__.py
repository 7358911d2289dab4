"""Stream processing: the Faust worker and, separately, its plain logic.

* :mod:`kneeload.worker.timeutil` — RFC 3339 → epoch ms, local days per time zone.
* :mod:`kneeload.worker.athlete` — per-athlete logic (enrichment join with a BWS
  timeline, sessionizer, day-closer with an event-time watermark, pain responses,
  correlations, alerts). Plain Python: the tests call it without Kafka.
* :mod:`kneeload.worker.fleet` — per-unit logic (online/offline, in use, minutes per day).
* :mod:`kneeload.worker.app` — the Faust wiring (agents, tables, timers).

Every number comes from :mod:`kneeload.core`; this package only routes, groups,
orders and deduplicates.
"""
