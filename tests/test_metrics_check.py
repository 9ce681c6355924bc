"""`ops verify`'s metrics rows against a fake endpoint and a fake in-cluster Prometheus."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from components.observability import alerts
from components.settings.observability import ObservabilitySettings
from ops.endpoint_checks import metrics as metrics_check

DEFAULTS = ObservabilitySettings()


class _Fake(BaseHTTPRequestHandler):
    """Answers /metrics like vLLM and /api/v1/* like Prometheus, from the server's tables."""

    def log_message(self, *_: Any) -> None:
        pass

    def _json(self, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        url = urllib.parse.urlparse(self.path)
        server: _Server = self.server  # type: ignore[assignment]
        if url.path == "/metrics" and server.public_metrics:
            body = b"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 0\n"
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)
        elif url.path == "/api/v1/query":
            query = urllib.parse.parse_qs(url.query)["query"][0]
            server.queries.append(query)
            result = next((r for prefix, r in server.series.items() if query.startswith(prefix)), [])
            self._json({"status": "success", "data": {"resultType": "vector", "result": result}})
        elif url.path == "/api/v1/rules":
            rules = [{"name": n, "type": "alerting"} for n in server.rules]
            self._json({"status": "success", "data": {"groups": [{"name": "minimax-vllm.serving", "rules": rules}]}})
        else:
            self.send_response(404)
            self.end_headers()


class _Server(ThreadingHTTPServer):
    public_metrics = False
    series: dict[str, list[dict[str, Any]]]
    rules: list[str]
    queries: list[str]


@pytest.fixture
def fake() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Fake)
    server.series, server.rules, server.queries = {}, [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def one(labels: dict[str, str]) -> list[dict[str, Any]]:
    return [{"metric": labels, "value": [0, "1"]}]


def test_a_public_metrics_path_fails_and_a_closed_one_passes(fake):
    fake.public_metrics = True
    row = metrics_check.check_metrics_not_public(url(fake), 2)
    assert row.failed and "without the API key" in row.detail and "/v1/*" in row.fix
    fake.public_metrics = False
    assert metrics_check.check_metrics_not_public(url(fake), 2).status == "PASS"


def test_without_prometheus_verify_prints_the_port_forward_and_checks_nothing_else(fake):
    rows = metrics_check.run(url(fake), DEFAULTS, None, 2)
    assert [r.name for r in rows] == ["metrics not public", "cluster metrics"]
    assert rows[1].status == "INFO"
    assert "kubectl -n monitoring port-forward svc/kps-prometheus 9090:9090" in rows[1].detail
    assert fake.queries == []


def test_off_and_amp_modes_say_so(fake):
    assert metrics_check.run(url(fake), ObservabilitySettings(mode="off"), None, 2)[1].status == "SKIP"
    amp = metrics_check.run(url(fake), ObservabilitySettings(mode="amp"), "http://unused", 2)[1]
    assert amp.status == "INFO" and "svc/grafana 3000:80" in amp.detail


def test_prometheus_rows_report_what_is_scraped_and_what_is_missing(fake):
    fake.series = {
        'up{job="vllm"}': one({"pod": "vllm-0"}) * 2,
        "vllm:num_requests_running": one({"pod": "vllm-0"}),
        "kube_pod_status_ready": one({"pod": "vllm-0"}),
        "node_filesystem_avail_bytes": one({"instance": "gpu-1"}),
        "ALERTS": one({"alertname": "VllmRequestsWaiting"}),
        # no DCGM series: the exporter is not running
    }
    fake.rules = sorted(alerts.alert_names(DEFAULTS) - {"PodRestarting"})
    rows = {r.name: r for r in metrics_check.run(url(fake), DEFAULTS, url(fake), 2)}
    assert rows["scrape vLLM"].status == "PASS" and rows["scrape vLLM"].detail.startswith("2 series")
    assert rows["GPU metrics"].failed and "dcgm-exporter" in rows["GPU metrics"].fix
    assert rows["alert rules"].failed and "PodRestarting" in rows["alert rules"].detail
    assert rows["firing alerts"].detail == "VllmRequestsWaiting"
    fake.series["DCGM_FI_DEV_GPU_UTIL"] = one({"gpu": "0"})
    fake.rules = sorted(alerts.alert_names(DEFAULTS))
    assert not any(r.failed for r in metrics_check.run(url(fake), DEFAULTS, url(fake), 2))


def test_an_unreachable_prometheus_names_the_tunnel_to_open():
    rows = metrics_check.check_prometheus("http://127.0.0.1:9", DEFAULTS, 1)
    assert rows[-1].failed and metrics_check.PORT_FORWARD in rows[-1].fix
