"""The shipped gunicorn configuration's worker count: the CPUs a container may use, not the host's
(issue 23). The function is taken from deploy/gunicorn.conf.py as it is (importing the file would
patch this process with gevent)."""

from __future__ import annotations

import ast
import multiprocessing
import os
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py"


def usable_cpus():
    tree = ast.parse(CONF.read_text())
    found = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "usable_cpus")
    namespace = {"os": os, "multiprocessing": multiprocessing}
    exec(compile(ast.Module(body=[found], type_ignores=[]), str(CONF), "exec"), namespace)  # noqa: S102
    return namespace["usable_cpus"]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, 2),  # cgroup v2: 1.5 CPUs -> 2 workers
        ({"cpu.max": "50000 100000\n"}, 1),  # half a CPU -> 1
        ({"cpu.max": "max 100000\n"}, None),  # no quota: the CPUs it may run on
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # no cgroup files at all
    ],
)
def test_workers_follow_the_containers_cpu_quota(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    allowed = len(os.sched_getaffinity(0))
    assert usable_cpus()(str(tmp_path)) == (min(expected, allowed) if expected else allowed)
