"""Best-compromise selection on a Pareto front by fuzzy membership (Abido 2003; seed 001 step 6).

For objective ``j`` (minimized) over the front ``i = 1..N``::

    mu_ij = 1                                          f_ij <= f_j^min
          = (f_j^max - f_ij) / (f_j^max - f_j^min)     between
          = 0                                          f_ij >= f_j^max
    mu_i  = sum_j mu_ij / sum_i sum_j mu_ij

and the compromise is ``argmax_i mu_i``. An objective constant on the front contributes
``mu_ij = 1`` to every plan (it cannot discriminate).
"""

from __future__ import annotations

import numpy as np

from sopjax.errors import SopjaxError

__all__ = ["fuzzy_membership", "best_compromise"]


def fuzzy_membership(F: np.ndarray) -> np.ndarray:
    """Normalized membership ``mu_i`` of each plan of a front, (plan,); sums to 1.

    Args:
        F: objectives to minimize, (plan, objective), finite.

    Raises:
        SopjaxError: an empty front or a non-finite objective.
    """
    F = np.atleast_2d(np.asarray(F, dtype=float))
    if F.shape[0] == 0:
        raise SopjaxError("the Pareto front is empty; nothing to select")
    if not np.all(np.isfinite(F)):
        raise SopjaxError("the Pareto front has a non-finite objective value")
    lo, hi = F.min(0), F.max(0)
    span = hi - lo
    mu = np.where(span > 0, (hi - F) / np.where(span > 0, span, 1.0), 1.0)
    mu = np.clip(mu, 0.0, 1.0).sum(1)
    return mu / mu.sum()


def best_compromise(F: np.ndarray) -> int:
    """Row of the best-compromise plan (largest fuzzy membership; the first on ties)."""
    return int(np.argmax(fuzzy_membership(F)))
