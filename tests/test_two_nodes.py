"""Two nodes (two gunicorn instances) sharing one PostgreSQL database behave as one service."""

from __future__ import annotations

import re

import pytest
import requests
from helpers import APP_TOKEN, OTP_SECRET, postgres_schema, postgres_url, together

from tools.processes import FakeMesibo, Service

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not postgres_url(), reason="TEST_DATABASE_URL is not set: the two-node test needs PostgreSQL"),
]
PHONE = "18005551234"


@pytest.fixture(name="database_url")
def _database_url():
    with postgres_schema("nodes") as url:
        yield url


@pytest.fixture(name="nodes")
def _nodes(tmp_path, database_url):
    fake = FakeMesibo(APP_TOKEN)
    env = {
        "MESIBO_APP_TOKEN": APP_TOKEN,
        "MESIBO_API_URL": fake.url,
        "OTP_SECRET": OTP_SECRET,
        "DATABASE_URL": database_url,
        "MESSENGER_SENDER_NAME": "log",
        "MESSENGER_LIMITS_RESEND_COOLDOWN_SECONDS": "0",
        "MESSENGER_LIMITS_SENDS_PER_IP_PER_HOUR": "1000",
    }
    node_a = Service(tmp_path, env, workers=2)
    node_b = Service(tmp_path, env, workers=2)
    yield node_a, node_b, fake
    node_a.stop()
    node_b.stop()
    fake.stop()


def codes_in(*nodes):
    return [code for node in nodes for code in re.findall(r"login code for \d+: (\d+)", node.log())]


def test_a_code_asked_on_one_node_is_proved_on_the_other(nodes):
    node_a, node_b, fake = nodes
    login = {"op": "login", "phone": PHONE, "appid": "a"}
    assert requests.post(node_a.url, json=login, timeout=10).json()["result"] == "OK"
    [code] = codes_in(node_a)
    answer = requests.post(node_b.url, json={**login, "otp": code}, timeout=10).json()
    assert answer["result"] == "OK" and answer["token"] == fake.stats()["tokens"][-1]["token"]


def test_one_code_mints_one_token_across_both_nodes(nodes):
    node_a, node_b, fake = nodes
    login = {"op": "login", "phone": PHONE, "appid": "a"}
    requests.post(node_b.url, json=login, timeout=10)
    [code] = codes_in(node_b)
    urls = iter([node_a.url, node_b.url] * 10)
    targets = [next(urls) for _ in range(20)]
    answers = together(20, lambda: requests.post(targets.pop(), json={**login, "otp": code}, timeout=30).json())
    assert sum(a["result"] == "OK" for a in answers) == 1
    assert fake.stats()["useradd"] == 1


def test_the_per_phone_cap_holds_across_both_nodes(nodes):
    node_a, node_b, _ = nodes
    login = {"op": "login", "phone": PHONE, "appid": "a"}
    targets = [node_a.url, node_b.url] * 25
    answers = together(50, lambda: requests.post(targets.pop(), json=login, timeout=30).json())
    assert sum(a["result"] == "OK" for a in answers) == 5
    assert {a["error"] for a in answers if a["result"] == "FAIL"} == {"RATELIMIT"}
    assert len(codes_in(node_a, node_b)) == 5
    assert all("app.requests" in node.log() for node in (node_a, node_b))  # both nodes really served
