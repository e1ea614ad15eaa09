"""Commands: ``flask --app app <command>``."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from .services import Services, of


def _services() -> Services:
    return of(current_app)


@click.command("migrate")
@with_appcontext
def migrate() -> None:
    """Create the schema or bring it to the current version (also: init-db)."""
    before, after = _services().store.migrate()
    click.echo(f"database schema at version {after} (was {before})")


@click.command("purge")
@with_appcontext
@click.option(
    "--batch", default=1000, show_default=True, type=click.IntRange(min=1), help="Rows deleted per transaction."
)
def purge(batch: int) -> None:
    """Delete expired codes and limit counters."""
    services = _services()
    removed = services.store.purge(services.now(), batch)
    click.echo(f"removed {removed} expired rows")


@click.command("check")
@with_appcontext
def check() -> None:
    """Check the configuration and ask mesibo whether it accepts the app token."""
    services = _services()
    settings = services.settings
    store = settings.database_url.split("@")[-1]
    click.echo(f"configuration: ok (store {store}, sender {settings.sender.name}, login {settings.auth.method})")
    try:
        services.store.ping()
    except Exception as exc:
        click.echo(f"database: unreachable ({type(exc).__name__})")
        raise SystemExit(1) from None
    click.echo(f"database: ok, schema version {services.store.schema_version()}")
    from . import message_lengths

    for line in message_lengths(services):
        click.echo(f"message {line}")
    if not services.mesibo.configured:
        click.echo("mesibo: no app token configured - set MESIBO_APP_TOKEN")
        raise SystemExit(1)
    failed = False
    for appid in ["", *services.mesibo.apps]:  # the default app token, then each app's own
        _, url = services.mesibo.target(appid)
        if not services.mesibo.target(appid)[0]:
            if appid:
                click.echo(f"mesibo for {appid} ({url}): no app token configured")
                failed = True
            continue
        ok, verdict = services.mesibo.check(appid)
        click.echo(f"mesibo{' for ' + appid if appid else ''} ({url}): {verdict}")
        failed = failed or not ok
    if failed:
        raise SystemExit(1)


@click.command("send-test-code")
@click.argument("address")
@with_appcontext
def send_test_code(address: str) -> None:
    """Send a code to ADDRESS through the configured sender (the code is not valid for login)."""
    from .auth.otp import CodeLogin
    from .senders import SendError

    services = _services()
    settings = services.settings
    method = services.login
    if not isinstance(method, CodeLogin):
        click.echo(f"the {settings.auth.method!r} login sends no codes")
        raise SystemExit(2)
    normalized = method.normalize_address(address)
    if not normalized:
        click.echo(f"{address!r} is not a valid address for the {settings.auth.method!r} login")
        raise SystemExit(2)
    code = services.codes.new_code()
    now = services.now()
    message = method.message(normalized, code, now + services.codes.ttl_seconds, now)
    try:
        message_id = services.sender.send(message)
    except SendError as exc:
        click.echo(f"sender {settings.sender.name} failed: {exc} (provider error {exc.provider_code or 'none'})")
        raise SystemExit(1) from None
    click.echo(f"sent test code {code} to {normalized} with {settings.sender.name} (message id {message_id})")


@click.command("version")
def version() -> None:
    """Print the installed version of messenger-backend."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        click.echo(f"messenger-backend {installed('messenger-backend')}")
    except PackageNotFoundError:
        click.echo("messenger-backend (not installed: run from a checkout)")


def init_app(app: Flask) -> None:
    from . import admin, admin_lists

    admin.init_app(app)
    admin_lists.init_app(app)
    app.cli.add_command(migrate, "init-db")
    for command in (migrate, purge, check, send_test_code, version):
        app.cli.add_command(command)
