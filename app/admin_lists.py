"""Support commands about who gets codes: ``flask --app app block|allow|test-numbers|quarantine``.

Like the rest (``app.admin``), they work against the configured store from any node, and what they
change applies at once on every worker and node.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from .admin import PATTERN, current, table, utc_text, wait_text
from .logs import printable
from .store import Watch


def _list_command(kind: str, what: str) -> click.Command:
    @click.command(kind, help=f"{what} Patterns: a number (15550001111) or a prefix (1900*).")
    @click.argument("patterns", nargs=-1)
    @click.option("--note", default="", help="Why (kept with the entry).")
    @click.option("--remove", is_flag=True, help="Take the patterns off the list.")
    @with_appcontext
    def command(patterns: tuple[str, ...], note: str, remove: bool) -> None:
        services = current()
        for pattern in patterns:
            if not PATTERN.fullmatch(pattern):
                raise click.ClickException(f"{pattern!r}: a number of 1-15 digits, or such a prefix ending in *")
        for pattern in (p.lstrip("+") for p in patterns):
            if remove:
                gone = services.store.remove_policy(pattern)
                click.echo(f"{'removed' if gone else 'not on a list:'} {pattern}")
            else:
                services.store.set_policy(pattern, kind, note, services.now())
                click.echo(f"{kind}: {pattern}")
        click.echo(f"{kind} list")
        table(["pattern", "note", "added (UTC)"], [(p, n, utc_text(at)) for p, n, at in services.store.policies(kind)])

    return command


block = _list_command("block", "Refuse these numbers before any SMS (BADPHONE); without patterns, show the list.")
allow = _list_command(
    "allow", "Let these numbers past the per-address caps (the per-code attempts still hold); show the list."
)


@click.command("test-numbers")
@with_appcontext
def test_numbers() -> None:
    """The configured test numbers (fixed code, no SMS) and until when each works."""
    numbers = current().test_numbers
    table(["phone", "until (UTC)"], [(phone, until) for phone, until in numbers.entries()])


@click.command("quarantine")
@click.option("--release", multiple=True, help="Let new numbers of this prefix get codes again (repeatable).")
@with_appcontext
def quarantine(release: tuple[str, ...]) -> None:
    """Phone prefixes quarantined for SMS pumping (many codes sent, few proved or many undelivered),
    and until when."""
    services = current()
    for prefix in release:
        if not prefix.isdigit():
            raise click.ClickException(f"{printable(prefix)!r}: a prefix is digits (e.g. 447700)")
        watch = Watch(prefix, 0, 0, 0, 0)
        cleared = services.store.clear_counters(watch.keys)  # its counts start afresh
        click.echo(f"released {prefix}" if watch.quarantine_key in cleared else f"not quarantined: {prefix}")
    now, rows = services.now(), []
    counts = {key: count for key, count, ends in services.store.counters_of([], ["q-%"]) if ends > now}
    for key, _, ends in services.store.counters_of([], ["quarantine:%"]):
        if ends > now:
            watch = Watch(key.partition(":")[2], 0, 0, 0, 0)
            rows.append(
                (
                    watch.prefix,
                    wait_text(ends - now),
                    counts.get(watch.sent_key, 0),
                    counts.get(watch.proved_key, 0),
                    counts.get(watch.undelivered_key, 0),
                )
            )
    click.echo("quarantined prefixes")
    table(["prefix", "ends in", "codes sent", "proved", "undelivered"], rows)


def init_app(app: Flask) -> None:
    for command in (block, allow, test_numbers, quarantine):
        app.cli.add_command(command)
