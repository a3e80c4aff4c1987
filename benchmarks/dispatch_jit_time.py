"""Compile time and run time of the JAX-native dispatch alone, for before/after comparisons of the kernel.

    PYTHONPATH=<checkout> .venv/bin/python benchmarks/dispatch_jit_time.py [label] [batch]

Times ``jit(value_and_grad)`` of the summed optimal objective on the batch of
``dispatch_bench.py`` (IEEE 33, 3 SOPs), for the batched solver and for the
per-sample solver under ``vmap``: the first call (compile, wall seconds) and the
median process CPU time of 7 further calls (ms per problem). Only public names
are used, so the script also runs against an older checkout; alternate the two
checkouts in separate processes on a shared machine.
"""

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dispatch_bench import problems  # noqa: E402

from sopjax.jax_config import configure_xla  # noqa: E402
from sopjax.kernels.dispatch import compile_dispatch, dispatch_batched, dispatch_native  # noqa: E402

configure_xla()  # the XLA flags the CLI sets


def main(label: str = "", batch: int = 64) -> None:
    net, inp = problems(batch)
    data = compile_dispatch(net)
    out = []
    paths = (("batched", lambda i: dispatch_batched(data, i)),
             ("vmap", lambda i: jax.vmap(lambda s: dispatch_native(data, s))(i)))
    for name, solve in paths:
        g = jax.jit(jax.value_and_grad(lambda i, solve=solve: jnp.sum(solve(i).objective)))
        t0 = time.perf_counter()
        jax.block_until_ready(g(inp))
        compile_s = time.perf_counter() - t0
        cpu = []
        for _ in range(7):
            c0 = time.process_time()
            jax.block_until_ready(g(inp))
            cpu.append(time.process_time() - c0)
        ms = sorted(cpu)[3] / batch * 1e3
        out.append(f"{name}: compile {compile_s:.1f} s, run CPU median {ms:.3f} ms/problem")
    print(label, "|", "; ".join(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "", *(int(a) for a in sys.argv[2:3]))
