"""Real processes for tests: the stand-in for mesibo and the service under gunicorn, on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class FakeMesibo:
    def __init__(self, app_token: str, latency_ms: float = 0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/backend/"
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "fake_mesibo.py"),
                "--port",
                str(self.port),
                "--app-token",
                app_token,
                "--latency-ms",
                str(latency_ms),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def _call(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", data=data, timeout=5) as answer:
            return json.load(answer)

    def stats(self) -> dict:
        return self._call("/_stats")

    def control(self, **settings) -> dict:
        return self._call("/_control", settings)

    def stop(self) -> None:
        stop(self.process)


class Service:
    """The service under gunicorn with the shipped configuration; its log goes to a file."""

    def __init__(
        self, tmp_path: Path, env: dict[str, str], *, workers: int = 2, port: int | None = None, bind: str | None = None
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = tmp_path / f"service-{self.port}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MESSENGER_", "MESIBO_", "OTP_"))}
        full_env.pop("DATABASE_URL", None)
        full_env.update(
            {
                "GUNICORN_WORKERS": str(workers),
                "GUNICORN_BIND": bind or f"127.0.0.1:{self.port}",
                "MESSENGER_INSTANCE_PATH": str(tmp_path / "instance"),
                **env,
            }
        )
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "wsgi:app"],
            cwd=ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.port, self.process)
            self.wait_for_workers(workers)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"gunicorn did not start:\n{self.log()}") from None

    def wait_for_workers(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.log().count("Booting worker with pid") < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} workers did not boot:\n{self.log()}")
            time.sleep(0.05)
        time.sleep(0.3)  # a booted worker still has to reach its accept loop

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop(self.process)
        self._log.close()
