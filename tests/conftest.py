import os

# Keep XLA to the cores pytest-xdist gives each worker.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

from sopjax.jax_config import configure_xla  # noqa: E402

configure_xla()  # as the CLI does, before any test starts JAX

import matplotlib  # noqa: E402

matplotlib.use("Agg")
