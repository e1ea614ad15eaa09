"""Real processes on 127.0.0.1 that the tests and the benchmark both start: the stand-in for mesibo,
gunicorn with the shipped configuration, and nginx with the shipped site."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
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
    """The stand-in for mesibo; with ``tls`` (certificate, key) it serves HTTPS."""

    def __init__(self, app_token: str, latency_ms: float = 0, tls: tuple[Path, Path] | None = None):
        self.port = free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/backend/"
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tools" / "fake_mesibo.py"),
                "--port",
                str(self.port),
                "--app-token",
                app_token,
                "--latency-ms",
                str(latency_ms),
                *(["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def _call(self, path: str, body: dict | None = None) -> dict:
        import ssl

        data = json.dumps(body).encode() if body is not None else None
        scheme, context = ("https", ssl._create_unverified_context()) if self.tls else ("http", None)  # noqa: S323
        url = f"{scheme}://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, data=data, timeout=5, context=context) as answer:  # noqa: S310
            return json.load(answer)

    def stats(self) -> dict:
        return self._call("/_stats")

    def control(self, **settings) -> dict:
        return self._call("/_control", settings)

    def token_valid(self, token: str) -> bool:
        """Whether mesibo would still accept this user token (not revoked, its user not deleted)."""
        return bool(self._call("/_token?" + urllib.parse.urlencode({"token": token}))["valid"])

    def user(self, address: str) -> dict:
        """What the stand-in holds about an address: live tokens, a code, whether its stats name it."""
        return self._call("/_user?" + urllib.parse.urlencode({"address": address}))

    def stop(self) -> None:
        stop(self.process)


def clean_environment(**env: str) -> dict[str, str]:
    """This process's environment without the service's own variables, plus ``env``."""
    own = ("MESSENGER_", "MESIBO_", "OTP_", "GUNICORN_", "DATABASE_URL")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(own)}, **env}


class Service:
    """An app under gunicorn with the shipped configuration (the service by default); its log goes to
    a file in ``folder``."""

    def __init__(
        self,
        folder: Path,
        env: dict[str, str],
        *,
        workers: int = 2,
        port: int | None = None,
        bind: str | None = None,
        app: str = "wsgi:app",
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = folder / f"service-{self.port}.log"
        full_env = clean_environment(
            GUNICORN_WORKERS=str(workers),
            GUNICORN_BIND=bind or f"127.0.0.1:{self.port}",
            MESSENGER_INSTANCE_PATH=str(folder / "instance"),
            PYTHONPATH=f"{ROOT}:{ROOT / 'bench'}",
            **env,
        )
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), app],
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
        """Stop gunicorn and wait until its workers are gone too: a worker still finishing after its
        master exited would answer a proxy's kept-alive connection for a moment."""
        workers = [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", self.log())]
        stop(self.process)
        self._log.close()
        deadline = time.monotonic() + 15
        for pid in workers:
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except (ProcessLookupError, PermissionError):
                    break
                time.sleep(0.05)


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def unit_environment() -> dict[str, str]:
    """The Environment= lines of the shipped systemd unit."""
    text = (ROOT / "deploy" / "messenger-backend.service").read_text()
    return dict(line.split("=", 2)[1:] for line in text.splitlines() if line.startswith("Environment="))


def nginx_installed() -> bool:
    return os.path.exists(NGINX)


def site_config(
    listen_port: int, redirect_port: int, backend_port: int, logs: Path, tls: tuple[Path, Path] | None = None
) -> str:
    """deploy/nginx.conf on test ports, its access log in ``logs``: with ``tls`` (certificate, key)
    its TLS settings as shipped, else its TLS parts swapped for plain HTTP (HSTS kept: only a header)."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    text = re.sub(r"^\s*listen \[::\].*\n", "", text, flags=re.M)
    if tls:
        text = re.sub(r"ssl_certificate\s.*;", f"ssl_certificate {tls[0]};", text)
        text = re.sub(r"ssl_certificate_key\s.*;", f"ssl_certificate_key {tls[1]};", text)
        text = text.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{listen_port} ssl http2;")
    else:
        text = re.sub(r"^\s*ssl_\w+.*\n", "", text, flags=re.M)
        text = text.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{listen_port};")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{redirect_port};")
    text = text.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{backend_port};")
    text = text.replace("/var/log/nginx/", f"{logs}/")
    assert f"listen 127.0.0.1:{listen_port}" in text and f"127.0.0.1:{backend_port}" in text
    return text


class Nginx:
    """nginx with the shipped site in front of a backend port, in a folder of its own."""

    def __init__(
        self,
        folder: Path,
        backend_port: int,
        *,
        worker_connections: int = 4096,
        site_edit: Callable[[str], str] = lambda text: text,
        tls: tuple[Path, Path] | None = None,
    ):
        """``worker_connections``: as README, "Behind nginx", asks of the main nginx.conf."""
        self.port, redirect_port = free_port(), free_port()
        root = folder / "nginx"
        root.mkdir()
        root.chmod(0o777)
        self.root = root
        (root / "site.conf").write_text(site_edit(site_config(self.port, redirect_port, backend_port, root, tls)))
        # As root, nginx's workers would run as "nobody", who cannot write under pytest's private tmp folder.
        user = "user root;" if os.geteuid() == 0 else ""
        (root / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
worker_rlimit_nofile 8192;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/site.conf;
}}
""")
        command = [NGINX, "-c", str(root / "nginx.conf"), "-p", str(root)]
        check = subprocess.run([*command[:1], "-t", *command[1:]], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the configuration:\n{check.stderr}")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)

    def access_log(self) -> str:
        path = self.root / "messenger-backend.access.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        stop(self.process)


class PostgresCluster:
    """A PostgreSQL server of a test's own (initdb into a temporary folder, its own port), which the
    test may stop and start; the machine's server is never touched."""

    BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), Path("/usr/bin"))

    def __init__(self) -> None:
        import tempfile

        self.folder = Path(tempfile.mkdtemp(prefix="messenger-pg-"))
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    @staticmethod
    def available() -> bool:
        return (PostgresCluster.BIN / "initdb").exists()

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.BIN / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.folder / "data"), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def throwaway_ca(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A CA made for one test and a server certificate it signs for ``host``: (ca, cert, key) files."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messenger-backend test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        # Python 3.13 checks certificates strictly (VERIFY_X509_STRICT): key usage and key identifiers,
        # as every real CA's certificates have them
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class Slapd:
    """OpenLDAP (Debian's slapd) with a throwaway database, plain LDAP and LDAPS on ports of its own,
    the password-policy overlay (for locked accounts) and ``ldif`` loaded before it starts."""

    SUFFIX = "dc=example,dc=org"

    def __init__(self, folder: Path, ldif: str):
        self.folder = folder / "slapd"
        (self.folder / "db").mkdir(parents=True)
        self.ca, cert, key = throwaway_ca(self.folder)
        self.port, self.tls_port = free_port(), free_port()
        self.url, self.tls_url = f"ldap://127.0.0.1:{self.port}", f"ldaps://127.0.0.1:{self.tls_port}"
        schema = "\n".join(
            f"include /etc/ldap/schema/{name}.schema" for name in ("core", "cosine", "inetorgperson", "nis")
        )
        config = self.folder / "slapd.conf"
        config.write_text(f"""{schema}
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
pidfile {self.folder}/slapd.pid
TLSCACertificateFile {self.ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
database mdb
suffix "{self.SUFFIX}"
rootdn "cn=admin,{self.SUFFIX}"
rootpw admin-secret
directory {self.folder}/db
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{self.SUFFIX}"
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
""")
        (self.folder / "data.ldif").write_text(ldif)
        subprocess.run(
            ["/usr/sbin/slapadd", "-f", str(config), "-l", str(self.folder / "data.ldif")],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._log = open(self.folder / "slapd.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            # -d 256: its statistics (one line per operation: BIND dn=..., RESULT err=...) into the log
            ["/usr/sbin/slapd", "-f", str(config), "-h", f"{self.url} {self.tls_url}", "-d", "256"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.process)
        wait_for_port(self.tls_port, self.process)

    @staticmethod
    def available() -> bool:
        return os.path.exists("/usr/sbin/slapd") and os.path.exists("/usr/lib/ldap/ppolicy.la")

    def binds(self) -> list[str]:
        """The DN of every bind slapd has seen so far, in order (once its log has stopped growing:
        slapd writes a line when an operation is done, a moment after it answered)."""
        path, size = self.folder / "slapd.log", -1
        while size != path.stat().st_size:
            size = path.stat().st_size
            time.sleep(0.1)
        return re.findall(r' BIND dn="([^"]*)" method=', path.read_text(errors="replace"))

    def stop(self) -> None:
        stop(self.process)
        self._log.close()


class FreeRadius:
    """FreeRADIUS (Debian's freeradius) with a configuration folder of its own - Debian's, copied,
    on a port of its own, with one client (127.0.0.1 and ``secret``) and ``users`` for its users file;
    ``reject_delay``: seconds it holds back an Access-Reject (Debian's: 1)."""

    def __init__(self, folder: Path, secret: str, users: str, reject_delay: int | None = None):
        self.folder = folder / "raddb"
        shutil.copytree("/etc/freeradius/3.0", self.folder, symlinks=True)
        self.port = free_port()
        (self.folder / "clients.conf").write_text(
            f"client local {{\n  ipaddr = 127.0.0.1\n  secret = {secret}\n  require_message_authenticator = yes\n}}\n"
        )
        (self.folder / "mods-config" / "files" / "authorize").write_text(users)
        default = self.folder / "sites-enabled" / "default"
        text = (self.folder / "sites-available" / "default").read_text()
        # every listen section on a port of its own (Debian's listen on 1812/1813 on every address)
        text = text.replace("\tport = 0", f"\tport = {self.port}", 1)  # the first one: auth on IPv4
        while "\tport = 0" in text:
            text = text.replace("\tport = 0", f"\tport = {free_port()}", 1)
        default.unlink()
        default.write_text(text)
        for site in ("inner-tunnel",):
            with contextlib.suppress(FileNotFoundError):
                (self.folder / "sites-enabled" / site).unlink()
        config = (self.folder / "radiusd.conf").read_text()
        config = re.sub(r"^\s*(user|group) = .*$", "", config, flags=re.M)  # run as whoever starts it
        if reject_delay is not None:
            config = re.sub(r"^(\s*)reject_delay = \d+", rf"\g<1>reject_delay = {reject_delay}", config, flags=re.M)
        (self.folder / "radiusd.conf").write_text(config)
        self._log = open(folder / "freeradius.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["/usr/sbin/freeradius", "-f", "-d", str(self.folder), "-l", "stdout"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while b"Ready to process requests" not in (folder / "freeradius.log").read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("freeradius did not start:\n" + (folder / "freeradius.log").read_text())
            time.sleep(0.1)

    @staticmethod
    def available() -> bool:
        return os.path.exists("/usr/sbin/freeradius") and os.path.isdir("/etc/freeradius/3.0")

    def stop(self) -> None:
        stop(self.process)
        self._log.close()
