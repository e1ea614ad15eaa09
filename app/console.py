"""``messenger-backend``: the service's own command, for installs from a wheel as from a checkout.

    messenger-backend serve [GUNICORN OPTIONS]   gunicorn with the shipped configuration
    messenger-backend deploy-files FOLDER        the shipped deployment files, to adapt
    messenger-backend healthcheck                /healthz of the service on this machine (a container's)
    messenger-backend check | migrate | purge | status | events | unblock | ...
                                                 every ``flask --app app`` command

``serve`` runs gunicorn with the configuration the package carries (``app/deploy/gunicorn.conf.py``,
the file ``deploy/`` of a checkout names) and ``app:create_app()``; options after it go to gunicorn
(``--bind 0.0.0.0:8000``). ``deploy-files`` writes the gunicorn configuration, the nginx site, the
systemd units, the example configuration and the monitoring rules into a folder (never over a file
unless ``--force``), for an install that has no checkout to copy them from.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click
from flask.cli import FlaskGroup

DEPLOY = Path(__file__).resolve().parent / "deploy"


def _create_app():  # Flask's factory
    from . import create_app

    return create_app()


@click.group(
    cls=FlaskGroup, create_app=_create_app, add_default_commands=False, add_version_option=False, load_dotenv=False
)
def main() -> None:
    """messenger-backend: the private API backend for the mesibo messenger apps."""


@main.command(
    "serve", context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}
)
@click.argument("gunicorn_options", nargs=-1, type=click.UNPROCESSED)
def serve(gunicorn_options: tuple[str, ...]) -> None:
    """Start the service under gunicorn with the shipped configuration (options go to gunicorn)."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(DEPLOY / "gunicorn.conf.py"),
        *gunicorn_options,
        "app:create_app()",
    ]
    os.execv(sys.executable, command)  # noqa: S606 - gunicorn takes this process over, as a unit expects


@main.command("deploy-files")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Write over files that are there.")
def deploy_files(folder: Path, force: bool) -> None:
    """Write the shipped deployment files into FOLDER: gunicorn.conf.py, nginx.conf, the systemd
    units, config.example.toml and monitoring/ (Prometheus rules and their tests, a dashboard)."""
    files = sorted(p for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    targets = [(source, folder / source.relative_to(DEPLOY)) for source in files]
    there = [str(target) for _, target in targets if target.exists()]
    if there and not force:
        raise click.ClickException(f"{there[0]} is there already (--force writes over it)")
    for source, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        click.echo(f"wrote {target}")


@main.command("healthcheck")
@click.option("--timeout", default=2.0, show_default=True, help="Seconds to wait for the answer.")
def healthcheck(timeout: float) -> None:
    """Ask the service on this machine for /healthz (at the port of GUNICORN_BIND, else 8000): exit 0
    when it answers 200 - a container's HEALTHCHECK. It builds no app and opens no database."""
    import urllib.error
    import urllib.request

    bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
    port = bind.rsplit(":", 1)[-1] if ":" in bind and not bind.startswith("unix:") else "8000"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as answer:  # noqa: S310
            status = answer.status
    except (OSError, urllib.error.URLError) as exc:
        raise click.ClickException(f"no answer from http://127.0.0.1:{port}/healthz ({exc})") from None
    click.echo(f"healthy (HTTP {status})")


if __name__ == "__main__":
    main()
