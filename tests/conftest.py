import os

# Keep XLA to the cores pytest-xdist gives each worker.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
