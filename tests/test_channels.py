"""Channels and failover (issue 25, items 1 and 2): SMS, WhatsApp and a voice call through Twilio and
Vonage, each checked against exactly what the provider's API received (``responses`` stands in for
their clouds), and the next sender of a route tried only after a definite refusal."""

from __future__ import annotations

import base64
import json
import urllib.parse

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers import PHONE, TWILIO, TWILIO_SID, login, services_of
from urllib3.exceptions import MaxRetryError, NewConnectionError

from app.schema import ConfigError

TWILIO_API = f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}"
VONAGE_SMS, VONAGE_MESSAGES, VONAGE_CALLS = (
    "https://rest.nexmo.com/sms/json",
    "https://api.nexmo.com/v1/messages",
    "https://api.nexmo.com/v1/calls",
)
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
CONFIG = {
    "sender.channels": ["sms", "whatsapp", "voice"],
    **{key: value for key, value in TWILIO.items() if key != "sender.name"},
    "sender.vonage.api_key": "vkey",
    "sender.vonage.api_secret": "vonage-secret-99",
    "sender.vonage.from": "Messenger",
    "sender.vonage.whatsapp_from": "14155550100",
    "sender.vonage.voice_from": "14155550101",
    "sender.vonage.application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
    "sender.vonage.private_key": PEM,
    "limits.resend_cooldown_seconds": 0,
}


def form_of(call) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(call.request.body))


@pytest.fixture(name="mock")
def _mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def test_twilio_whatsapp_sends_the_message_or_the_approved_template(make_app, mock):
    mock.post(f"{TWILIO_API}/Messages.json", json={"sid": "SM1"}, status=201)
    app = make_app(**CONFIG, **{"sender.name": "twilio"})
    client = app.test_client()
    assert login(client, channel="whatsapp")["result"] == "OK"
    sent = form_of(mock.calls[-1])
    assert sent["To"] == f"whatsapp:+{PHONE}" and sent["From"] == "whatsapp:+15005550006"
    assert "is your Mesibo Messenger verification code" in sent["Body"]
    app = make_app(**CONFIG, **{"sender.name": "twilio", "sender.twilio.whatsapp_content_sid": "HX0123"})
    login(app.test_client(), channel="whatsapp", phone="12015550188")
    sent = form_of(mock.calls[-1])
    assert "Body" not in sent and sent["ContentSid"] == "HX0123"
    assert json.loads(sent["ContentVariables"])["1"].isdigit()


def test_twilio_voice_calls_and_reads_the_code_digit_by_digit_in_the_users_language(make_app, mock):
    mock.post(f"{TWILIO_API}/Calls.json", json={"sid": "CA1"}, status=201)
    app = make_app(**CONFIG, **{"sender.name": "twilio", "messages.templates": {"de": "Ihr Code lautet {code}."}})
    client = app.test_client()
    assert login(client, channel="voice", lang="de")["result"] == "OK"
    sent = form_of(mock.calls[-1])
    assert sent["To"] == f"+{PHONE}" and sent["From"] == "+15005550006"
    twiml = sent["Twiml"]
    assert twiml.startswith('<Response><Say language="de-DE">Ihr Code lautet ') and twiml.count("<Say") == 2
    spoken = twiml.split("Ihr Code lautet ")[1].split(".")[0]
    assert len(spoken.split(", ")) == 6 and all(d.isdigit() and len(d) == 1 for d in spoken.split(", "))


def test_vonage_whatsapp_and_voice(make_app, mock):
    mock.post(VONAGE_MESSAGES, json={"message_uuid": "aaaa-1"}, status=202)
    mock.post(VONAGE_CALLS, json={"uuid": "call-1", "status": "started"}, status=201)
    app = make_app(**CONFIG, **{"sender.name": "vonage"})
    client = app.test_client()
    assert login(client, channel="whatsapp")["result"] == "OK"
    message = mock.calls[-1].request
    assert message.headers["Authorization"] == "Basic " + base64.b64encode(b"vkey:vonage-secret-99").decode()
    body = json.loads(message.body)
    assert {k: body[k] for k in ("message_type", "channel", "to", "from")} == {
        "message_type": "text",
        "channel": "whatsapp",
        "to": PHONE,
        "from": "14155550100",
    }
    assert login(client, channel="voice")["result"] == "OK"
    call = mock.calls[-1].request
    claims = jwt.decode(call.headers["Authorization"].removeprefix("Bearer "), KEY.public_key(), algorithms=["RS256"])
    assert claims["application_id"] == CONFIG["sender.vonage.application_id"]
    body = json.loads(call.body)
    assert body["to"] == [{"type": "phone", "number": PHONE}] and body["from"]["number"] == "14155550101"
    assert body["ncco"][0]["action"] == "talk" and body["ncco"][0]["language"] == "en-US"


