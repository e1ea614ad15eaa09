"""The shipped systemd units are hardened (systemd-analyze security, offline)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", ["messenger-backend.service", "messenger-purge.service"])
def test_units_score_ok_in_systemd_analyze_security(unit):
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(DEPLOY / unit)], capture_output=True, text=True
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= 4.0, done.stdout[-2000:]
