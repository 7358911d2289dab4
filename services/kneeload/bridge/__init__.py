"""MQTT bridge (``kneeload mqtt-bridge``): LEVER units' MQTT topics -> Kafka, and the
broker-side device authentication files (:mod:`kneeload.bridge.mqttauth`)."""
