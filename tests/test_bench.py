"""The benchmark harness works end to end (``bench/run.py --quick``). No timing is asserted here:
speed is measured by the benchmark itself, as ratios within one run (docs/PERFORMANCE.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tools.processes import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (.ci/run installs Debian's wrk)"),
]


def test_quick_benchmark_runs_every_scenario(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [report] = tmp_path.glob("bench-*.json")
    summary = json.loads(report.read_text())["summary"]
    for scenario in ("stand-in", "baseline", "a", "b", "c", "d", "e-empty", "e-full"):
        assert summary[scenario]["rps"] > 0, scenario
        assert summary[scenario]["p99_ms"] >= summary[scenario]["p50_ms"] > 0
    assert len(summary["pss_mib_per_worker"]) == 2
    assert [sum(split) for split in summary["connections_per_worker"]] == [64]  # wrk's connections, all found
    held = summary["held_logins"]
    assert held["answered"] == held["held"] > 0 and held["probes"] > 0  # every held login got its envelope
    assert summary["rss_growth"]["requests"] >= 2000
    outcomes = summary["outcomes"]
    # the load really exercised the paths it names: codes sent, codes proved, floods refused
    assert outcomes.get('{error="",op="login",result="OK"}', 0) > 100
    assert outcomes.get('{error="RATELIMIT",op="login",result="FAIL"}', 0) > 100
    assert not any(code in key for key in outcomes for code in ("INTERNAL", "BADAPP", "BADPHONE", "BADCODE"))
    assert "| (a) step 1" in (next(tmp_path.glob("bench-*.md"))).read_text()
