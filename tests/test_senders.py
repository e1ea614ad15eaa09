"""Senders: each provider's documented request, failures as SENDFAIL, real SMTP and webhook deliveries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import responses
from helpers import APPID, PHONE, TWILIO, TWILIO_SID, TWILIO_TOKEN, TWILIO_URL, WEBHOOK_SECRET, login, post
from responses import matchers

from app.config import ConfigError
from app.senders import Message, SendError

VONAGE_URL = "https://rest.nexmo.com/sms/json"
VONAGE = {
    "sender.name": "vonage",
    "sender.vonage.api_key": "vkey",
    "sender.vonage.api_secret": "vonage-secret-99",
    "sender.vonage.from": "Messenger",
}


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@responses.activate
def test_twilio_request_matches_its_api(make_app):
    app = make_app(**TWILIO)
    call = responses.post(
        TWILIO_URL,
        status=201,
        json={"sid": "SM123", "status": "queued"},
        match=[
            matchers.header_matcher({"Authorization": basic(TWILIO_SID, TWILIO_TOKEN)}),
            matchers.urlencoded_params_matcher({"To": "+" + PHONE, "From": "+15005550006", "Body": _Any()}),
            matchers.request_kwargs_matcher({"timeout": (3.05, 10.0)}),
        ],
    )
    assert login(app.test_client())["result"] == "OK"
    assert call.call_count == 1
    body = dict(x.split("=", 1) for x in responses.calls[0].request.body.split("&"))
    assert "is+your+Mesibo+Messenger+verification+code" in body["Body"]


class _Any(str):
    """Matches any string value in a matcher's expected dict."""

    def __eq__(self, other):
        return isinstance(other, str)

    __hash__ = str.__hash__


@responses.activate
def test_twilio_with_a_messaging_service_and_an_api_key(make_app):
    app = make_app(
        **{
            **TWILIO,
            "sender.twilio.from_number": "",
            "sender.twilio.messaging_service_sid": "MG42",
            "sender.twilio.api_key_sid": "SK99",
        }
    )
    call = responses.post(
        TWILIO_URL,
        status=201,
        json={"sid": "SM9"},
        match=[
            matchers.header_matcher({"Authorization": basic("SK99", TWILIO_TOKEN)}),
            matchers.urlencoded_params_matcher({"To": "+" + PHONE, "MessagingServiceSid": "MG42", "Body": _Any()}),
        ],
    )
    assert login(app.test_client())["result"] == "OK" and call.call_count == 1


@responses.activate
def test_twilio_error_answers_sendfail_and_logs_the_provider_code(make_app, caplog):
    app = make_app(**TWILIO)
    responses.post(
        TWILIO_URL, status=400, json={"code": 21211, "message": "The 'To' number is not valid.", "status": 400}
    )
    answer = login(app.test_client())
    assert answer["result"] == "FAIL" and answer["error"] == "SENDFAIL"
    logged = caplog.text
    assert "21211" in logged
    assert TWILIO_TOKEN not in logged
    assert login(app.test_client())["error"] == "SENDFAIL"  # no cooldown after a failed send: tried again


def test_twilio_needs_its_keys(make_app):
    config = {
        "sender.name": "twilio",
        "sender.twilio.account_sid": TWILIO_SID,
        "sender.twilio.auth_token": "",
        "sender.twilio.from_number": "+1",
    }
    with pytest.raises(ConfigError, match="sender.twilio.auth_token"):
        make_app(**config)


@responses.activate
def test_vonage_request_matches_its_api(make_app):
    app = make_app(**VONAGE)
    call = responses.post(
        VONAGE_URL,
        json={"message-count": "1", "messages": [{"to": PHONE, "message-id": "0A0000000123ABCD1", "status": "0"}]},
        match=[
            matchers.json_params_matcher(
                {"api_key": "vkey", "api_secret": "vonage-secret-99", "from": "Messenger", "to": PHONE, "text": _Any()}
            ),
        ],
    )
    assert login(app.test_client())["result"] == "OK" and call.call_count == 1


@responses.activate
def test_vonage_refusal_inside_a_200_answer_is_sendfail(make_app, caplog):
    app = make_app(**VONAGE)
    responses.post(
        VONAGE_URL, json={"message-count": "1", "messages": [{"status": "4", "error-text": "Bad Credentials"}]}
    )
    assert login(app.test_client())["error"] == "SENDFAIL"
    assert "provider error 4" in caplog.text
    assert "vonage-secret-99" not in caplog.text


def _webhook_app(make_app, url):
    return make_app(**{"sender.name": "webhook", "sender.webhook.url": url, "sender.webhook.secret": WEBHOOK_SECRET})


