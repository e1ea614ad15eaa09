"""The flask commands: init-db / migrate, purge."""

from __future__ import annotations

import pytest
from helpers import ask_code, services_of, sqlite_file

from app.store import SCHEMA_VERSION


def test_init_db_and_migrate_report_the_schema_version(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0 and f"version {SCHEMA_VERSION}" in result.output
    result = runner.invoke(args=["migrate"])
    assert result.exit_code == 0 and f"(was {SCHEMA_VERSION})" in result.output


def test_purge_removes_expired_codes(app, client, outbox, clock, tmp_path):
    ask_code(client, outbox)
    runner = app.test_cli_runner()
    assert "removed 0" in runner.invoke(args=["purge"]).output
    clock.advance(86400 + 1)
    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0
    assert "removed" in result.output and "removed 0" not in result.output
    with sqlite_file(tmp_path / "test.db") as db:
        assert db.execute("SELECT COUNT(*) FROM codes").fetchone()[0] == 0


def test_lazy_cleanup_removes_expired_codes_during_logins(app, client, outbox, clock, tmp_path):
    ask_code(client, outbox, phone="12012345678")
    clock.advance(3 * 86400)
    ask_code(client, outbox, phone="447911123456")
    with sqlite_file(tmp_path / "test.db") as db:
        rows = db.execute("SELECT address FROM codes").fetchall()
    assert rows == [(services_of(app).codes.blind("447911123456"),)]


def test_purge_refuses_a_batch_below_one_with_one_line(app):
    """A batch of 0 or less would never finish; it is a usage error, not a hang."""
    for batch in ("0", "-5"):
        result = app.test_cli_runner().invoke(args=["purge", "--batch", batch])
        assert result.exit_code == 2 and "--batch" in result.output and "Traceback" not in result.output


def test_version_prints_the_installed_version(app):
    from importlib.metadata import version

    result = app.test_cli_runner().invoke(args=["version"])
    assert result.exit_code == 0 and result.output.strip() == f"messenger-backend {version('messenger-backend')}"


@pytest.mark.slow  # a flask process of its own
def test_a_command_says_what_it_has_to_say_and_no_start_up_report(tmp_path):
    """The start-up report (ready, warnings, message lengths) is a server's; `flask version` prints
    its one line. A command that only reads (--help, version, routes) makes no file - no instance
    folder, database or generated key (they all did); one that uses the store makes them then."""
    from helpers import run_flask

    from tools.processes import ROOT, clean_environment

    instance = tmp_path / "instance"
    env = clean_environment(MESSENGER_SERVER_DEVELOPMENT="true", MESSENGER_INSTANCE_PATH=str(instance))
    done = run_flask(["version"], env, ROOT)
    assert done.returncode == 0 and done.stdout.startswith("messenger-backend")
    assert "messenger backend ready" not in done.stderr and "message login" not in done.stderr, done.stderr
    for command, shows in ((["--help"], "purge"), (["routes"], "/healthz")):
        done = run_flask(command, env, ROOT)
        assert done.returncode == 0 and shows in done.stdout, done.stdout
    assert not instance.exists() and not done.stderr, done.stderr
    done = run_flask(["status", "12015550123"], env, ROOT)
    assert done.returncode == 0 and "live code" in done.stdout, done.stdout + done.stderr
    assert {path.name for path in instance.iterdir()} >= {"messenger.db", "messenger.db.otp-key"}


@pytest.mark.slow  # a flask process of its own
def test_a_login_method_whose_extra_is_missing_is_one_line_for_a_command(tmp_path):
    """A configuration error found while the services are built (here: the attestation gate without
    its secret) is the command's one-line error, not a traceback."""
    from helpers import run_flask

    from tools.processes import ROOT, clean_environment

    env = clean_environment(
        MESSENGER_SERVER_DEVELOPMENT="true",
        MESSENGER_INSTANCE_PATH=str(tmp_path / "instance"),
        MESSENGER_ATTESTATION_PROVIDER="turnstile",
    )
    done = run_flask(["status", "12015550123"], env, ROOT)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "attestation.secret" in done.stderr.strip().splitlines()[-1]
    assert "add up to" not in done.stderr  # the gate's default timeouts fit the request's deadline
