"""The floor plus the one thing step 1 cannot do without: the floor's bare Flask JSON route
(bench/baseline.py), which also counts a send against step 1's four limit counters (cooldown and
sends for the phone's keyed hash, the global budget, the client address) and stores a code, in one
transaction of the service's own SQLite store - its writer lock included. No phone validation, no
limits engine, no audit trail, no log record, no metrics, no sender: what is left of step 1 when
everything but its one transaction is taken away. The benchmark runs it under the same gunicorn
settings and reports it as a reference, beside the floor: the lowest a step 1 on this store could
cost (docs/PERFORMANCE.md)."""

import hashlib
import hmac
import json
import os
import secrets
import time

from flask import Flask, Response, request

from app.store import CodeRecord, Rule, open_store

app = Flask(__name__)
ANSWER = json.dumps({"op": "login", "ts": 0, "result": "OK"})
KEY = b"bench-floor-with-store-key"
store = open_store(os.environ["DATABASE_URL"])  # a connection per process, made after the fork
store.migrate()


@app.post("/")
def endpoint():
    phone = str(json.loads(request.get_data()).get("phone", ""))
    subject = hmac.new(KEY, phone.encode(), hashlib.sha256).hexdigest()[:32]
    now = int(time.time())
    rules = [
        Rule(f"cooldown:{subject}", 1, 60),
        Rule(f"send:{subject}", 5, 3600),
        Rule("send-all", 1_000_000, 3600),
        Rule(f"send-ip:{request.remote_addr}", 1_000_000, 3600),
    ]
    code = f"{secrets.randbelow(10**6):06d}"
    digest = hmac.new(KEY, f"{subject}:bench:{code}".encode(), hashlib.sha256).hexdigest()
    store.issue(CodeRecord(subject, "bench", digest, now + 300), rules, now)
    return Response(ANSWER, mimetype="application/json")
