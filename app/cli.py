"""Commands: ``flask --app app <command>``."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext


def _services():
    return current_app.extensions["messenger"]


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create the schema (or bring it to the current version)."""
    before, after = _services().store.migrate()
    click.echo(f"database schema at version {after} (was {before})")


@click.command("migrate")
@with_appcontext
def migrate() -> None:
    """Bring the database schema to the current version."""
    before, after = _services().store.migrate()
    click.echo(f"database schema at version {after} (was {before})")


@click.command("purge")
@with_appcontext
@click.option("--batch", default=1000, show_default=True, help="Rows deleted per transaction.")
def purge(batch: int) -> None:
    """Delete expired codes and limit counters."""
    services = _services()
    removed = services.store.purge(services.now(), batch)
    click.echo(f"removed {removed} expired rows")


def init_app(app: Flask) -> None:
    for command in (init_db, migrate, purge):
        app.cli.add_command(command)
