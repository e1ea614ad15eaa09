"""Configuration: defaults, TOML file, environment, typed sections, unknown names, errors that name
the key, and the start-up gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import APP_TOKEN, APPID, OTP_SECRET, PHONE, post, services_of

from app import ConfigError, create_app
from app.config import all_keys, load
from app.reference import example_toml, key_table

ROOT = Path(__file__).resolve().parent.parent
# What production needs, so a test can look at one other key.
PRODUCTION = {"MESIBO_APP_TOKEN": APP_TOKEN, "OTP_SECRET": OTP_SECRET}


def value(settings, dotted):
    """A setting by its dotted name (``sender.twilio.from`` included)."""
    section, _, name = dotted.rpartition(".")
    key = next(key for key in all_keys() if key.dotted == dotted)
    holder = getattr(settings, section) if "." not in section else settings.plugin(section)
    return getattr(holder, key.attr)


def test_defaults_load_with_no_configuration():
    settings = load({})
    assert settings.otp.digits == 6 and settings.otp.ttl_seconds == 300
    assert settings.mesibo.api_url == "https://api.mesibo.com/backend/"
    assert settings.server.max_body_bytes == 65536
    assert settings.development  # nothing configured: the first-run mode


def test_toml_file_then_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[otp]\ndigits = 8\nttl_seconds = 120\n[mesibo]\napi_url = "https://file.example/backend/"\n')
    settings = load({"MESSENGER_CONFIG": str(path), "MESSENGER_OTP_DIGITS": "7", **PRODUCTION})
    assert settings.otp.digits == 7  # the environment wins over the file
    assert settings.otp.ttl_seconds == 120
    assert settings.mesibo.api_url == "https://file.example/backend/"


@pytest.mark.parametrize(
    ("env", "raw", "key", "expected"),
    [
        ("MESIBO_APP_TOKEN", "tok-123456", "mesibo.app_token", "tok-123456"),
        ("MESIBO_API_URL", "https://onprem.example/backend/", "mesibo.api_url", "https://onprem.example/backend/"),
        ("DATABASE_URL", "sqlite:///x.db", "database.url", "sqlite:///x.db"),
        ("OTP_SECRET", "s" * 32, "otp.secret", "s" * 32),
        ("MESSENGER_LIMITS_GLOBAL_SENDS_PER_HOUR", "50", "limits.global_sends_per_hour", 50),
        ("MESSENGER_MESIBO_REVOKE_ON_LOGOUT", "yes", "mesibo.revoke_on_logout", True),
        ("MESSENGER_MESIBO_READ_TIMEOUT", "2.5", "mesibo.read_timeout", 2.5),
        ("MESSENGER_PHONES_ALLOW_CALLING_CODES", "1, 44", "phones.allow_calling_codes", ["1", "44"]),
        ("MESSENGER_PHONES_TEST_NUMBERS", '{"15550001111": "1234"}', "phones.test_numbers", {"15550001111": "1234"}),
        ("MESSENGER_SENDER_VONAGE_FROM", "Acme", "sender.vonage.from", "Acme"),
    ],
)
def test_environment_variables(env, raw, key, expected):
    assert value(load({**PRODUCTION, env: raw}), key) == expected


def test_every_key_is_documented_and_settable_from_the_environment_by_the_rule():
    """The README's rule: MESSENGER_<SECTION>_<KEY> in upper case sets any key, a plug-in's too."""
    samples = {str: "sample", int: "7", float: "7.5", list: "1,44", dict: '{"15550001111": "1234"}'}
    for key in all_keys():
        assert key.doc
        sample = ("false" if key.default else "true") if key.kind is bool else samples[key.kind]
        environ = {**PRODUCTION, "MESSENGER_" + key.dotted.replace(".", "_").upper(): sample}
        try:
            found = value(load(environ), key.dotted)
        except ConfigError as refused:  # a value the key's own check refuses still proves it was read
            assert refused.key == key.dotted, refused
        else:
            assert found != key.default, key.dotted


def test_secret_from_a_file(tmp_path):
    secret_file = tmp_path / "token"
    secret_file.write_text("file-token-123\n")
    settings = load({"MESIBO_APP_TOKEN_FILE": str(secret_file), "OTP_SECRET": OTP_SECRET})
    assert settings.mesibo.app_token == "file-token-123"


def test_the_database_url_from_a_file_and_its_password_is_kept_out_of_the_logs(tmp_path):
    """DATABASE_URL_FILE, as a container's secret (a PostgreSQL URL carries its password); the log
    redactor hides the password, not the whole URL (the start-up line names the server)."""
    url_file = tmp_path / "database_url"
    url_file.write_text("postgresql://messenger:s3cret-db-pass@db:5432/messenger\n")
    settings = load({"DATABASE_URL_FILE": str(url_file), "OTP_SECRET": OTP_SECRET, "MESIBO_APP_TOKEN": APP_TOKEN})
    assert settings.database_url == "postgresql://messenger:s3cret-db-pass@db:5432/messenger"
    assert "s3cret-db-pass" in settings.secrets()
    assert not [secret for secret in settings.secrets() if "db:5432" in secret]


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
        ({"MESSENGER_SENDER_DELETE_TEMPLATE": "Delete: {otp}"}, "sender.delete_template"),
        ({"MESSENGER_SERVER_APPIDS": "com.a,bad\x07id"}, "server.appids"),
        ({"MESSENGER_MESIBO_APPS": '{"com.a": "token"}'}, "mesibo.apps"),
        ({"MESSENGER_MESIBO_APPS": '{"com.a": {"api_url": "ftp://x"}}'}, "mesibo.apps"),
        ({"MESSENGER_MESIBO_APPS": '{"com.a": {"app_tokn": "x"}}'}, "mesibo.apps"),
        ({"MESSENGER_SENDER_SMTP_SUBJECT": "Code {"}, "sender.smtp.subject"),
        ({"MESSENGER_SENDER_NAME": "twilio"}, "sender.twilio.account_sid"),
        ({"MESSENGER_AUTH_METHOD": "oidc"}, "auth.oidc.issuer"),
    ],
)
def test_a_wrong_value_stops_start_up_naming_the_key(environ, key):
    with pytest.raises(ConfigError) as caught:
        load({**PRODUCTION, **environ})
    assert caught.value.key == key
    assert key in str(caught.value)


@pytest.mark.parametrize(
    ("toml", "key", "hint"),
    [
        ("[otp]\ndigit = 8\n", "otp.digit", "did you mean 'digits'?"),
        ("[otpp]\ndigits = 8\n", "otpp.digits", "did you mean 'otp'?"),
        ("[sender.twilio]\naccount_sd = 'AC1'\n", "sender.twilio.account_sd", "did you mean 'account_sid'?"),
        ("[sender.twillio]\naccount_sid = 'AC1'\n", "sender.twillio.account_sid", "unknown section [sender.twillio]"),
        ("[auth.oidc]\nissuerr = 'https://x'\n", "auth.oidc.issuerr", "did you mean 'issuer'?"),
    ],
)
def test_an_unknown_key_or_section_in_the_file_stops_start_up_naming_the_nearest(tmp_path, toml, key, hint):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load({"MESSENGER_CONFIG": str(path), **PRODUCTION})
    assert caught.value.key == key and hint in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "hint"),
    [
        ("MESSENGER_OTP_DIGIT", "MESSENGER_OTP_DIGITS"),
        ("MESSENGER_SENDER_TWILIO_AUTH_TOKN", "MESSENGER_SENDER_TWILIO_AUTH_TOKEN"),
        ("MESSENGER_LIMITS_SEND_PER_IP_PER_HOUR", "MESSENGER_LIMITS_SENDS_PER_IP_PER_HOUR"),
    ],
)
def test_an_unknown_variable_stops_start_up_naming_the_nearest(variable, hint):
    with pytest.raises(ConfigError) as caught:
        load({variable: "8", **PRODUCTION})
    assert caught.value.key == variable and f"did you mean {hint!r}?" in str(caught.value)


def test_an_unknown_key_in_the_overrides_stops_start_up():
    with pytest.raises(ConfigError, match="otp.digit"):
        load(PRODUCTION, {"otp.digit": 8})


def test_other_variables_are_left_alone():
    load({**PRODUCTION, "MESSENGER_INSTANCE_PATH": "/tmp/x", "PATH": "/bin", "MESIBO_SOMETHING": "x"})


def test_a_wrong_type_in_the_toml_file_names_the_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[otp]\ndigits = "six"\n')
    with pytest.raises(ConfigError, match="otp.digits.*expected a whole number, got 'six'"):
        load({"MESSENGER_CONFIG": str(path), **PRODUCTION})


def test_broken_toml_names_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[otp\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load({"MESSENGER_CONFIG": str(path)})


def test_a_custom_plugin_declares_its_own_section(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[sender]\nname = "plugins:ListSender"\n[sender.list]\nprefix = "p-"\n')
    settings = load({"MESSENGER_CONFIG": str(path), **PRODUCTION})
    assert settings.plugin("sender.list").prefix == "p-"
    path.write_text('[sender]\nname = "plugins:ListSender"\n[sender.list]\nprefx = "p-"\n')
    with pytest.raises(ConfigError, match="did you mean 'prefix'"):
        load({"MESSENGER_CONFIG": str(path), **PRODUCTION})


def test_zero_configuration_starts_in_development_with_a_persisted_key(tmp_path, monkeypatch, caplog):
    """No configuration at all: SQLite in the instance folder, log sender, generated key kept on disk."""
    instance = tmp_path / "instance"
    environ = {"MESSENGER_INSTANCE_PATH": str(instance)}
    app = create_app(environ=environ)
    services = services_of(app)
    assert services.settings.development
    assert services.settings.database_url == f"sqlite:///{instance}/messenger.db"
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


@pytest.mark.parametrize("value", ["yes", "1", "on", "TRUE"])
def test_development_mode_has_one_spelling_for_each_state(tmp_path, value):
    """auto, true or false - not nine ways to say it."""
    with pytest.raises(ConfigError, match="server.development.*one of auto, true, false"):
        create_app({"database.url": f"sqlite:///{tmp_path}/t.db", "server.development": value}, environ={})


@pytest.mark.parametrize(("value", "development"), [(False, False), (True, True)])
def test_development_mode_takes_a_toml_boolean(tmp_path, value, development):
    """development = false in a TOML file was refused ("expected a string")."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\ndevelopment = {str(value).lower()}\n[database]\nurl = "sqlite:///{tmp_path}/t.db"\n'
        f'[mesibo]\napp_token = "{APP_TOKEN}"\n[otp]\nsecret = "{OTP_SECRET}"\n'
    )
    app = create_app(environ={"MESSENGER_CONFIG": str(config)})
    assert app.extensions["messenger"].settings.development is development


