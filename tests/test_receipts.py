"""Delivery receipts (issue 22, item 5): Twilio's signed status callbacks and the webhook sender's
signed receipts, recorded against the message the code went out in (``status PHONE`` shows them);
receipts from anyone else are refused."""

from __future__ import annotations

import base64
import datetime as dt
import time
import urllib.parse

import pytest
import responses
from helpers import PHONE, TWILIO_SID, TWILIO_TOKEN, TWILIO_URL, WEBHOOK_SECRET, login, services_of
from helpers import TWILIO as TWILIO_SENDER

from app.senders.twilio import twilio_signature

CALLBACK = "https://chat.example/receipts/twilio"
TWILIO = {**TWILIO_SENDER, "sender.twilio.status_callback_url": CALLBACK}


def test_the_signature_is_twilios_own_example():
    """The example of Twilio's security documentation, computed independently by Twilio."""
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
    assert twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params) == (
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


def twilio_receipt(client, form, token=TWILIO_TOKEN, url=CALLBACK):
    signature = twilio_signature(token, url, form)
    return client.post("/receipts/twilio", data=urllib.parse.urlencode(form),
                       content_type="application/x-www-form-urlencoded", headers={"X-Twilio-Signature": signature})


@pytest.fixture(name="twilio_app")
def _twilio_app(make_app):
    with responses.RequestsMock() as mock:
        mock.post(TWILIO_URL, json={"sid": "SM0123456789"}, status=201)
        app = make_app(**TWILIO)
        assert login(app.test_client())["result"] == "OK"
        sent = urllib.parse.parse_qs(mock.calls[0].request.body)
        assert sent["StatusCallback"] == [CALLBACK]  # each message asks Twilio to report here
        yield app


def test_a_twilio_receipt_is_recorded_for_whom_the_code_went_to(twilio_app):
    client, services = twilio_app.test_client(), services_of(twilio_app)
    on_the_way = {"MessageSid": "SM0123456789", "MessageStatus": "sent", "AccountSid": TWILIO_SID}
    assert twilio_receipt(client, on_the_way).status_code == 204  # nothing to record yet
    final = {**on_the_way, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert twilio_receipt(client, final).status_code == 204
    events = services.store.events(subject=services.auditor.subject(PHONE))
    assert [(e.event, e.detail) for e in events][:2] == [
        ("undelivered", "twilio 30003"), ("sent", "twilio SM0123456789")]
    shown = twilio_app.test_cli_runner().invoke(args=["status", PHONE]).output
    assert "undelivered  twilio 30003" in shown
    metrics = client.get("/metrics").data.decode()
    assert 'messenger_deliveries_total{outcome="undelivered",sender="twilio"} 1.0' in metrics


@pytest.mark.parametrize("forgery", ["no signature", "another token", "another url", "changed status"])
def test_a_receipt_from_anyone_else_is_refused(twilio_app, forgery):
    client, services = twilio_app.test_client(), services_of(twilio_app)
    form = {"MessageSid": "SM0123456789", "MessageStatus": "delivered"}
    if forgery == "no signature":
        answer = client.post("/receipts/twilio", data=form)
    elif forgery == "changed status":
        signature = twilio_signature(TWILIO_TOKEN, CALLBACK, {**form, "MessageStatus": "failed"})
        answer = client.post("/receipts/twilio", data=form, headers={"X-Twilio-Signature": signature})
    else:
        answer = twilio_receipt(client, form, **({"token": "guess"} if forgery == "another token" else
                                                 {"url": "https://evil.example/receipts/twilio"}))
    assert answer.status_code == 403 and answer.get_json()["error"] == "Forbidden"
    assert services.store.events(event="delivered") == []


def test_no_receipts_without_a_callback_url_or_for_another_sender(make_app, twilio_app):
    client = make_app(**{**TWILIO, "sender.twilio.status_callback_url": ""}).test_client()
    assert twilio_receipt(client, {"MessageSid": "SM1", "MessageStatus": "delivered"}).status_code == 404
    assert twilio_app.test_client().post("/receipts/webhook", data=b"{}").status_code == 404


@responses.activate
def test_the_webhook_senders_receipts_are_signed_as_its_webhooks(make_app, clock):
    from standardwebhooks.webhooks import Webhook

    clock.advance(time.time() - clock())  # receipts are checked against the real time
    responses.post("https://hooks.example.org/sms", status=204)
    app = make_app(**{"sender.name": "webhook", "sender.webhook.url": "https://hooks.example.org/sms",
                      "sender.webhook.secret": WEBHOOK_SECRET})
    client, services = app.test_client(), services_of(app)
    assert login(client)["result"] == "OK"
    message_id = responses.calls[0].request.headers["webhook-id"]
    body = f'{{"message_id": "{message_id}", "status": "delivered"}}'
    now = dt.datetime.now(dt.UTC)
    # signed by the reference library, as the operator's gateway would
    signature = Webhook(WEBHOOK_SECRET).sign("rcpt_1", now, body)
    headers = {"webhook-id": "rcpt_1", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}
    assert client.post("/receipts/webhook", data=body, headers=headers).status_code == 204
    delivered = services.store.events(event="delivered")
    assert [(e.subject, e.detail) for e in delivered] == [(services.auditor.subject(PHONE), "webhook")]
    stale = {**headers, "webhook-timestamp": str(int(now.timestamp()) - 3600)}
    stale["webhook-signature"] = Webhook(WEBHOOK_SECRET).sign("rcpt_1", now - dt.timedelta(hours=1), body)
    assert client.post("/receipts/webhook", data=body, headers=stale).status_code == 403
    forged = {**headers, "webhook-signature": Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).sign(
        "rcpt_1", now, body)}
    assert client.post("/receipts/webhook", data=body, headers=forged).status_code == 403
    assert len(services.store.events(event="delivered")) == 1