@pytest.mark.parametrize(("channels", "asked"), [(["sms", "voice"], "telegram"), (["sms"], "voice"), (["sms"], ["x"])])
def test_a_channel_not_offered_is_badchannel_before_anything_is_counted(make_app, channels, asked):
    app = make_app(**{"sender.channels": channels})
    client, services = app.test_client(), services_of(app)
    assert login(client, channel=asked)["error"] == "BADCHANNEL"
    assert services.sender.outbox == [] and services.store.counters_of(*services.limits.keys_of_subject(PHONE)) == []


def test_didnt_get_it_another_channel_counts_as_a_send(make_app):
    app = make_app(
        **{
            "sender.channels": ["sms", "voice"],
            "limits.resend_cooldown_seconds": 0,
            "limits.sends_per_phone_per_hour": 2,
        }
    )
    client, outbox = app.test_client(), services_of(app).sender
    assert login(client)["result"] == "OK" and outbox.outbox[-1].channel == "sms"
    assert login(client, channel="voice")["result"] == "OK" and outbox.outbox[-1].channel == "voice"
    assert login(client, channel="voice")["error"] == "RATELIMIT"  # the third send this hour


FAILOVER = {**CONFIG, "sender.name": "twilio", "sender.routes": {"sms": ["twilio", "vonage"]}}


def refused_connection() -> requests.ConnectionError:
    return requests.ConnectionError(MaxRetryError(None, "https://api.twilio.com", NewConnectionError(None, "refused")))


@pytest.mark.parametrize(
    ("first", "second_tried", "answer", "noted"),
    [
        (refused_connection(), True, "OK", "twilio network"),  # down: the connection never opened
        ({"json": {"code": 21211, "message": "invalid To"}, "status": 400}, True, "OK", "twilio 21211"),  # refused
        (requests.ReadTimeout("read timed out"), False, "SENDFAIL", "twilio timeout (may have been sent)"),
    ],
)
def test_failover_only_after_a_definite_refusal(make_app, mock, first, second_tried, answer, noted):
    if isinstance(first, Exception):
        mock.post(f"{TWILIO_API}/Messages.json", body=first)
    else:
        mock.post(f"{TWILIO_API}/Messages.json", **first)
    vonage = mock.post(VONAGE_SMS, json={"messages": [{"status": "0", "message-id": "VN1"}]})
    app = make_app(**FAILOVER)
    client, services = app.test_client(), services_of(app)
    result = login(client)
    assert result.get("error", "OK") == answer
    assert vonage.call_count == (1 if second_tried else 0)  # never a second message after a maybe-sent one
    events = [(e.event, e.detail) for e in reversed(services.store.events(subject=services.auditor.subject(PHONE)))]
    assert ("send_failed", noted) in events
    assert (("sent", "vonage VN1") in events) is second_tried
    metrics = client.get("/metrics").data.decode()
    assert 'messenger_codes_sent_total{outcome="error",sender="twilio"} 1.0' in metrics
    if second_tried:
        assert 'messenger_codes_sent_total{outcome="ok",sender="vonage"} 1.0' in metrics


def test_a_route_through_a_sender_that_cannot_deliver_its_channel_stops_start_up(make_app):
    with pytest.raises(ConfigError) as caught:
        make_app(
            **{
                "sender.channels": ["sms", "voice"],
                "sender.routes": {"voice": ["smtp"]},
                "sender.smtp.host": "smtp.example",
                "sender.smtp.from_address": "a@example.org",
            }
        )
    assert caught.value.key == "sender.routes" and "cannot deliver voice" in str(caught.value)
