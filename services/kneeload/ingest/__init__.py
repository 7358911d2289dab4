"""Ingest: the HTTP gateway (``kneeload ingest``), FIT/TCX decoding and ``kneeload import-fit``.

Devices never talk to Kafka. The gateway validates every record against the event
schemas (:mod:`kneeload.contracts`), attaches registry facts (team, clinic, athlete on a
unit), drops duplicates by record id, publishes with ``acks=all`` and replies only after
Kafka acknowledged, with a result per record. Rejections go to the dead-letter topic.
"""
