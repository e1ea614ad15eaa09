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
