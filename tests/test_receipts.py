"""Delivery receipts (issue 22, item 5): Twilio's signed status callbacks and the webhook sender's
signed receipts, recorded against the message the code went out in (``status PHONE`` shows them);
receipts from anyone else are refused."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import urllib.parse

import pytest
import responses
from helpers import (
    ENGINES,
    PHONE,
    TWILIO_SID,
    TWILIO_TOKEN,
    TWILIO_URL,
    WEBHOOK_SECRET,
    engine_config,
    login,
    mint_ok,
    services_of,
)
from helpers import TWILIO as TWILIO_SENDER

from app.schema import ConfigError
from app.senders.twilio import twilio_signature
from app.senders.vonage import vonage_signature

CALLBACK = "https://chat.example/receipts/twilio"
TWILIO = {**TWILIO_SENDER, "sender.twilio.status_callback_url": CALLBACK}


def test_the_signature_is_twilios_own_example():
    """The example of Twilio's security documentation, computed independently by Twilio."""
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    assert twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params) == (
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )


def twilio_receipt(client, form, token=TWILIO_TOKEN, url=CALLBACK):
    signature = twilio_signature(token, url, form)
    return client.post(
        "/receipts/twilio",
        data=urllib.parse.urlencode(form),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )


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
        ("undelivered", "twilio 30003"),
        ("sent", "twilio SM0123456789"),
    ]
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
        answer = twilio_receipt(
            client,
            form,
            **({"token": "guess"} if forgery == "another token" else {"url": "https://evil.example/receipts/twilio"}),
        )
    assert answer.status_code == 403 and answer.get_json()["error"] == "Forbidden"
    assert services.store.events(event="delivered") == []


def test_no_receipts_without_a_callback_url_or_for_another_sender(make_app, twilio_app):
    client = make_app(**{**TWILIO, "sender.twilio.status_callback_url": ""}).test_client()
    assert twilio_receipt(client, {"MessageSid": "SM1", "MessageStatus": "delivered"}).status_code == 404
    assert twilio_app.test_client().post("/receipts/webhook", data=b"{}").status_code == 404


@responses.activate
def test_the_webhook_senders_receipts_are_signed_as_its_webhooks(make_app, clock):
    """Checked against the service's clock (the test's), not the machine's."""
    from standardwebhooks.webhooks import Webhook

    responses.post("https://hooks.example.org/sms", status=204)
    app = make_app(
        **{
            "sender.name": "webhook",
            "sender.webhook.url": "https://hooks.example.org/sms",
            "sender.webhook.secret": WEBHOOK_SECRET,
        }
    )
    client, services = app.test_client(), services_of(app)
    assert login(client)["result"] == "OK"
    message_id = responses.calls[0].request.headers["webhook-id"]
    body = f'{{"message_id": "{message_id}", "status": "delivered"}}'
    now = dt.datetime.fromtimestamp(int(clock()), dt.UTC)
    # signed by the reference library, as the operator's gateway would
    signature = Webhook(WEBHOOK_SECRET).sign("rcpt_1", now, body)
    headers = {"webhook-id": "rcpt_1", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}
    assert client.post("/receipts/webhook", data=body, headers=headers).status_code == 204
    delivered = services.store.events(event="delivered")
    assert [(e.subject, e.detail) for e in delivered] == [(services.auditor.subject(PHONE), "webhook")]
    stale = {**headers, "webhook-timestamp": str(int(now.timestamp()) - 3600)}
    stale["webhook-signature"] = Webhook(WEBHOOK_SECRET).sign("rcpt_1", now - dt.timedelta(hours=1), body)
    assert client.post("/receipts/webhook", data=body, headers=stale).status_code == 403
    forged = {
        **headers,
        "webhook-signature": Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).sign("rcpt_1", now, body),
    }
    assert client.post("/receipts/webhook", data=body, headers=forged).status_code == 403
    assert len(services.store.events(event="delivered")) == 1


# -- Vonage ---------------------------------------------------------------------------------------

