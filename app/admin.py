"""Support commands: ``flask --app app status|events|unblock|delete-account`` (the lists of who gets codes:
``app.admin_lists``).

They work against the configured store (SQLite or PostgreSQL) from any node, and what they change
applies at once on every worker and node.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from .audit import masked
from .auth.otp import CodeLogin
from .logs import printable
from .mesibo import MesiboError
from .ops import forget
from .services import Services, of
from .store.audit import EVENTS, Event, EventName

PATTERN = re.compile(r"\+?\d{1,15}\*?")


def current() -> Services:
    return of(current_app)


def _address(services: Services, raw: str) -> str:
    """The account as the login method names it for its limits and trail (a phone in E.164 digits,
    a user id folded as the password logins fold it); one line when it is not one."""
    address = services.login.subject_of(raw, services.now())
    if not address:
        raise click.ClickException(
            f"{printable(raw)!r} is not a valid address for the {services.settings.auth.method!r} login"
        )
    return address


def _stored(services: Services, raw: str) -> str:
    """The address as the login method stores its codes and trail under it - the e-mail login's
    ``ann+1@`` itself, where its limits count the inbox ``ann@`` (``_address``)."""
    login = services.login
    return (login.normalize_address(raw) if isinstance(login, CodeLogin) else None) or _address(services, raw)


def wait_text(seconds: int) -> str:
    seconds = max(0, seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def utc_text(at: int) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    if not rows:
        click.echo("  (none)")
        return
    cells = [[printable(str(cell)) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[n]) for row in cells) for n in range(len(headers))]
    for row in cells:
        click.echo("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _show_events(events: list[Event]) -> None:
    table(
        ["time (UTC)", "event", "detail", "address", "client", "appid", "request"],
        [(utc_text(e.at), e.event, e.detail, e.shown, e.client_ip, e.appid, e.request_id) for e in events],
    )


def _limit_rows(
    services: Services, keys: list[str], patterns: list[str], address: str = ""
) -> list[tuple[str, str, str, str]]:
    """(rule, count/limit, resets in, state) of the counters found; the address itself (as the keys
    hold it: its keyed hash) is left out."""
    caps = services.limits.caps()
    address = services.codes.blind(address) if address else ""
    now, rows = services.now(), []
    for key, count, ends in services.store.counters_of(keys, patterns):
        if ends <= now:
            continue
        kind, _, subject = key.partition(":")
        cap = caps.get(kind, 0)
        full = cap and count >= cap
        where = subject.replace(address, "", 1).strip(":") if address else subject
        rule = f"{kind} ({'from ' if address else ''}{where})" if where else kind
        rows.append((rule, f"{count}/{cap or '-'}", wait_text(ends - now), "REFUSING" if full else "ok"))
    return rows


@click.command("status")
@click.argument("phone")
@with_appcontext
def status(phone: str) -> None:
    """What the service knows of PHONE (or an e-mail address): live code, limits, lists, last events."""
    services = current()
    address, subject, now = _stored(services, phone), _address(services, phone), services.now()
    click.echo(f"address   {printable(masked(address))}  (lookup {services.auditor.subject(address)})")
    live = [
        (
            appid,
            wait_text(expires - now),
            f"{attempts}/{services.codes.max_attempts}",
            "claimed (a login is minting its token)" if claimed > now else "waiting for the answer",
        )
        for appid, expires, attempts, claimed in services.store.codes_of(services.codes.blind(address))
        if expires > now
    ]
    click.echo("live code " + ("" if live else "none"))
    if live:
        table(["appid", "expires in", "attempts used", "state"], live)
    click.echo("limits")
    rows = _limit_rows(services, *services.limits.keys_of_subject(subject), subject)
    table(["rule", "count", "resets in", "state"], rows)
    listed = services.store.policy(address)
    click.echo(f"list      {listed + 'ed' if listed else 'neither blocked nor allowed'}")
    click.echo("last events")
    _show_events(services.store.events(subject=services.auditor.subject(address), limit=10))


def _since(text: str, now: int) -> int:
    found = re.fullmatch(r"(\d+)([smhd])", text)
    if found:
        return now - int(found.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[found.group(2)]
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.ClickException(f"--since {text!r}: use 30m, 2h, 7d or a date such as 2026-11-26T08:00") from None
    return int(moment.replace(tzinfo=moment.tzinfo or dt.UTC).timestamp())


@click.command("events")
@click.option("--phone", default="", help="Only this phone (or e-mail address).")
@click.option("--ip", "client_ip", default="", help="Only this client address.")
@click.option("--since", default="7d", show_default=True, help="30m, 2h, 7d, or a date and time (UTC).")
@click.option("--result", "event", default="", help=f"Only this event: {', '.join(EVENTS)}.")
@click.option("--limit", default="50", show_default=True, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_appcontext
def events(phone: str, client_ip: str, since: str, event: str, limit: str, as_json: bool) -> None:
    """The audit trail of logins, newest first."""
    services = current()
    if event and event not in EVENTS:
        raise click.ClickException(f"--result {event!r}: one of {', '.join(EVENTS)}")
    if not limit.isdigit() or not 1 <= int(limit) <= 100000:
        raise click.ClickException(f"--limit {limit!r}: a number from 1 to 100000")
    subject = services.auditor.subject(_stored(services, phone)) if phone else ""
    found = services.store.events(
        subject=subject, client_ip=client_ip, since=_since(since, services.now()), event=event, limit=int(limit)
    )
    if not as_json:
        _show_events(found)
        return
    for e in found:
        row = {
            "at": utc_text(e.at) + "Z",
            "event": e.event,
            "detail": e.detail,
            "address": e.shown,
            "subject": e.subject,
            "method": e.method,
            "appid": e.appid,
            "client_ip": e.client_ip,
            "request_id": e.request_id,
        }
        click.echo(json.dumps(row))


@click.command("unblock")
@click.argument("phone", required=False)
@click.option("--ip", "client_ip", default="", help="Unblock a client address instead.")
@with_appcontext
def unblock(phone: str | None, client_ip: str) -> None:
    """Clear the limits on PHONE (cooldown, sends, wrong answers) or on a client address (--ip)."""
    services = current()
    if bool(phone) == bool(client_ip):
        raise click.ClickException("name a PHONE or an --ip ADDRESS (one of them)")
    address = "" if client_ip else _address(services, phone or "")
    keys, patterns = services.limits.keys_of_ip(client_ip) if client_ip else services.limits.keys_of_subject(address)
    who = printable(client_ip or masked(address))
    # the keys hold the address's keyed hash: shown as its masked form
    cleared = [
        key.replace(services.codes.blind(address), who) if address else key
        for key in services.store.clear_counters(keys, patterns)
    ]
    click.echo(f"unblocked {who}: cleared {len(cleared)} counter(s){': ' + ', '.join(cleared) if cleared else ''}")


@click.command("delete-account")
@click.argument("account")
@click.option(
    "--address",
    default="",
    help="The user's mesibo address, for a login whose accounts are not "
    "addresses (LDAP, RADIUS, SQL: the directory maps user ids to addresses).",
)
@click.option("--keep-mesibo", is_flag=True, help="Only erase what this service holds; leave the user at mesibo.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def delete_account(account: str, address: str, keep_mesibo: bool, yes: bool) -> None:
    """Delete ACCOUNT (a phone, an e-mail address, a user id) as the deleteaccount op does: the user at
    mesibo first, then what this service holds about it (codes, limit counters, audit trail)."""
    from .auth.otp import CodeLogin

    services = current()
    subject, login = _address(services, account), services.login
    if not address and not isinstance(login, CodeLogin):
        raise click.ClickException(
            f"the {services.settings.auth.method!r} login names users by id: give the "
            "user's mesibo address with --address"
        )
    address = address or (login.normalize_address(account) if isinstance(login, CodeLogin) else None) or subject
    shown = printable(masked(address))
    if not yes:
        click.confirm(f"delete {shown}{'' if keep_mesibo else ' at mesibo and'} here?", abort=True)
    if not keep_mesibo:
        try:
            services.mesibo.delete_user(address, services.settings.mesibo.delete_op)
        except MesiboError as exc:
            raise click.ClickException(f"mesibo did not delete {shown} ({exc}): nothing was erased") from None
    gone = forget(services, subject, address)
    if services.auditor.enabled:  # that an account was deleted, and nothing about whose
        services.auditor.write(
            [
                Event(
                    services.now(),
                    "",
                    "",
                    EventName.DELETED,
                    "delete-account command",
                    services.settings.auth.method,
                    "",
                    "",
                    "",
                )
            ]
        )
        services.auditor.flush()
    click.echo(f"deleted {shown}{'' if keep_mesibo else ' at mesibo'}; erased {gone} row(s) held about it")


def init_app(app: Flask) -> None:
    for command in (status, events, unblock, delete_account):
        app.cli.add_command(command)
