"""linewatch's processes share their cores (a worker with the service, a training with a station's scoring): torch's
OpenMP threads must sleep while they wait, not spin, unless the user chose a policy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

POLICY = "import os, linewatch, torch; print(os.environ.get('OMP_WAIT_POLICY'))"


@pytest.mark.parametrize(("chosen", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_wait_asleep_unless_the_user_chose(chosen, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}  # the tests' own processes set it
    if chosen:
        env["OMP_WAIT_POLICY"] = chosen
    r = subprocess.run([sys.executable, "-c", POLICY], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == expected
