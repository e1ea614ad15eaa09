"""The shipped alert rules and dashboard: valid, unit-tested with promtool, and about metrics the
service really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from helpers import API_URL, APPID, ask_code, login, services_of

MONITORING = Path(__file__).resolve().parent.parent / "deploy" / "monitoring"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (.ci/run installs prometheus)")


@needs_promtool
def test_the_alert_rules_are_valid():
    done = subprocess.run([PROMTOOL, "check", "rules", "alerts.yml"], cwd=MONITORING, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
@pytest.mark.slow  # promtool
def test_the_alert_rules_pass_their_unit_tests():
    done = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts.test.yml"], cwd=MONITORING, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def exported_names(make_app, mesibo_api) -> set[str]:
    """Every metric name a real scrape shows after traffic that touches every metric."""
    app = make_app(**{"limits.resend_cooldown_seconds": 60})
    client, outbox = app.test_client(), services_of(app).sender
    mesibo_api.post(API_URL, json={"result": True, "user": {"token": "t"}})
    login(client, otp=ask_code(client, outbox))  # a code sent, a mesibo call
    login(client)
    login(client)  # the cooldown refuses
    outbox.fail_next = 1
    login(client, phone="447911123456")  # a failed send
    mesibo_api.replace("POST", API_URL, body=requests.ConnectionError("down"))
    login(client, phone="447911123457")
    failed = login(client, phone="447911123457", otp=outbox.last_code("447911123457"), appid=APPID)
    assert failed["error"] == "BADAPP", failed  # a mesibo failure
    client.get("/readyz")
    text = client.get("/metrics").get_data(as_text=True)
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_dashboard_and_alerts_use_only_metrics_the_service_exports(make_app, mesibo_api):
    exported = exported_names(make_app, mesibo_api)
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    expressions.append((MONITORING / "alerts.yml").read_text())
    used = {name for expr in expressions for name in re.findall(r"\bmessenger_[a-z_]+", expr)}
    assert len(used) >= 6 and used <= exported, used - exported
    assert {"Logins by result", "Refusals by limit", "Codes sent by outcome", "mesibo latency", "Readiness"} <= {
        panel["title"] for panel in dashboard["panels"]
    }


PROMETHEUS = shutil.which("prometheus")


class Gateway:
    """A webhook SMS gateway that refuses messages to +44 and takes the others (keeping their codes)."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from threading import Thread

        self.codes: dict[str, str] = {}
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                message = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))["data"]
                to = str(message["address"]).lstrip("+")
                refused = to.startswith("44")
                if not refused:
                    gateway.codes[to] = str(message["code"])
                self.send_response(503 if refused else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (.ci/run installs it)")
def test_a_real_prometheus_scraping_the_service_fires_the_alerts_it_is_provoked_to(tmp_path):
    """A real Prometheus scrapes the real service (gunicorn, two workers) every second with the shipped
    rules - their ``for:`` shortened to 0s, the only change, so the test need not wait minutes. Every
    labelled series exists from the first scrape; then SMS fail (the gateway refuses +44), mesibo
    refuses the app token, wrong answers lock a phone out, the service stops: each rule that watches
    one of these fires. Every dashboard query runs against what was scraped."""
    import time

    from helpers import APP_TOKEN, OTP_SECRET, WEBHOOK_SECRET

    from tools.processes import FakeMesibo, Service, free_port, stop, wait_for_port

    fake, gateway = FakeMesibo(APP_TOKEN), Gateway()
    service = Service(
        tmp_path,
        {
            "MESIBO_APP_TOKEN": APP_TOKEN,
            "MESIBO_API_URL": fake.url,
            "OTP_SECRET": OTP_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path}/prometheus.db",
            "MESSENGER_SENDER_NAME": "webhook",
            "MESSENGER_SENDER_WEBHOOK_URL": gateway.url,
            "MESSENGER_SENDER_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "MESSENGER_LIMITS_RESEND_COOLDOWN_SECONDS": "0",
            "MESSENGER_LIMITS_CHECKS_PER_IP_PER_10MIN": "1000",
        },
    )
    rules = re.sub(r"for: \d+[smh]", "for: 0s", (MONITORING / "alerts.yml").read_text())
    (tmp_path / "rules.yml").write_text(rules)
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [{tmp_path}/rules.yml]
scrape_configs:
  - job_name: messenger-backend
    static_configs: [{{targets: ["127.0.0.1:{service.port}"]}}]
""")
    with open(tmp_path / "prometheus.log", "wb") as log:
        prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path}/prometheus.yml",
                f"--storage.tsdb.path={tmp_path}/tsdb",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    api = f"http://127.0.0.1:{port}/api/v1"

    def query(expr: str) -> list:
        answer = requests.get(f"{api}/query", params={"query": expr}, timeout=5).json()
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def firing(names: set[str], within: float = 30) -> set[str]:
        deadline = time.monotonic() + within
        while True:
            alerts = requests.get(f"{api}/alerts", timeout=5).json()["data"]["alerts"]
            seen = {alert["labels"]["alertname"] for alert in alerts if alert["state"] == "firing"}
            if names <= seen or time.monotonic() >= deadline:
                return seen
            time.sleep(0.5)

    def post(body: dict) -> dict:
        return requests.post(service.url, json={"appid": APPID, **body}, timeout=10).json()

    try:
        wait_for_port(port, prometheus)
        deadline = time.monotonic() + 20
        while requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=5).status_code != 200:  # its TSDB
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-2000:]
            time.sleep(0.2)
        while not query('up{job="messenger-backend"} == 1') and time.monotonic() < deadline:
            time.sleep(0.5)
        # before any request: the labelled series are there, at 0, so the first burst shows in rate()
        for series in (
            'messenger_codes_sent_total{outcome="error"}',
            "messenger_mesibo_app_refusals_total",
            'messenger_limit_refusals_total{kind="fail-ip"}',
            "messenger_quarantines_total",
        ):
            found = query(series)
            assert found and all(float(sample["value"][1]) == 0 for sample in found), (series, found)
        time.sleep(2.5)  # two evaluations after the first scrape: nothing wrong yet, nothing firing
        assert firing(set(), within=0) == set()

        assert post({"op": "login", "phone": "447911123456"})["error"] == "SENDFAIL"
        fake.control(fail="authfail")
        phone = "18005559999"
        assert post({"op": "login", "phone": phone})["result"] == "OK"
        assert post({"op": "login", "phone": phone, "otp": gateway.codes[phone]})["error"] == "BADAPP"
        # wrong answers for one phone from one address: after 10 (two codes' worth) its lock-out
        # refuses, here 60 times - the rule's 0.05 a second over its 15-minute window
        for n in range(70):
            if n % 5 == 0:
                post({"op": "login", "phone": phone})
            post({"op": "login", "phone": phone, "otp": f"{n:06d}"})
        expected = {
            "MessengerCodesNotDelivered",
            "MessengerMesiboRefusesAppToken",
            "MessengerMesiboFailing",
            "MessengerLockoutsSpiking",
        }
        assert firing(expected) >= expected

        # every dashboard query is valid PromQL on what was scraped, and finds series
        dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                assert query(target["expr"].replace("$__rate_interval", "1m")), (panel["title"], target["expr"])

        service.stop()
        assert "MessengerDown" in firing({"MessengerDown"})
    finally:
        stop(prometheus)
        service.stop()
        fake.stop()
        gateway.stop()
