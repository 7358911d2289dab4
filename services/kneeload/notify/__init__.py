"""Alert delivery: ``kneeload notify`` (webhook, Slack, email; exactly once per channel),
acknowledgements (``POST /alerts/{id}/ack``, ``kneeload alerts ack``)."""
