"""The container image (Containerfile), built and run for real with podman.

No registry can be reached here, so the base is a Debian 12 with Python 3.11 that the test makes
with debootstrap from Debian's own archive (kept as a local image for later runs, given this
machine's certificate authorities so pip inside the build reaches PyPI as the machine does); the
Containerfile takes it through its BASE argument in place of python:3.11-slim. The image then runs
as it would in production: read-only root filesystem, a CPU limit, its secrets as files, PostgreSQL
for the store, and a full login against the mesibo stand-in.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import APP_TOKEN, OTP_SECRET, postgres_schema, postgres_url

from tools.processes import ROOT, FakeMesibo, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not shutil.which("podman"),
        reason="podman is not installed (.ci/run installs it: apt-get install podman runc debootstrap)",
    ),
]

BASE = "localhost/messenger-backend-base:bookworm"
IMAGE = "localhost/messenger-backend:test"
# runc with cgroupfs and ulimits within this machine's own: what works in a sandbox that gives
# podman no systemd and no CAP_SYS_RESOURCE (crun refuses to run there); on a usual host too
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
LIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=check)


def make_base() -> None:
    """Debian 12 with python3 and venv, from Debian's archive, imported as BASE (once per machine)."""
    if podman("image", "exists", BASE, check=False).returncode == 0:
        return
    if not shutil.which("debootstrap"):
        pytest.fail("debootstrap is not installed (.ci/run installs it)")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as folder:
        root = Path(folder) / "root"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(root),
                "http://deb.debian.org/debian",
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        # the machine's own trust store: its way to PyPI may pass through an authority of its own
        shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            [*PODMAN, "import", "-q", "-", BASE], stdin=tar.stdout, check=True, capture_output=True, timeout=600
        )
        tar.wait(60)


@pytest.fixture(scope="module", name="image")
def _image() -> str:
    make_base()
    built = podman(
        "build",
        "--network",
        "host",
        *LIMITS,
        "--format",
        "docker",
        "--build-arg",
        f"BASE={BASE}",
        "-t",
        IMAGE,
        "-f",
        "Containerfile",
        str(ROOT),
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return IMAGE


def call(port: int, body: dict, timeout: float = 20) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - our own local service
        return json.load(answer)


def wait_healthy(port: int, name: str) -> None:
    ends = time.monotonic() + 60
    while time.monotonic() < ends:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):  # noqa: S310
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail("the container did not answer /healthz:\n" + podman("logs", name, check=False).stderr[-3000:])


def test_the_image_is_small_and_runs_as_its_own_user(image):
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["messenger-backend"] and config["Cmd"] == ["serve"]
    assert config["StopSignal"] == "SIGTERM"
    assert inspected["Healthcheck"]["Test"] == ["CMD", "messenger-backend", "healthcheck"]
    assert "MESSENGER_INSTANCE_PATH=/var/lib/messenger" in config["Env"]
    listed = podman(
        "run",
        "--rm",
        *LIMITS,
        "--network",
        "none",
        "--entrypoint",
        "sh",
        image,
        "-c",
        "ls /opt/messenger/lib/python3*/site-packages; ls -A /src 2>&1; id -u",
    )
    assert "app" in listed.stdout.split() and "gunicorn" in listed.stdout.split()
    assert "No such file" in listed.stdout and listed.stdout.split()[-1] == "10001"  # no sources, not root


@pytest.mark.postgres
@pytest.mark.skipif(not postgres_url(), reason="TEST_DATABASE_URL is not set")
def test_the_container_logs_in_read_only_with_its_secrets_as_files_and_stops_gracefully(image, tmp_path):
    """Read-only root, non-root, one CPU (so one worker, on a machine of two), PostgreSQL through
    DATABASE_URL_FILE, the token and key through *_FILE; a full login; the health check; and a
    login still waiting on mesibo when the container is told to stop gets its answer."""
    fake = FakeMesibo(APP_TOKEN)
    port, name = free_port(), f"messenger-test-{free_port()}"
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    with postgres_schema("container") as url:
        for secret, value in (("database_url", url), ("mesibo_app_token", APP_TOKEN), ("otp_secret", OTP_SECRET)):
            (secrets / secret).write_text(value + "\n")
            (secrets / secret).chmod(0o644)
        started = podman(
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "--read-only",
            "--cpus",
            "1",
            *LIMITS,
            "-v",
            f"{secrets}:/run/secrets:ro",
            "-e",
            f"GUNICORN_BIND=127.0.0.1:{port}",
            "-e",
            "DATABASE_URL_FILE=/run/secrets/database_url",
            "-e",
            "MESIBO_APP_TOKEN_FILE=/run/secrets/mesibo_app_token",
            "-e",
            "OTP_SECRET_FILE=/run/secrets/otp_secret",
            "-e",
            f"MESIBO_API_URL={fake.url}",
            "-e",
            "MESSENGER_SENDER_NAME=log",
            image,
            check=False,
        )
        try:
            assert started.returncode == 0, started.stderr
            wait_healthy(port, name)
            assert call(port, {"op": "login", "appid": "app", "phone": "12015550123"})["result"] == "OK"
            logs = podman("logs", name).stderr
            code = re.findall(r"login code for 12015550123: (\d+)", logs)[-1]
            answer = call(port, {"op": "login", "appid": "app", "phone": "12015550123", "otp": code})
            assert answer["result"] == "OK" and answer["token"], answer
            assert fake.stats().get("useradd") == 1
            assert logs.count("Booting worker") == 1, logs  # the CPU limit, not the machine's two cores
            assert APP_TOKEN not in logs and OTP_SECRET not in logs
            assert podman("healthcheck", "run", name, check=False).returncode == 0
            inside = podman("exec", name, "sh", "-c", "id -u; touch /opt/x 2>&1; cat /proc/1/cmdline | tr '\\0' ' '")
            assert inside.stdout.splitlines()[0] == "10001"
            assert "Read-only file system" in inside.stdout and "gunicorn" in inside.stdout  # PID 1: the master

            fake.control(latency_ms=3000)
            held: list[dict] = []
            call(port, {"op": "login", "appid": "app", "phone": "12015550124"})  # a code for another user
            second = re.findall(r"login code for 12015550124: (\d+)", podman("logs", name).stderr)[-1]
            waiting = threading.Thread(
                target=lambda: held.append(
                    call(port, {"op": "login", "appid": "app", "phone": "12015550124", "otp": second})
                )
            )
            waiting.start()
            time.sleep(1)  # the login now waits on mesibo
            began = time.monotonic()
            podman("stop", "-t", "30", name, timeout=60)
            waiting.join(10)
            state = json.loads(podman("inspect", name).stdout)[0]["State"]
            assert held and held[0]["result"] == "OK", held  # answered, not cut off
            assert state["ExitCode"] == 0 and time.monotonic() - began < 20, state
        finally:
            podman("rm", "-f", name, check=False)
            fake.stop()
