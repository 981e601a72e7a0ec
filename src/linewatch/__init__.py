"""linewatch: watch a production line."""

import os

__version__ = "0.1.0"

# torch's OpenMP threads sleep when they wait for work instead of spinning on their core, unless the user set a policy
# (read once, when torch is imported, so it is set before). A plant PC shares its cores between processes: a worker
# with the service, a training with a station's scoring, the tests' processes with each other, and threads spinning
# on a core another process needs made such work several times slower (a training beside another process's scoring
# on 2 cores: 41 s spinning, 10.5 s asleep; tests/vision/test_combined.py beside two other vision test files: 177 s,
# 29 s). Within one process it changes little, and a training alone is a little slower asleep (bottle: 24-27 s
# spinning, 25-28 s asleep). benchmarks/shared_cores.py measures it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