def test_unknown_sender_stops_start_up(tmp_path):
    config = {
        "database.url": f"sqlite:///{tmp_path}/t.db",
        "otp.secret": OTP_SECRET,
        "mesibo.app_token": APP_TOKEN,
        "sender.name": "carrier-pigeon",
    }
    with pytest.raises(ConfigError, match="sender.name"):
        create_app(config, environ={})


def test_config_example_documents_every_key_and_loads(tmp_path):
    """config.example.toml is generated from the settings; it must be current and load as the defaults."""
    path = ROOT / "config.example.toml"
    assert path.read_text() == example_toml(), "regenerate: python -m app.reference"
    settings = load({"MESSENGER_CONFIG": str(path), **PRODUCTION})
    assert settings.otp == load(PRODUCTION).otp and settings.limits == load(PRODUCTION).limits


def test_readme_key_table_is_current():
    assert key_table() in (ROOT / "README.md").read_text(), "regenerate: python -m app.reference"


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "import wsgi"],
        [str(Path(sys.executable).parent / "flask"), "--app", "app", "check"],
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
    ],
    ids=["wsgi", "flask", "gunicorn"],
)
@pytest.mark.slow  # a process each
def test_a_configuration_error_is_one_line_from_every_entry_point(command, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESSENGER_", "MESIBO_", "OTP_", "GUNICORN_"))}
    env.update(PRODUCTION, MESSENGER_OTP_DIGIT="8", GUNICORN_BIND="127.0.0.1:0", MESSENGER_INSTANCE_PATH=str(tmp_path))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["TMPDIR"] = str(tmp_path / "tmp")  # where gunicorn.conf.py makes its metrics folder
    (tmp_path / "tmp").mkdir()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert list((tmp_path / "tmp").glob("messenger-metrics-*")) == []  # a failed start leaves none behind
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert "MESSENGER_OTP_DIGIT" in done.stderr and "did you mean 'MESSENGER_OTP_DIGITS'?" in done.stderr


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"MESSENGER_INSTANCE_PATH": "{file}/instance"}, "MESSENGER_INSTANCE_PATH"),  # development, a file in the way
        ({"DATABASE_URL": "sqlite:///{file}/messenger.db"}, "otp.secret"),  # the generated key cannot be kept
        ({**PRODUCTION, "DATABASE_URL": "sqlite:///{file}/messenger.db"}, "database.url"),
    ],
    ids=["instance-folder", "development-key", "database"],
)
@pytest.mark.parametrize("entry", ["wsgi", "flask"])
@pytest.mark.slow  # a process each
def test_a_place_the_service_cannot_write_is_one_line_naming_the_key(environ, key, entry, tmp_path):
    """Issue 23: an instance folder or a database it cannot make or write was a 31-47 line traceback."""
    blocker = tmp_path / "a-file"  # where a folder is needed (root may write anywhere: this fails for root too)
    blocker.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESSENGER_", "MESIBO_", "OTP_", "GUNICORN_"))}
    env.pop("DATABASE_URL", None)
    env.update({name: value.replace("{file}", str(blocker)) for name, value in environ.items()})
    env.setdefault("MESSENGER_INSTANCE_PATH", str(tmp_path / "instance"))
    command = (
        [sys.executable, "-c", "import wsgi"]
        if entry == "wsgi"
        else [str(Path(sys.executable).parent / "flask"), "--app", "app", "migrate"]  # a command that uses the store
    )
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"'{key}'" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.slow  # a process
def test_a_configuration_error_at_gunicorn_start_is_one_json_record_when_json_logs_are_asked_for(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESSENGER_", "MESIBO_", "OTP_", "GUNICORN_"))}
    env.update(
        PRODUCTION,
        MESSENGER_OTP_DIGITS="99",
        MESSENGER_LOGGING_JSON="true",
        GUNICORN_BIND="127.0.0.1:0",
        MESSENGER_INSTANCE_PATH=str(tmp_path),
        TMPDIR=str(tmp_path),
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [str(Path(sys.executable).parent / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "wsgi:app"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    lines = [json.loads(line) for line in done.stderr.strip().splitlines()]  # every line is JSON
    failure = [line for line in lines if "cannot start" in line["message"]]
    assert len(failure) == 1 and failure[0]["log"]["level"] == "critical", lines
    assert "otp.digits" in failure[0]["message"]


@pytest.mark.parametrize(
    ("environ", "worst"),
    [
        ({"MESSENGER_MESIBO_READ_TIMEOUT": "30"}, "43"),  # 2 x 5 + 3 + 30
        (
            {"DATABASE_URL": "postgresql://db.internal/messenger", "MESSENGER_SERVER_REQUEST_DEADLINE_SECONDS": "25"},
            "29",
        ),  # 2 x (5 + 3) + 3 + 10
    ],
)
def test_waits_longer_than_the_request_deadline_stop_start_up(environ, worst):
    """Every wait a login can make, added up, must fit the request's deadline (below the proxy's)."""
    with pytest.raises(ConfigError) as caught:
        load({**PRODUCTION, **environ})
    assert caught.value.key == "server.request_deadline_seconds"
    assert f"may wait {worst} s" in str(caught.value)


def test_the_request_deadline_is_below_the_shipped_nginx_read_timeout():
    """The default deadline fits the default waits, and nginx waits longer than the deadline: a slow
    login is answered by the service with the envelope, never cut off by the proxy."""
    import re

    from app.startup import worst_login_seconds

    settings = load(PRODUCTION)
    core = {"database": settings.database, "mesibo": settings.mesibo}
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", nginx).group(1))
    assert worst_login_seconds(core, shared=True) <= settings.server.request_deadline_seconds < read_timeout
