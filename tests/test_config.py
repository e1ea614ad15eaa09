"""Configuration: defaults, TOML file, environment, validation that names the key, start-up rules."""

from __future__ import annotations

import os

import pytest
from conftest import APP_TOKEN, APPID, OTP_SECRET, PHONE, post

from app import ConfigError, create_app
from app.config import KEYS, load


def test_defaults_load_with_no_configuration():
    values = load({})
    assert values["otp.digits"] == 6 and values["otp.ttl_seconds"] == 300
    assert values["mesibo.api_url"] == "https://api.mesibo.com/backend/"
    assert values["server.max_body_bytes"] == 65536


def test_toml_file_then_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[otp]\ndigits = 8\nttl_seconds = 120\n[mesibo]\napi_url = "https://file.example/backend/"\n')
    values = load({"MESSENGER_CONFIG": str(path), "MESSENGER_OTP_DIGITS": "7"})
    assert values["otp.digits"] == 7  # the environment wins over the file
    assert values["otp.ttl_seconds"] == 120
    assert values["mesibo.api_url"] == "https://file.example/backend/"


@pytest.mark.parametrize(
    ("env", "raw", "key", "expected"),
    [
        ("MESIBO_APP_TOKEN", "tok", "mesibo.app_token", "tok"),
        ("MESIBO_API_URL", "https://onprem.example/backend/", "mesibo.api_url", "https://onprem.example/backend/"),
        ("DATABASE_URL", "sqlite:///x.db", "database.url", "sqlite:///x.db"),
        ("OTP_SECRET", "s" * 32, "otp.secret", "s" * 32),
        ("MESSENGER_LIMITS_GLOBAL_SENDS_PER_HOUR", "50", "limits.global_sends_per_hour", 50),
        ("MESSENGER_MESIBO_REVOKE_ON_LOGOUT", "yes", "mesibo.revoke_on_logout", True),
        ("MESSENGER_MESIBO_READ_TIMEOUT", "2.5", "mesibo.read_timeout", 2.5),
        ("MESSENGER_PHONES_ALLOW_CALLING_CODES", "1, 44", "phones.allow_calling_codes", ["1", "44"]),
        ("MESSENGER_PHONES_TEST_NUMBERS", '{"15550001111": "1234"}', "phones.test_numbers", {"15550001111": "1234"}),
    ],
)
def test_environment_variables(env, raw, key, expected):
    assert load({env: raw})[key] == expected


def test_every_key_is_documented_and_settable_from_the_environment_by_the_rule():
    """The README's rule: MESSENGER_<SECTION>_<KEY> in upper case sets any key."""
    samples = {str: "sample", int: "7", float: "7.5", list: "1,44", dict: '{"15550001111": "1234"}'}
    for key in KEYS:
        assert key.doc
        sample = ("false" if key.default else "true") if key.kind is bool else samples[key.kind]
        environ = {"MESSENGER_" + key.name.replace(".", "_").upper(): sample}
        try:
            value = load(environ)[key.name]
        except ConfigError as refused:  # a value the key's own check refuses still proves it was read
            assert refused.key == key.name
        else:
            assert value != key.default, key.name


def test_secret_from_a_file(tmp_path):
    secret_file = tmp_path / "token"
    secret_file.write_text("file-token-123\n")
    assert load({"MESIBO_APP_TOKEN_FILE": str(secret_file)})["mesibo.app_token"] == "file-token-123"


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"MESSENGER_OTP_DIGITS": "eleven"}, "otp.digits"),
        ({"MESSENGER_OTP_DIGITS": "11"}, "otp.digits"),
        ({"MESSENGER_OTP_TTL_SECONDS": "3600"}, "otp.ttl_seconds"),
        ({"MESIBO_API_URL": "ftp://x"}, "mesibo.api_url"),
        ({"DATABASE_URL": "mysql://x"}, "database.url"),
        ({"MESSENGER_MESIBO_API_STYLE": "soap"}, "mesibo.api_style"),
        ({"MESSENGER_SERVER_TRUSTED_PROXIES": "-1"}, "server.trusted_proxies"),
        ({"MESSENGER_MESIBO_REVOKE_ON_LOGOUT": "maybe"}, "mesibo.revoke_on_logout"),
        ({"MESSENGER_PHONES_TEST_NUMBERS": "{broken"}, "phones.test_numbers"),
        ({"MESSENGER_PHONES_ALLOW_CALLING_CODES": "1,abc"}, "phones.allow_calling_codes"),
        ({"MESSENGER_CONFIG": "/nonexistent/file.toml"}, "MESSENGER_CONFIG"),
        ({"MESSENGER_SENDER_TEMPLATE": "Your code: {otp}"}, "sender.template"),
        ({"MESSENGER_SENDER_SMTP_SUBJECT": "Code {"}, "sender.smtp.subject"),
    ],
)
def test_a_wrong_value_stops_start_up_naming_the_key(environ, key):
    with pytest.raises(ConfigError) as caught:
        load(environ)
    assert caught.value.key == key
    assert key in str(caught.value)


