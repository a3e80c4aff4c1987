"""Process-wide XLA configuration, applied by an explicit call (the CLI makes it at start-up).

XLA's CPU backend (jaxlib 0.10) can deadlock when two while loops that contain
YNNPACK-fused dot products run concurrently in one program (e.g. a batched
dispatch and its JVP under one ``jit``): every pool thread ends up waiting on the
other loop's work. Plain XLA dots were as fast here (measured on the dispatch and
power-flow kernels), so :func:`configure_xla` turns YNNPACK fusions off unless the
user already chose a value. It must run before JAX starts its CPU backend (the first
computation); later it changes nothing and says so. See docs/dispatch.md ("XLA CPU
deadlock") for the reproduction and the one-solve-per-``jit`` rule that avoids it
without this flag.

``import sopjax`` does not touch ``XLA_FLAGS``; it only enables float64
(``jax_enable_x64``), on which the kernels' tolerances rely (see docs/architecture.md).
"""

from __future__ import annotations

import os
import warnings

__all__ = ["YNN_FLAG", "configure_xla"]

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type="


def configure_xla(*, ynn_fusion: bool = False) -> bool:
    """Set sopjax's XLA flags in ``XLA_FLAGS`` for this process.

    Args:
        ynn_fusion: keep XLA's YNNPACK dot fusions (default False: turned off, see above).

    Returns:
        True if the flags can still take effect (the CPU backend had not started), else
        False, with a warning.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if not ynn_fusion and "xla_cpu_experimental_ynn_fusion_type" not in flags:
        os.environ["XLA_FLAGS"] = f"{YNN_FLAG} {flags}".strip()
    if _backend_started():
        warnings.warn("sopjax.configure_xla() was called after JAX started its CPU backend; "
                      "XLA_FLAGS takes effect only in a new process", RuntimeWarning, stacklevel=2)
        return False
    return True


def _backend_started() -> bool:
    import sys

    xb = sys.modules.get("jax._src.xla_bridge")
    return bool(xb is not None and getattr(xb, "_backends", None))
