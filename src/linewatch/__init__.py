"""linewatch: watch a production line."""

import os

__version__ = "0.1.0"

# torch's OpenMP threads sleep when they wait for work instead of spinning on their core, unless the user set a policy
# (read once, when torch is imported, so it is set before). A plant PC shares its cores: the service's training thread
# with its scoring, a worker with the service, the tests' processes with each other; threads spinning on a core another
# thread or process needs made torch-heavy work beside other work several times slower (tests/vision/test_combined.py
# next to two other vision test files on 2 cores: 177 s spinning, 29 s asleep; a training beside another process's
# scoring: 41 s spinning, 10.5 s asleep), while a training alone is a little slower asleep (bottle: 24-27 s spinning,
# 25-28 s asleep). benchmarks/shared_cores.py measures it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