def test_a_wrong_type_in_the_toml_file_names_the_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[otp]\ndigits = "six"\n')
    with pytest.raises(ConfigError, match="otp.digits"):
        load({"MESSENGER_CONFIG": str(path)})


def test_broken_toml_names_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[otp\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load({"MESSENGER_CONFIG": str(path)})


def test_zero_configuration_starts_in_development_with_a_persisted_key(tmp_path, monkeypatch, caplog):
    """No configuration at all: SQLite in the instance folder, log sender, generated key kept on disk."""
    instance = tmp_path / "instance"
    environ = {"MESSENGER_INSTANCE_PATH": str(instance)}
    app = create_app(environ=environ)
    services = app.extensions["messenger"]
    assert services.development
    assert services.database_url == f"sqlite:///{instance}/messenger.db"
    assert type(services.sender).__name__ == "LogSender"
    key_file = instance / "messenger.db.otp-key"
    assert key_file.exists() and oct(os.stat(key_file).st_mode & 0o777) == "0o600"
    again = create_app(environ=environ).extensions["messenger"]
    assert again.codes.digest("a", "b", "123456") == services.codes.digest("a", "b", "123456")
    client = app.test_client()
    assert post(client, {"op": "login", "phone": PHONE, "appid": APPID})["result"] == "OK"


def test_production_refuses_an_empty_app_token(tmp_path):
    config = {"database.url": f"sqlite:///{tmp_path}/t.db", "otp.secret": OTP_SECRET, "server.development": "false"}
    with pytest.raises(ConfigError, match="mesibo.app_token"):
        create_app(config, environ={})


@pytest.mark.parametrize("token", ["changeme", "<your app token>", "xxx"])
def test_production_refuses_a_placeholder_app_token(tmp_path, token):
    config = {"database.url": f"sqlite:///{tmp_path}/t.db", "otp.secret": OTP_SECRET, "mesibo.app_token": token}
    with pytest.raises(ConfigError, match="mesibo.app_token"):
        create_app(config, environ={"MESSENGER_SERVER_DEVELOPMENT": "false"})


@pytest.mark.parametrize("secret", ["", "changeme", "short"])
def test_production_refuses_a_missing_or_weak_hashing_key(tmp_path, secret):
    config = {"database.url": f"sqlite:///{tmp_path}/t.db", "otp.secret": secret, "mesibo.app_token": APP_TOKEN}
    with pytest.raises(ConfigError, match="otp.secret"):
        create_app(config, environ={})


def test_an_app_token_alone_turns_development_mode_off(tmp_path):
    """auto development mode is only for the zero-configuration first run."""
    with pytest.raises(ConfigError, match="otp.secret"):
        create_app({"database.url": f"sqlite:///{tmp_path}/t.db"}, environ={"MESIBO_APP_TOKEN": APP_TOKEN})


def test_unknown_sender_stops_start_up(tmp_path):
    config = {
        "database.url": f"sqlite:///{tmp_path}/t.db",
        "otp.secret": OTP_SECRET,
        "mesibo.app_token": APP_TOKEN,
        "sender.name": "carrier-pigeon",
    }
    with pytest.raises(ConfigError, match="sender.name"):
        create_app(config, environ={})


def test_config_example_documents_every_key_and_loads():
    """config.example.toml is generated from the key list; it must be current and valid."""
    from pathlib import Path

    from app.config import example_toml

    path = Path(__file__).resolve().parent.parent / "config.example.toml"
    assert path.read_text() == example_toml(), "regenerate config.example.toml (see app/config.py example_toml)"
    values = load({"MESSENGER_CONFIG": str(path)})
    assert all(values[key.name] == key.default for key in KEYS)
