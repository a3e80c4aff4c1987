import os

# Keep XLA to the cores pytest-xdist gives each worker.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

from sopjax.jax_config import configure_xla  # noqa: E402

configure_xla()  # as the CLI does, before any test starts JAX

import matplotlib  # noqa: E402

matplotlib.use("Agg")

# Hypothesis profiles of the bad-input suite (tests/test_bad_input.py): "default" is bounded so the
# default test command stays fast; SOPJAX_HYPOTHESIS_PROFILE=thorough selects the larger run of
# experiments/bad_input_report.py. Examples are derandomized so a failure reproduces.
from hypothesis import settings  # noqa: E402

settings.register_profile("default", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("thorough", deadline=None, derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("SOPJAX_HYPOTHESIS_PROFILE", "default"))
