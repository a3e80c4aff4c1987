"""Switched capacitor banks with integer steps and a daily switching cap, as formulation functions.

Per bank ``c`` at bus ``b_c`` and period ``t`` (arrays (T, cb)):

* connected steps ``n_{c,t}`` integer in ``0..u_c``; the bank injects ``n_{c,t} * q_unit`` of reactive
  power at its bus (a constant-power injection, the model of the batched allocation evaluation
  :mod:`sopjax.problems.allocation.evaluate`, which subtracts the bank from the reactive load);
  ``u_c`` is a number (operation of a given plan) or an integer variable (sizing);
* step operations of the cyclic day ``d_{c,t} >= |n_{c,t} - n_{c,t-1}|`` (``t - 1`` of period 0 is
  the last period), so ``sum_t d_{c,t}`` counts every connection and disconnection of one step as
  one operation (what the switching cost prices);
* the daily cap (seed 001 eq. 28, :func:`constraint_cb_switching`): binaries ``z_{c,t}`` mark the
  periods in which bank ``c`` changes its setting, ``|n_{c,t} - n_{c,t-1}| <= U_c z_{c,t}`` with
  ``U_c`` the largest step count, and ``sum_t z_{c,t} <= max_switching``. A step switches only when
  its bank does, so every step also switches at most ``max_switching`` times a day.

In LinDistFlow the model stays a MILP; in SOC DistFlow a MISOCP.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from sopjax.errors import SopjaxError
from sopjax.solvers.model import Model

__all__ = ["constraint_cb_switching", "expression_cb_operations", "variable_cb_steps"]


def variable_cb_steps(m: Model, *, bus: np.ndarray, q_unit_pu: float, max_steps: np.ndarray,
                      units=None) -> cp.Variable | None:
    """Connected steps ``n`` (T, cb) integer, registered as a reactive injection ``m.q_inj['capacitor']``.

    Call before :func:`sopjax.solvers.formulations.soc_distflow.constraint_power_balance`.

    Args:
        m: the model.
        bus: 0-based bus of each bank, (cb,).
        q_unit_pu: reactive power of one step (p.u., > 0).
        max_steps: largest step count of each bank, (cb,) integers >= 0 (the variable bounds).
        units: installed steps (cb,): numbers (a given plan) or an integer variable (sizing) with
            ``units <= max_steps``; default ``max_steps``.

    Returns:
        The step variable (also ``m.var['cb_steps']``), or None without banks.
    """
    bus = np.asarray(bus, dtype=int).reshape(-1)
    n_cb, T = bus.size, m.periods
    if n_cb == 0:
        return None
    ub = np.asarray(max_steps, dtype=float).reshape(-1)
    if ub.shape != (n_cb,) or np.any(~np.isfinite(ub)) or np.any(ub < 0) or np.any(ub != np.rint(ub)):
        raise SopjaxError(f"capacitor max_steps must be {n_cb} integers >= 0, got {list(np.atleast_1d(max_steps))}")
    if not np.isfinite(q_unit_pu) or q_unit_pu <= 0:
        raise SopjaxError(f"capacitor step size must be a positive number, got {q_unit_pu}")
    n = cp.Variable((T, n_cb), integer=True, name="cb_steps", bounds=[np.zeros((T, n_cb)), np.tile(ub, (T, 1))])
    if units is not None:
        if not isinstance(units, cp.Expression):
            u = np.asarray(units, dtype=float).reshape(-1)
            if u.shape != (n_cb,) or np.any(u < 0) or np.any(u > ub):
                raise SopjaxError(f"capacitor units must be {n_cb} numbers in 0..max_steps, got {list(u)}")
        m.add("cb_units", n <= np.ones((T, 1)) @ cp.reshape(units, (1, n_cb), order="C")
              if isinstance(units, cp.Expression) else n <= np.tile(u, (T, 1)))
    M = sp.csr_matrix((np.full(n_cb, float(q_unit_pu)), (np.arange(n_cb), bus)), shape=(n_cb, m.net.n_bus))
    m.q_inj["capacitor"] = n @ M
    m.var["cb_steps"] = n
    m.bounds["cb_max_steps"] = ub
    return n


def _change(m: Model):
    n = m.var["cb_steps"]
    T = m.periods
    prev = np.roll(np.eye(T), 1, axis=1).T  # prev @ n: row t holds n_{t-1} (cyclic)
    return n - prev @ n


def expression_cb_operations(m: Model):
    """Step operations of every bank over the cyclic day, (cb,) expression: ``sum_t d_{c,t}``.

    Adds ``d >= |n_t - n_{t-1}|`` once (it is tight when operations cost something or are capped).
    """
    m.require("cb_steps")
    if "cb_ops" not in m.var:
        d = cp.Variable(m.var["cb_steps"].shape, name="cb_step_ops", nonneg=True)
        ch = _change(m)
        m.add("cb_step_ops", [d >= ch, d >= -ch])
        m.var["cb_ops"] = cp.sum(d, axis=0)
    return m.var["cb_ops"]


def constraint_cb_switching(m: Model, max_switching: int | None) -> None:
    """At most ``max_switching`` setting changes of each bank over the cyclic day (None: no cap)."""
    m.require("cb_steps")
    if max_switching is None:
        return
    if int(max_switching) != max_switching or max_switching < 0:
        raise SopjaxError(f"max_switching must be an integer >= 0, got {max_switching!r}")
    n = m.var["cb_steps"]
    z = m.binary(n.shape, "cb_switch")
    big = np.tile(m.bounds["cb_max_steps"], (m.periods, 1))
    ch = _change(m)
    m.add("cb_switching", [ch <= cp.multiply(big, z), -ch <= cp.multiply(big, z),
                           cp.sum(z, axis=0) <= int(max_switching)])
    m.var["cb_switch"] = z
