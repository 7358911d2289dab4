"""``make chaos``: the platform under repeated faults, compared with an undisturbed run.

A fixed, seeded workload (watch batches over HTTP, a FIT upload, LEVER telemetry over MQTT,
pain reports; a team of runners and a clinic of LEVER units) runs twice on a stack of its
own (Kafka, PostgreSQL and Mosquitto on free loopback ports under ``var/chaos/`` — never
the shared development stack): once undisturbed, once while faults are injected at seeded
random points of the workload. Each run has its own database, topic prefix, MQTT topic
root and services. At the end the two databases are compared table by table.

Modules: :mod:`.stack` (the private stack), :mod:`.services` (the kneeload services of a
run, supervised), :mod:`.faults` (schedule and injection, recovery measured),
:mod:`.workload` (the seeded scenario through the real gateways, devices retrying),
:mod:`.compare` (table-by-table comparison), :mod:`.report` (results and README figures).
"""
