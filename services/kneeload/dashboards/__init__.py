"""Grafana dashboards as code: builders (grafana-foundation-sdk), provisioning, push."""