VONAGE_SMS = "https://rest.nexmo.com/sms/json"
VONAGE_CALLBACK = "https://chat.example/receipts/vonage"
VONAGE_SECRET = "vonage-signature-secret-1"  # noqa: S105 - a test secret
VONAGE = {
    "sender.name": "vonage",
    "sender.vonage.api_key": "vonage-key",
    "sender.vonage.api_secret": "vonage-api-secret",
    "sender.vonage.from": "Chat",
    "sender.vonage.status_callback_url": VONAGE_CALLBACK,
    "sender.vonage.signature_secret": VONAGE_SECRET,
    "sender.vonage.signature_method": "sha256",
}


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("md5hash", "6af838ef94998832dbfc29020b564830"),
        ("sha1", "3e19a4e6880fdc2c1426bfd0587c98b9532f0210"),
        ("sha256", "a321e824b9b816be7c3f28859a31749a098713d39f613c80d455bbaffae1cd24"),
    ],
)
def test_the_signature_is_vonages_own_example(method, expected):
    """The vectors of Vonage's own client library's tests, computed by Vonage's code."""
    assert vonage_signature("secret", method, {"a": "1", "b": "2", "timestamp": "1461605396"}) == expected


def vonage_sent(mock: responses.RequestsMock) -> None:
    """The SMS API stand-in: each message gets its own id."""
    count = iter(range(1, 1000))

    def answer(request):
        return 200, {}, json.dumps({"messages": [{"status": "0", "message-id": f"msg-{next(count)}"}]})

    mock.add_callback(responses.POST, VONAGE_SMS, callback=answer)


def dlr(message_id: str, status: str, to: str, now: int, *, secret: str = VONAGE_SECRET, **changes) -> dict:
    """A delivery receipt as Vonage's SMS API posts it, signed as Vonage signs."""
    fields = {
        "msisdn": to,
        "to": "Chat",
        "network-code": "310260",
        "messageId": message_id,
        "price": "0.00750000",
        "status": status,
        "scts": "2612071200",
        "err-code": "0" if status == "delivered" else "1",
        "api-key": "vonage-key",
        "message-timestamp": "2026-12-07 12:00:00",
        "timestamp": str(now),
        "nonce": "a1b2c3",
    }
    fields["sig"] = vonage_signature(secret, "sha256", fields)
    return {**fields, **changes}


@pytest.fixture(name="vonage_app")
def _vonage_app(make_app):
    with responses.RequestsMock() as mock:
        vonage_sent(mock)
        app = make_app(**VONAGE)
        assert login(app.test_client())["result"] == "OK"
        assert json.loads(mock.calls[0].request.body)["callback"] == VONAGE_CALLBACK  # asked to report here
        yield app


@pytest.mark.parametrize("encoding", ["form", "json"])
def test_a_vonage_receipt_is_recorded_for_whom_the_code_went_to(vonage_app, clock, encoding):
    client, services = vonage_app.test_client(), services_of(vonage_app)

    def post(fields):
        if encoding == "json":
            return client.post("/receipts/vonage", json=fields)
        return client.post("/receipts/vonage", data=fields)

    assert post(dlr("msg-1", "accepted", PHONE, int(clock()))).status_code == 204  # on the way
    assert services.store.events(event="delivered") == []
    assert post(dlr("msg-1", "delivered", PHONE, int(clock()))).status_code == 204
    delivered = services.store.events(event="delivered")
    assert [(e.subject, e.detail) for e in delivered] == [(services.auditor.subject(PHONE), "vonage 0")]
    metrics = client.get("/metrics").data.decode()
    assert 'messenger_deliveries_total{outcome="delivered",sender="vonage"} 1.0' in metrics


@pytest.mark.parametrize("forgery", ["no sig", "another secret", "changed status", "stale", "another account"])
def test_a_vonage_receipt_from_anyone_else_is_refused(vonage_app, clock, forgery):
    client, services = vonage_app.test_client(), services_of(vonage_app)
    now = int(clock())
    fields = {
        "no sig": lambda: {k: v for k, v in dlr("msg-1", "delivered", PHONE, now).items() if k != "sig"},
        "another secret": lambda: dlr("msg-1", "delivered", PHONE, now, secret="guess"),
        "changed status": lambda: {**dlr("msg-1", "failed", PHONE, now), "status": "delivered"},
        # signed, but ten minutes old by the service's own clock (not the machine's)
        "stale": lambda: dlr("msg-1", "delivered", PHONE, now - 600),
        "another account": lambda: dlr("msg-1", "delivered", PHONE, now, **{"api-key": "other"}),
    }[forgery]()
    if forgery == "another account":  # signed with the other account's key in it
        fields["sig"] = vonage_signature(VONAGE_SECRET, "sha256", {k: v for k, v in fields.items() if k != "sig"})
    answer = client.post("/receipts/vonage", data=fields)
    assert answer.status_code == 403 and answer.get_json()["error"] == "Forbidden"
    assert services.store.events(event="delivered") == []


