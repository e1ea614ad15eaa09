"""What the built package carries, and that an install from the wheel alone runs (issue 23, item 3):
the ``messenger-backend`` command serves with the configuration the wheel carries, writes the
deployment files out, runs the support commands, and nothing is written into site-packages."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from helpers import APP_TOKEN, OTP_SECRET

from tools.processes import free_port, stop, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [
    "gunicorn.conf.py",
    "nginx.conf",
    "messenger-backend.service",
    "messenger-purge.service",
    "messenger-purge.timer",
    "config.example.toml",
    "monitoring/alerts.yml",
    "monitoring/alerts.test.yml",
    "monitoring/grafana-dashboard.json",
]


@pytest.fixture(name="wheel", scope="module")
def _wheel(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    return next(folder.glob("*.whl"))


pytestmark = pytest.mark.slow  # builds the wheel


def test_the_wheel_ships_its_type_hints_its_api_description_and_its_deployment_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "app/py.typed" in names and "app/openapi.json" in names
    assert [name for name in SHIPPED if f"app/deploy/{name}" not in names] == []
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "messenger-backend = app.console:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.fixture(name="installed", scope="module")
def _installed(wheel, tmp_path_factory):
    """A venv with the wheel alone installed; its dependencies come from this venv (a .pth line: this
    venv's own editable install of the checkout is not seen there)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    packages = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (packages / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return venv, packages


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


def test_the_installed_command_serves_and_writes_the_deployment_files_out(installed, tmp_path):
    venv, packages = installed
    command = venv / "bin" / "messenger-backend"
    before = files_under(packages / "app")
    work = tmp_path / "work"
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MESSENGER_", "MESIBO_", "OTP_", "GUNICORN_", "DATABASE_URL", "PYTHONPATH"))
    }

    # the deployment files, as an operator with no checkout gets them
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(command), *args], cwd=work, env=env, capture_output=True, text=True, timeout=60)

    written = run("deploy-files", str(tmp_path / "deploy"))
    assert written.returncode == 0, written.stderr
    assert sorted(files_under(tmp_path / "deploy") - {"monitoring"}) == sorted(SHIPPED)
    assert (tmp_path / "deploy" / "nginx.conf").read_text() == (ROOT / "deploy" / "nginx.conf").read_text()
    again = run("deploy-files", str(tmp_path / "deploy"))
    assert again.returncode != 0 and "--force" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    # a support command, run from the wheel
    migrated = run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    # serve: gunicorn with the configuration the wheel carries, answering a login
    port, log_path = free_port(), tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(
            [str(command), "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=work,
            env={**env, "MESIBO_APP_TOKEN": APP_TOKEN, "OTP_SECRET": OTP_SECRET},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, server)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/",
            method="POST",
            data=b'{"op":"login","phone":"18005551234","appid":"com.example"}',
            headers={"Content-Type": "application/json"},
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = json.load(urllib.request.urlopen(request, timeout=5))  # noqa: S310 - our own port
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert answer["op"] == "login" and answer["result"] == "OK"
    finally:
        stop(server)
    log = log_path.read_text(errors="replace")
    assert "messenger backend ready" in log, log[-2000:]
    assert files_under(packages / "app") == before  # nothing written into site-packages


def test_the_reference_generator_refuses_to_write_into_an_install(installed, tmp_path):
    venv, _ = installed
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "app.reference"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "this is an install" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_health_check_command_asks_the_port_gunicorn_binds(monkeypatch):
    """`messenger-backend healthcheck` (the container's HEALTHCHECK): 0 while /healthz answers 200 at
    GUNICORN_BIND's port, 1 with one line when nothing answers there."""
    import http.server
    import threading

    from click.testing import CliRunner

    from app.console import main

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the standard library's name
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("GUNICORN_BIND", f"0.0.0.0:{server.server_port}")
        healthy = CliRunner().invoke(main, ["healthcheck"])
        monkeypatch.setenv("GUNICORN_BIND", f"127.0.0.1:{free_port()}")
        down = CliRunner().invoke(main, ["healthcheck", "--timeout", "1"])
    finally:
        server.shutdown()
        server.server_close()
    assert healthy.exit_code == 0 and "healthy" in healthy.output
    assert down.exit_code == 1 and len(down.output.strip().splitlines()) == 1 and "/healthz" in down.output
