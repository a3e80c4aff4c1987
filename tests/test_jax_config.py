"""XLA flags are set by an explicit call, not by ``import sopjax``."""

import os
import subprocess
import sys

from sopjax.jax_config import YNN_FLAG

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(code: str, flags: str = "") -> str:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if flags:
        env["XLA_FLAGS"] = flags
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_import_leaves_xla_flags_alone():
    assert run("import os, sopjax; print(repr(os.environ.get('XLA_FLAGS')))") == "None"


def test_configure_xla_turns_ynn_fusion_off_and_keeps_user_flags():
    out = run("import os, sopjax; print(sopjax.configure_xla()); print(os.environ['XLA_FLAGS'])",
              flags="--xla_cpu_multi_thread_eigen=false")
    applied, flags = out.splitlines()
    assert applied == "True"
    assert flags.split() == [YNN_FLAG, "--xla_cpu_multi_thread_eigen=false"]


def test_a_users_own_ynn_choice_is_kept():
    user = "--xla_cpu_experimental_ynn_fusion_type=dot"
    assert run("import os, sopjax; sopjax.configure_xla(); print(os.environ['XLA_FLAGS'])", flags=user) == user


def test_too_late_a_call_says_so():
    out = run("import warnings, jax.numpy as jnp, sopjax\n(jnp.ones(2) + 1).block_until_ready()\n"
              "with warnings.catch_warnings(record=True) as w:\n    warnings.simplefilter('always')\n"
              "    print(sopjax.configure_xla(), [str(x.message) for x in w])")
    assert out.startswith("False") and "called after JAX started" in out
