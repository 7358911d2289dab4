"""The local stack: Apache Kafka (KRaft), PostgreSQL 15 and Mosquitto, owned by the project.

Everything lives under ``var/`` (git-ignored). ``make up`` / ``kneeload stack up`` starts what is
not running and waits on real health checks: Kafka answers a metadata request, ``pg_isready``
succeeds, and an MQTT message makes a round trip. Starting twice is harmless. A port taken by
some other program stops start-up with a message naming the port and the setting that moves it.

This is development and CI tooling; production uses infra/compose.yaml.
"""