def test_a_vonage_receipt_that_is_not_a_form_or_json_is_refused(vonage_app):
    client = vonage_app.test_client()
    for body in (b"[" * 20000, b"not json", b"[1, 2]"):  # deep nesting: the parser's recursion, not a 500
        answer = client.post("/receipts/vonage", data=body, content_type="application/json")
        assert answer.status_code == 403, body[:20]


def test_vonage_receipts_need_a_signature_secret(make_app):
    with pytest.raises(ConfigError, match="sender.vonage.signature_secret"):
        make_app(**{**VONAGE, "sender.vonage.signature_secret": ""})
    client = make_app(**{**VONAGE, "sender.vonage.status_callback_url": "", "sender.vonage.signature_secret": ""})
    assert client.test_client().post("/receipts/vonage", data={"status": "delivered"}).status_code == 404


# -- receipts feed the automatic quarantine -------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_undelivered_messages_quarantine_their_prefix(make_app, clock, engine):
    """A prefix whose messages mostly never arrive is quarantined by the receipts that say so (its
    proved share alone would not); a receipt naming another number than the message went to counts
    for nothing."""
    config = {
        **VONAGE,
        "limits.sends_per_ip_per_hour": 0,
        "limits.global_sends_per_hour": 0,
        "limits.quarantine_min_sends": 4,
        "limits.quarantine_min_proved_percent": 10,
        "limits.quarantine_max_undelivered_percent": 50,
    }
    with engine_config(engine, "undelivered") as store, responses.RequestsMock() as mock:
        vonage_sent(mock)
        mint_ok(mock)
        app = make_app(**config, **store)
        client, services = app.test_client(), services_of(app)
        phones = [f"1201555{n:04d}" for n in range(4)]  # their messages: msg-1 .. msg-4
        for n, phone in enumerate(phones):
            assert login(client, phone=phone, ip=f"10.0.{n}.1")["result"] == "OK"
            if n == 0:  # one of them proves its code: 1 of 4 proved, 25 %
                code = re.search(r"\b\d{6}\b", json.loads(mock.calls[0].request.body)["text"]).group()
                assert login(client, phone=phone, otp=code, ip="10.0.0.1")["result"] == "OK"
        now = int(clock())
        # a receipt for msg-2 that names another prefix's number: not counted against either
        assert client.post("/receipts/vonage", data=dlr("msg-2", "failed", "12025550000", now)).status_code == 204
        assert client.post("/receipts/vonage", data=dlr("msg-2", "failed", phones[1], now)).status_code == 204
        assert login(client, phone="12015559998", ip="10.1.0.1")["result"] == "OK"  # 5 sent, 1 undelivered
        assert client.post("/receipts/vonage", data=dlr("msg-3", "expired", phones[2], now)).status_code == 204
        assert services.store.events(event="quarantined") == []  # 2 of 5 undelivered
        assert client.post("/receipts/vonage", data=dlr("msg-4", "rejected", phones[3], now)).status_code == 204
        # 3 of 5 undelivered: quarantined by that receipt
        assert [e.detail for e in services.store.events(event="quarantined")] == ["120155 undelivered"]
        assert login(client, phone="12015559999", ip="10.1.0.2")["error"] == "BADPHONE"
        assert login(client, phone="12025559999", ip="10.1.0.3")["result"] == "OK"  # another prefix
        assert len([call for call in mock.calls if call.request.url == VONAGE_SMS]) == 6
        metrics = client.get("/metrics").data.decode()
        assert 'messenger_quarantines_total{reason="undelivered"} 1.0' in metrics
        listed = app.test_cli_runner().invoke(args=["quarantine"]).output
        assert re.search(r"120155 +1h 00m +5 +1 +3", listed), listed
        services.store.close()
