"""kneeload: streaming telemetry for managing knee load in runners with patellofemoral pain.

Subpackages:

- ``kneeload.core``        pure domain science (PFJ estimate, ACWR, pain, correlation, alerts)
- ``kneeload.settings``    the one settings object (``KNEELOAD_*`` environment)
- ``kneeload.topics``      the Kafka topic catalogue
- ``kneeload.contracts``   event schemas (schemas/*.json) and validation
- ``kneeload.stack``       the local stack (Kafka, PostgreSQL, Mosquitto) for development and CI
- one subpackage per service (ingest, bridge, registry, worker, storage, notify, dashboards, demo)
"""

__version__ = "0.1.0"