def _expected_signature(headers, body):
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@responses.activate
def test_webhook_is_signed_as_standard_webhooks_say(make_app, clock):
    app = _webhook_app(make_app, "https://hooks.example.org/sms")
    responses.post("https://hooks.example.org/sms", status=204)
    assert login(app.test_client())["result"] == "OK"
    request = responses.calls[0].request
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["webhook-id"].startswith("msg_")
    assert int(headers["webhook-timestamp"]) == int(clock())  # the service's clock, as everywhere
    assert headers["webhook-signature"] == _expected_signature(headers, request.body)
    payload = json.loads(request.body)
    assert payload["type"] == "login.code"
    assert payload["data"]["address"] == PHONE
    assert payload["data"]["text"].startswith(payload["data"]["code"])
    assert payload["data"]["expires_at"] == int(clock()) + 300


@responses.activate
def test_the_reference_standard_webhooks_library_verifies_our_signature(make_app, clock):
    from standardwebhooks.webhooks import Webhook

    clock.advance(time.time() - clock())  # the library checks the timestamp against the real time
    app = _webhook_app(make_app, "https://hooks.example.org/sms")
    responses.post("https://hooks.example.org/sms", status=204)
    assert login(app.test_client())["result"] == "OK"
    request = responses.calls[0].request
    verified = Webhook(WEBHOOK_SECRET).verify(request.body, dict(request.headers))
    assert verified["type"] == "login.code" and verified["data"]["address"] == PHONE


@pytest.mark.parametrize("secret", ["a-plain-secret-string", "whsec_not*base64", "whsec_" + "c2hvcnQ="])
def test_a_secret_the_libraries_cannot_use_stops_start_up(make_app, secret):
    config = {"sender.name": "webhook", "sender.webhook.url": "https://h.example", "sender.webhook.secret": secret}
    with pytest.raises(ConfigError, match="sender.webhook.secret"):
        make_app(**config)


@responses.activate
def test_webhook_error_status_is_sendfail(make_app):
    app = _webhook_app(make_app, "https://hooks.example.org/sms")
    responses.post("https://hooks.example.org/sms", status=502)
    assert login(app.test_client())["error"] == "SENDFAIL"


class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        good = hmac.compare_digest(headers.get("webhook-signature", ""), _expected_signature(headers, body))
        self.received.append((good, json.loads(body)))
        self.send_response(200 if good else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(name="receiver")
def _receiver():
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/deliver", _Receiver.received
    server.shutdown()
    server.server_close()


def test_a_code_reaches_a_real_webhook_receiver_and_logs_in(make_app, receiver, mesibo_api):
    mesibo_api.add_passthru("http://127.0.0.1")
    mesibo_api.post("https://mesibo.test/backend/", json={"result": True, "user": {"token": "wh-token"}})
    url, received = receiver
    app = _webhook_app(make_app, url)
    client = app.test_client()
    assert login(client)["result"] == "OK"
    [(signature_ok, payload)] = received
    assert signature_ok
    answer = post(client, {"op": "login", "phone": PHONE, "appid": APPID, "otp": payload["data"]["code"]})
    assert answer["token"] == "wh-token"


def test_a_read_timeout_is_not_retried(make_app):
    """The provider may already have the message: one attempt only, or the user gets two SMS."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted, done = [], threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hang"
    app = make_app(
        **{
            "sender.name": "webhook",
            "sender.webhook.url": url,
            "sender.webhook.secret": WEBHOOK_SECRET,
            "sender.timeout": 0.5,
        }
    )
    assert login(app.test_client())["error"] == "SENDFAIL"
    done.set()
    thread.join(timeout=5)
    listener.close()
    for conn in accepted:
        conn.close()
    assert len(accepted) == 1


def test_a_custom_sender_is_loaded_from_configuration(make_app):
    import plugins

    plugins.SENT.clear()
    app = make_app(**{"sender.name": "plugins:ListSender", "sender.list.prefix": "p1"})
    assert login(app.test_client())["result"] == "OK"
    [(prefix, message)] = plugins.SENT
    assert prefix == "p1" and isinstance(message, Message) and message.address == PHONE


def test_a_custom_sender_that_cannot_be_imported_stops_start_up(make_app):
    with pytest.raises(ConfigError, match="sender.name"):
        make_app(**{"sender.name": "no_such_module:Sender"})


def test_send_error_carries_the_provider_code():
    error = SendError("nope", provider_code="21211")
    assert error.provider_code == "21211" and str(error) == "nope"
