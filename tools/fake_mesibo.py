"""A local stand-in for mesibo's backend API, for trying the service offline and for benchmarks.

    python tools/fake_mesibo.py --port 8999 --app-token dev-app-token [--latency-ms 50]

It answers ``useradd`` in both API styles (JSON POST to ``/backend/``, GET ``/api.php``)
with a fresh user token, ``usersget`` (what ``flask check`` calls), ``userdel`` (the user and its
tokens go), ``userset`` with ``user.token.remove`` (the user's tokens go - mesibo's own PHP helper
deletes tokens so) and ``usertokendel``; and it manages codes as mesibo does: ``otp`` makes one for
an address (tries, expiry, reuse), and a ``useradd`` that carries ``otp`` mints only with that code.
It remembers the tokens it minted: ``GET /_token?token=...`` answers whether mesibo would still
accept one (a revoked one, or one of a deleted user, it would not), ``GET /_user?address=...``
what it holds about an address.
An app token other than ``--app-token`` gets ``AUTHFAIL`` (``--app-token ''`` accepts any).

Behaviour can be changed while it runs, for tests and demos:

    curl -d '{"latency_ms": 50, "fail": "http500"}' http://127.0.0.1:8999/_control
    curl http://127.0.0.1:8999/_stats        # {"useradd": 12, "tokens": [...last 100...], ...}

``fail`` is one of: none, http500, garbage, authfail, baduser, hang (never answers), trickle (the
whole answer one byte every 0.5 s), stall (the status line and headers, then nothing).
It is a single asyncio process with HTTP/1.1 keep-alive, so added latency costs no thread.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import secrets
import signal
import ssl
import time
from urllib.parse import parse_qsl, urlsplit

FAILURES = ("none", "http500", "garbage", "authfail", "baduser", "hang", "trickle", "stall")


class StandIn:
    def __init__(self, app_token: str, latency_ms: float, fail: str):
        self.app_token = app_token
        self.latency = latency_ms / 1000
        self.fail = fail
        self.counts: collections.Counter[str] = collections.Counter()
        self.tokens: collections.deque[dict] = collections.deque(maxlen=100)
        self.codes: dict[str, list] = {}  # address -> [code, tries left, expires at]
        self.live: dict[str, tuple[str, str]] = {}  # token -> (address, appid), oldest first
        self.received: collections.deque[dict] = collections.deque(maxlen=100)  # the last requests, as sent

    LIVE_TOKENS = 500_000  # the oldest are forgotten past this (a benchmark mints many)

    def user(self, address: str) -> dict:
        tokens = [appid for owner, appid in self.live.values() if owner == address]
        named = any(row["address"] == address for row in self.tokens) or any(
            address in json.dumps(request) for request in self.received if request.get("op") != "userdel"
        )
        return {
            "address": address,
            "tokens": len(tokens),
            "appids": sorted(set(tokens)),
            "code": address in self.codes,
            "named_in_stats": named,
        }

    def forget_user(self, address: str, appid: str = "") -> int:
        gone = [token for token, (owner, app) in self.live.items() if owner == address and appid in ("", app)]
        for token in gone:
            del self.live[token]
        if not appid:
            self.codes.pop(address, None)
            kept = [row for row in self.tokens if row["address"] != address]
            self.tokens.clear()
            self.tokens.extend(kept)
            kept_requests = [r for r in self.received if address not in json.dumps(r)]
            self.received.clear()
            self.received.extend(kept_requests)
        return len(gone)

    def control(self, body: dict) -> dict:
        if "latency_ms" in body:
            self.latency = float(body["latency_ms"]) / 1000
        if "fail" in body:
            if body["fail"] not in FAILURES:
                return {"result": False, "error": f"fail must be one of {FAILURES}"}
            self.fail = body["fail"]
        if body.get("reset"):
            self.counts.clear()
            self.tokens.clear()
            self.received.clear()
        return {"result": True, "latency_ms": self.latency * 1000, "fail": self.fail}

    def stats(self) -> dict:
        return {"result": True, **self.counts, "tokens": list(self.tokens), "requests": list(self.received)}

    def api(self, request: dict) -> tuple[int, bytes]:
        """Answer one mesibo API request; returns (HTTP status, body)."""
        op = str(request.get("op", ""))
        self.counts[op or "none"] += 1
        self.received.append(
            {key: value for key, value in request.items() if key != "token"}
            | {
                "app_token_sent": request.get("token") == self.app_token
                if self.app_token
                else bool(request.get("token"))
            }
        )
        if self.fail == "http500":
            return 500, b"<html>Internal Server Error</html>"
        if self.fail == "garbage":
            return 200, b"<html>not json</html>"
        if self.fail == "authfail" or (self.app_token and request.get("token") != self.app_token):
            return 200, json.dumps({"result": False, "error": "AUTHFAIL"}).encode()
        if op == "otp":
            spec = request.get("otp") if isinstance(request.get("otp"), dict) else request
            address = str(spec.get("address") or spec.get("addr") or "")
            if not address:
                return 200, json.dumps({"result": False, "error": "MISSINGPARAM"}).encode()
            live = self.codes.get(address)
            if not (live and live[2] > time.time() and str(spec.get("reuse", "0")) in ("1", "True", "true")):
                expires = time.time() + int(spec.get("expiry", 300))
                live = [f"{secrets.randbelow(10**6):06d}", int(spec.get("tries", 5)), expires]
                self.codes[address] = live
            return 200, json.dumps({"result": True, "otp": live[0]}).encode()
        if op == "useradd":
            if self.fail == "baduser":
                return 200, json.dumps({"result": False, "error": "BADADDRESS"}).encode()
            user = request.get("user") if isinstance(request.get("user"), dict) else {}
            address = user.get("address") or request.get("addr") or ""
            answer = user.get("otp") or request.get("otp")
            if answer is not None:
                live = self.codes.get(address)
                if not live or live[2] <= time.time() or live[1] <= 0:
                    return 200, json.dumps({"result": False, "error": "OTPEXPIRED"}).encode()
                if str(answer) != live[0]:
                    live[1] -= 1
                    return 200, json.dumps({"result": False, "error": "BADOTP"}).encode()
                del self.codes[address]
                self.counts["useradd-with-otp"] += 1
            token_spec = user.get("token") if isinstance(user.get("token"), dict) else {}
            appid = token_spec.get("appid") or request.get("appid") or ""
            if not address or not appid:
                return 200, json.dumps({"result": False, "error": "MISSINGPARAM"}).encode()
            token = secrets.token_hex(24)
            self.tokens.append({"address": address, "appid": appid, "token": token})
            self.live[token] = (address, appid)
            if len(self.live) > self.LIVE_TOKENS:
                del self.live[next(iter(self.live))]
            uid = abs(hash(address)) % 10_000_000
            return 200, json.dumps({"result": True, "user": {"uid": uid, "token": token}}).encode()
        user = request.get("user") if isinstance(request.get("user"), dict) else {}
        address = str(user.get("address") or request.get("addr") or "")
        if op == "userdel":
            if self.fail == "baduser":
                return 200, json.dumps({"result": False, "error": "NOUSER"}).encode()
            if not address:
                return 200, json.dumps({"result": False, "error": "MISSINGPARAM"}).encode()
            self.forget_user(address)
            return 200, json.dumps({"result": True}).encode()
        if op == "userset":
            spec = user.get("token") if isinstance(user.get("token"), dict) else {}
            if not address:
                return 200, json.dumps({"result": False, "error": "MISSINGPARAM"}).encode()
            if spec.get("remove") is True or str(request.get("remove", "")) in ("1", "true"):
                removed = self.forget_user(address, str(spec.get("appid") or request.get("appid") or ""))
                self.counts["tokens-removed"] += removed
            return 200, json.dumps({"result": True}).encode()
        if op in ("usersget", "usertokendel"):
            return 200, json.dumps({"result": True, "users": []}).encode()
        return 200, json.dumps({"result": False, "error": "BADOP"}).encode()


async def handle(stand_in: StandIn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            method, target, _ = line.decode("latin-1").split(" ", 2)
            headers = {}
            while True:
                header = await reader.readline()
                if header in (b"\r\n", b"\n", b""):
                    break
                name, _, value = header.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
            url = urlsplit(target)
            if url.path == "/_control":
                status, payload = 200, json.dumps(stand_in.control(json.loads(body or b"{}"))).encode()
            elif url.path == "/_stats":
                status, payload = 200, json.dumps(stand_in.stats()).encode()
            elif url.path == "/_token":
                token = dict(parse_qsl(url.query)).get("token", "")
                status, payload = 200, json.dumps({"valid": token in stand_in.live}).encode()
            elif url.path == "/_user":
                status, payload = 200, json.dumps(stand_in.user(dict(parse_qsl(url.query)).get("address", ""))).encode()
            else:
                request = dict(parse_qsl(url.query))
                if method == "POST" and body:
                    try:
                        request.update(json.loads(body))
                    except ValueError:
                        request = {}
                stand_in.counts[f"{request.get('op', 'none')}-received"] += 1  # before any latency
                if stand_in.fail == "hang":
                    await asyncio.sleep(3600)
                if stand_in.latency:
                    await asyncio.sleep(stand_in.latency)
                status, payload = stand_in.api(request)
            reason = "OK" if status == 200 else "Error"
            answer = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            own = url.path in ("/_control", "/_stats", "/_token", "/_user")
            if stand_in.fail == "trickle" and not own:
                for byte in answer:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.5)
            elif stand_in.fail == "stall" and not own:
                writer.write(answer[: answer.index(b"\r\n\r\n") + 4])
                await writer.drain()
                await asyncio.sleep(3600)
            else:
                writer.write(answer)
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                break
    except (ConnectionError, ValueError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(host: str, port: int, stand_in: StandIn, tls: ssl.SSLContext | None = None) -> None:
    server = await asyncio.start_server(lambda r, w: handle(stand_in, r, w), host, port, backlog=1024, ssl=tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake mesibo listening on http://{host}:{server.sockets[0].getsockname()[1]}/backend/", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--app-token", default="dev-app-token", help="the app token it accepts ('' accepts any)")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fail", choices=FAILURES, default="none")
    parser.add_argument("--tls-cert", default="", help="serve HTTPS with this certificate (PEM) ...")
    parser.add_argument("--tls-key", default="", help="... and this key")
    args = parser.parse_args(argv)
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.host, args.port, StandIn(args.app_token, args.latency_ms, args.fail), tls))


if __name__ == "__main__":
    main()
