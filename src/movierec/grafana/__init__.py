"""Grafana dashboards of movierec, written as code.

``python -m movierec.grafana`` writes every dashboard into ``grafana/dashboards/`` (the
folder the provisioning's dashboard provider loads); ``--check`` only compares. The JSON
follows Grafana 11.6's dashboard schema (``schemaVersion`` 41); the tests validate every
file against that schema (``grafana/schema/``) and run every panel's query against a
real Prometheus.
"""

GRAFANA_VERSION = "11.6"
SCHEMA_VERSION = 41
# the data source every panel queries; grafana/provisioning/datasources/ gives it this uid
DATASOURCE = {"type": "prometheus", "uid": "movierec-prometheus"}
