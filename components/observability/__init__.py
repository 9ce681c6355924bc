"""Metrics, dashboards and alerts: kube-prometheus-stack and dcgm-exporter values, the alert
rules, the Grafana dashboards, dcgm-exporter's field list and the component that installs them.

May import the rooms below it (facts, settings, aws, kubernetes, serving, weights).
"""
