"""Messages in the user's language (issue 25, item 3): the template chosen by the step-1 field
``lang``, else by the phone's country, else the default; the codes browsers and phones fill in by
themselves; every template checked at start-up with its length in SMS."""

from __future__ import annotations

import pytest
from helpers import login, post, services_of

from app.messages import segments
from app.schema import ConfigError

TEMPLATES = {
    "de": "{code} ist Ihr {app_name}-Code. Er gilt {minutes} Minuten.",
    "pt": "{code} é o seu código {app_name}.",
    "pt-BR": "Seu código {app_name}: {code}",
}
GERMAN, BRAZILIAN, PORTUGUESE, AMERICAN, SWISS = (
    "4915112345678",
    "5511987654321",
    "351912345678",
    "12015550123",
    "41791234567",
)


@pytest.fixture(name="languages")
def _languages(make_app):
    app = make_app(**{"messages.templates": TEMPLATES, "limits.resend_cooldown_seconds": 0})
    return app.test_client(), services_of(app).sender


@pytest.mark.parametrize(
    ("phone", "lang", "starts"),
    [
        (AMERICAN, "de", "{code} ist Ihr"),  # the field wins over the country
        (AMERICAN, "de-AT", "{code} ist Ihr"),  # then its base language
        (AMERICAN, "pt_br", "Seu código"),  # any case, _ or -
        (AMERICAN, "pt-PT", "{code} é o seu"),
        (GERMAN, "", "{code} ist Ihr"),  # no field: the phone's country's language
        (BRAZILIAN, "", "Seu código"),  # its country-specific template first
        (PORTUGUESE, "", "{code} é o seu"),
        (SWISS, "", "{code} ist Ihr"),  # German is one of Switzerland's official languages
        (GERMAN, "xx-unknown", "{code} ist Ihr"),  # an unknown tag: the country's
        (AMERICAN, "", "{code} is your"),  # nothing fits: the default (sender.template)
        (AMERICAN, "fr", "{code} is your"),
    ],
)
def test_the_message_is_in_the_users_language(languages, phone, lang, starts):
    client, outbox = languages
    assert login(client, phone=phone, **({"lang": lang} if lang else {}))["result"] == "OK"
    message = outbox.outbox[-1]
    assert message.text.startswith(starts.format(code=message.code)), message.text


def test_lang_is_never_an_error(languages):
    client, outbox = languages
    for lang in (["de"], 42, "", "d" * 5000):
        assert post(client, {"op": "login", "appid": "a", "phone": GERMAN, "lang": lang})["result"] == "OK"


def test_the_deletion_code_has_its_own_text_per_language(make_app):
    app = make_app(
        **{"messages.templates": TEMPLATES, "messages.delete_templates": {"de": "{code} löscht Ihr {app_name}-Konto."}}
    )
    client, outbox = app.test_client(), services_of(app).sender
    assert post(client, {"op": "deleteaccount", "appid": "a", "phone": GERMAN})["result"] == "OK"
    assert outbox.outbox[-1].text.endswith("löscht Ihr Mesibo Messenger-Konto.")
    assert post(client, {"op": "deleteaccount", "appid": "a", "phone": AMERICAN})["result"] == "OK"
    assert "delete your Mesibo Messenger account" in outbox.outbox[-1].text  # the default language's


def test_every_language_ends_with_the_codes_phones_read_by_themselves(make_app):
    app = make_app(
        **{
            "messages.templates": TEMPLATES,
            "messages.web_otp_domain": "chat.example",
            "sender.sms_retriever_hash": "FA+9qCX9VSu",
        }
    )
    client, outbox = app.test_client(), services_of(app).sender
    for phone in (GERMAN, AMERICAN):
        login(client, phone=phone)
        lines = outbox.outbox[-1].text.splitlines()
        code = outbox.outbox[-1].code
        assert lines[-2:] == ["FA+9qCX9VSu", f"@chat.example #{code}"]  # the WebOTP line last


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"messages.templates": {"xx-!!": "{code}"}}, "messages.templates"),
        ({"messages.templates": {"de": "Ihr Code: {otp}"}}, "messages.templates"),
        ({"messages.delete_templates": {"de": 42}}, "messages.delete_templates"),
        ({"messages.default_language": "english"}, "messages.default_language"),
        ({"messages.web_otp_domain": "https://chat.example/"}, "messages.web_otp_domain"),
    ],
)
def test_a_wrong_template_stops_start_up(make_app, config, key):
    with pytest.raises(ConfigError) as caught:
        make_app(**config)
    assert caught.value.key == key


def test_check_shows_each_templates_length_in_sms(make_app):
    app = make_app(**{"messages.templates": {**TEMPLATES, "ru": "Ваш код {app_name}: {code}. " * 3}})
    output = app.test_cli_runner().invoke(args=["check"]).output
    assert "message login de: 56 characters, GSM-7, 1 SMS" in output  # "000000 ist Ihr ... Minuten."
    assert "message login ru:" in output and "UCS-2, 2 SMS" in output
    assert "message deleteaccount en:" in output


def test_sms_segments():
    assert segments("a" * 160) == (1, "GSM-7") and segments("a" * 161) == (2, "GSM-7")
    assert segments("€" * 80) == (1, "GSM-7") and segments("€" * 81) == (2, "GSM-7")  # € takes two places
    assert segments("ж" * 70) == (1, "UCS-2") and segments("ж" * 71) == (2, "UCS-2")
    assert segments("😀" * 35) == (1, "UCS-2")  # two UTF-16 units each
