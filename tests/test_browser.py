"""A real browser (Debian's Chromium, headless, driven by Playwright) on a page served from another
origin does what the mesibo web messenger's login does - step 1, step 2, token - with each kind of
body a page sends, straight at the service and behind the shipped nginx, and reads the envelope,
not a network error, when the service is down behind nginx."""

from __future__ import annotations

import http.server
import re
import threading
import time
from pathlib import Path

import pytest
from helpers import APP_TOKEN, OTP_SECRET, launch_chromium

from tools.processes import FakeMesibo, Nginx, Service, free_port, nginx_installed

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed (.ci/run installs Debian's)"),
]

PAGE = b"""<!doctype html><title>login</title><script>
async function call(url, body, kind) {
  const text = JSON.stringify(body);
  const init = {method: "POST", body: text};
  if (kind === "json") init.headers = {"Content-Type": "application/json", "X-Request-ID": "page-req-1"};
  if (kind === "text") init.headers = {"Content-Type": "text/plain"};
  if (kind === "none") init.body = new Blob([text]);  // a body with no type: no Content-Type at all
  const answer = await fetch(url, init);
  return {status: answer.status, body: await answer.json(), requestId: answer.headers.get("X-Request-ID")};
}
</script>"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):
        pass


@pytest.fixture(name="page_origin", scope="module")
def _page_origin():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(name="browser", scope="module")
def _browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = launch_chromium(driver)
        yield browser
        browser.close()


@pytest.fixture(name="backend")
def _backend(tmp_path):
    fake = FakeMesibo(APP_TOKEN)
    service = Service(
        tmp_path,
        {
            "MESIBO_APP_TOKEN": APP_TOKEN,
            "MESIBO_API_URL": fake.url,
            "OTP_SECRET": OTP_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path}/browser.db",
            "MESSENGER_SENDER_NAME": "log",
            "MESSENGER_SERVER_TRUSTED_PROXIES": "1",
            "MESSENGER_LIMITS_RESEND_COOLDOWN_SECONDS": "0",
        },
    )
    yield service, fake
    service.stop()
    fake.stop()


def login_in_browser(browser, page_origin, api_url, service, kind, phone):
    page = browser.new_page()
    try:
        page.goto(page_origin + "/")
        ask = {"op": "login", "phone": phone, "appid": "com.mesibo.web"}
        first = page.evaluate("([url, body, kind]) => call(url, body, kind)", [api_url, ask, kind])
        assert first["body"]["result"] == "OK", first
        code = re.findall(rf"login code for {phone}: (\d+)", service.log())[-1]
        second = page.evaluate("([url, body, kind]) => call(url, body, kind)", [api_url, {**ask, "otp": code}, kind])
        return first, second
    finally:
        page.close()


@pytest.mark.parametrize("kind", ["json", "text", "none"])
def test_a_page_on_another_origin_logs_in_straight_at_the_service(browser, page_origin, backend, kind):
    service, fake = backend
    phone = {"json": "12015550101", "text": "12015550102", "none": "12015550103"}[kind]
    _, second = login_in_browser(browser, page_origin, service.url, service, kind, phone)
    assert second["body"]["result"] == "OK" and second["body"]["token"] == fake.stats()["tokens"][-1]["token"]
    # the page can read the request id (exposed); a page may also send its own (allowed)
    assert second["requestId"] == "page-req-1" if kind == "json" else re.fullmatch(r"[0-9a-f]{32}", second["requestId"])


@pytest.mark.skipif(not nginx_installed(), reason="nginx is not installed")
@pytest.mark.parametrize("kind", ["json", "text", "none"])
def test_a_page_on_another_origin_logs_in_behind_nginx(browser, page_origin, backend, tmp_path, kind):
    service, fake = backend
    nginx = Nginx(tmp_path, service.port)
    try:
        phone = {"json": "12015550111", "text": "12015550112", "none": "12015550113"}[kind]
        _, second = login_in_browser(browser, page_origin, f"http://127.0.0.1:{nginx.port}/", service, kind, phone)
        assert second["body"]["result"] == "OK" and second["body"]["token"] == fake.stats()["tokens"][-1]["token"]
    finally:
        nginx.stop()


@pytest.mark.skipif(not nginx_installed(), reason="nginx is not installed")
@pytest.mark.parametrize("kind", ["json", "text"])
def test_with_the_service_down_the_page_reads_the_envelope(browser, page_origin, backend, tmp_path, kind):
    service, _ = backend
    nginx = Nginx(tmp_path, service.port)
    service.stop()
    page = browser.new_page()
    try:
        page.goto(page_origin + "/")
        answer = page.evaluate(
            "([url, body, kind]) => call(url, body, kind)",
            [
                f"http://127.0.0.1:{nginx.port}/",
                {"op": "login", "phone": "12015550121", "appid": "com.mesibo.web"},
                kind,
            ],
        )
    finally:
        page.close()
        nginx.stop()
    assert answer["body"]["result"] == "FAIL" and answer["body"]["error"] == "INTERNAL"


def test_a_page_on_an_origin_not_allowed_makes_no_code_be_sent(browser, page_origin, tmp_path):
    """With a list of origins, a page elsewhere posting text/plain (no preflight) is answered
    BADORIGIN before any work: no code is sent - it only could not read the answer before."""
    fake = FakeMesibo(APP_TOKEN)
    service = Service(
        tmp_path,
        {
            "MESIBO_APP_TOKEN": APP_TOKEN,
            "MESIBO_API_URL": fake.url,
            "OTP_SECRET": OTP_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path}/origin.db",
            "MESSENGER_SENDER_NAME": "log",
            "MESSENGER_SERVER_CORS_ORIGINS": "https://web.example.org",
        },
    )
    page = browser.new_page()
    try:
        page.goto(page_origin + "/")
        outcome = page.evaluate(
            "([url, body]) => call(url, body, 'text').then(() => 'read', error => 'not readable')",
            [service.url, {"op": "login", "phone": "12015550131", "appid": "com.mesibo.web"}],
        )
        time.sleep(0.3)
        log = service.log()
    finally:
        page.close()
        service.stop()
        fake.stop()
    assert outcome == "not readable"  # the browser keeps the answer from the page, as before
    assert "login code for 12015550131" not in log and "error=BADORIGIN" in log  # and no code was sent
