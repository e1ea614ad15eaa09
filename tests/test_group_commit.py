"""Group commit (app.store.group): under gevent, concurrent requests' writes share one SQLite
transaction, and each is still all-or-nothing. Run in a process of its own with the standard library
patched, as the shipped gunicorn configuration runs the workers; SQLite's own statement trace counts
the commits."""

from __future__ import annotations

import json
import subprocess
import sys

from tools.processes import ROOT

SCRIPT = r"""
from gevent import monkey

monkey.patch_all()

import json, sqlite3, sys
import gevent
from app.store import CodeRecord, Refused, Rule
from app.store.sqlite import SqliteStore

store = SqliteStore(sys.argv[1])
store.migrate()
statements = []
store._conn.get().set_trace_callback(statements.append)  # SQLite reports every statement it runs
NOW = 1_800_000_000
out = {}

def commits():
    return sum(1 for s in statements if s.strip().upper() == "COMMIT")

def issue(n, rules=()):
    try:
        store.issue(CodeRecord(f"a{n}", "app", f"digest-{n}", NOW + 300), [Rule(f"send:a{n}", 5, 3600), *rules], NOW)
        return "OK"
    except Refused as exc:
        return exc.key

# 40 requests at once, one of them refused by a rule it has used up
store.hit([Rule("full", 1, 3600)], NOW)
before = commits()
results = [g.value for g in gevent.joinall([gevent.spawn(issue, n, [Rule("full", 1, 3600)] if n == 7 else [])
                                           for n in range(40)])]
out["results"] = results
out["commits"] = commits() - before
with sqlite3.connect(sys.argv[1]) as db:
    out["codes"] = sorted(row[0] for row in db.execute("SELECT address FROM codes"))
    out["counted"] = dict(db.execute("SELECT key, count FROM counters WHERE key IN ('full', 'send:a7', 'send:a8')"))
db.close()

# ten right answers to one code at once: exactly one claims it
store.issue(CodeRecord("b", "app", "right", NOW + 300), [], NOW)
claims = gevent.joinall([gevent.spawn(store.check_code, "b", "app", [], NOW, 5, lambda d: d == "right")
                         for _ in range(10)])
out["claimed"] = sum(1 for g in claims if g.value is not None)

# a database error in one request's work fails the whole batch: nothing of it is kept
def broken(cur):
    cur.execute("INSERT INTO no_such_table VALUES (1)")

def guarded(call):
    try:
        call()
        return "OK"
    except sqlite3.Error as exc:
        return type(exc).__name__

jobs = [gevent.spawn(guarded, lambda n=n: store.issue(CodeRecord(f"c{n}", "app", "d", NOW + 300), [], NOW))
        for n in range(5)]
jobs.append(gevent.spawn(guarded, lambda: store._atomically(broken)))
out["failed_batch"] = [g.value for g in gevent.joinall(jobs)]
with sqlite3.connect(sys.argv[1]) as db:
    out["kept_of_failed_batch"] = db.execute("SELECT COUNT(*) FROM codes WHERE address LIKE 'c%'").fetchone()[0]
db.close()
store.close()
print(json.dumps(out))
"""


def run(tmp_path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "group.db")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_concurrent_writes_share_commits_and_each_stays_all_or_nothing(tmp_path):
    out = run(tmp_path)
    assert out["results"] == ["OK"] * 7 + ["full"] + ["OK"] * 32
    assert out["commits"] < 10, out["commits"]  # 40 writes, a commit each before
    assert out["codes"] == sorted(f"a{n}" for n in range(40) if n != 7)  # the refused one stored nothing
    assert out["counted"] == {"full": 1, "send:a8": 1}  # ... and counted nothing, its savepoint rolled back
    assert out["claimed"] == 1  # single use holds inside a shared transaction
    assert out["failed_batch"] == ["OperationalError"] * 6 and out["kept_of_failed_batch"] == 0
