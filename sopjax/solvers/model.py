"""The model container shared by formulations and problems (cvxpy).

A :class:`Model` holds the network, the number of periods ``T`` and named
variables, constraints, bus injections and objective terms. Formulation
functions (``variable_*``, ``constraint_*``, ``expression_*`` in
:mod:`sopjax.solvers.formulations`, :mod:`sopjax.solvers.components.radiality`,
:mod:`sopjax.solvers.components.sop_model`) add to it; problem builders
(:mod:`sopjax.problems`) only call those functions and assemble the
objective. No problem builder creates a variable or a constraint itself.

Index conventions (all arrays are 0-based internal indices):

* bus quantities have shape ``(T, bus)``, branch quantities ``(T, branch)``,
  SOP quantities ``(T, sop)``; switch and energization decisions are shared by
  all periods (shape ``(branch,)`` / ``(bus,)``).
* Branch power ``P, Q`` is the power entering branch ``k`` at its case
  from-bus ``f_bus[k]`` (either sign); ``l = |I|^2`` and ``v = |V|^2``
  (W-space). The power arriving at the to-bus is ``P - r l``, ``Q - x l``.
* Injections are positive into the network (generation, SOP output);
  served load enters with a minus sign (the network's net load convention
  reversed, written once here).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from sopjax.errors import SopjaxError
from sopjax.network import Network

__all__ = ["Model", "incidence", "as_expr"]


def incidence(net: Network) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Sparse from/to incidence matrices ``(bus, branch)``: ``Cf[f_k, k] = 1``, ``Ct[t_k, k] = 1``."""
    nb, nl = net.n_bus, net.n_branch
    cols = np.arange(nl)
    cf = sp.csr_matrix((np.ones(nl), (np.asarray(net.f_bus), cols)), shape=(nb, nl))
    ct = sp.csr_matrix((np.ones(nl), (np.asarray(net.t_bus), cols)), shape=(nb, nl))
    return cf, ct


def as_expr(x) -> Any:
    """A numpy array stays numpy; a cvxpy object stays cvxpy (used for mixed constant/variable data)."""
    return x if isinstance(x, cp.Expression) else np.asarray(x, dtype=float)


@dataclasses.dataclass
class Model:
    """A mutable optimisation model under construction.

    Attributes:
        net: the network (per unit on ``net.base_mva``).
        periods: number of periods (or scenarios) ``T``; variables carry a leading axis of this size.
        formulation: name of the power-flow formulation that filled the model (``"soc"``, ``"lindistflow"``).
        data: per-period input data, e.g. ``p_load_pu`` (T, bus), ``q_load_pu`` (T, bus),
            ``pv_p_pu`` (T, pv): numpy arrays or cvxpy Parameters.
        var: named variables or affine expressions; constants are numpy arrays.
        con: named constraint groups.
        p_inj, q_inj: named bus injections, each (T, bus), positive into the network.
        obj: named scalar objective terms (the problem builder chooses signs and weights).
        bounds: data-derived bounds (numpy) used by the constraints, e.g. ``p_max`` (branch,).
        meta: free-form bookkeeping for result extraction (index maps, options).
        relax: if True, :meth:`binary` creates continuous variables in [0, 1] (the
            continuous relaxation, for diagnostics and bounds).
    """

    net: Network
    periods: int = 1
    formulation: str = ""
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    var: dict[str, Any] = dataclasses.field(default_factory=dict)
    con: dict[str, list] = dataclasses.field(default_factory=dict)
    p_inj: dict[str, Any] = dataclasses.field(default_factory=dict)
    q_inj: dict[str, Any] = dataclasses.field(default_factory=dict)
    obj: dict[str, Any] = dataclasses.field(default_factory=dict)
    bounds: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    relax: bool = False

    def __post_init__(self) -> None:
        if int(self.periods) < 1:
            raise SopjaxError(f"periods must be >= 1, got {self.periods}")
        self.periods = int(self.periods)
        self._cf, self._ct = incidence(self.net)

    # ------------------------------------------------------------ helpers
    @property
    def cf(self) -> sp.csr_matrix:
        """From-bus incidence (bus, branch)."""
        return self._cf

    @property
    def ct(self) -> sp.csr_matrix:
        """To-bus incidence (bus, branch)."""
        return self._ct

    def binary(self, shape, name: str) -> cp.Variable:
        """A binary variable (or a [0, 1] continuous one when ``relax``)."""
        if self.relax:
            n = shape if isinstance(shape, tuple) else (int(shape),)
            return cp.Variable(n, name=name, bounds=[np.zeros(n), np.ones(n)])
        return cp.Variable(shape, boolean=True, name=name)

    def add(self, name: str, constraints) -> None:
        """Append constraints to the group ``name``."""
        if isinstance(constraints, cp.constraints.constraint.Constraint):
            constraints = [constraints]
        self.con.setdefault(name, []).extend(constraints)

    def constraints(self) -> list:
        """All constraints, in insertion order."""
        return [c for group in self.con.values() for c in group]

    def require(self, *names: str) -> None:
        """Raise a clear error if a formulation function is called before its prerequisites."""
        missing = [n for n in names if n not in self.var]
        if missing:
            raise SopjaxError(
                f"model has no variable(s) {missing}: call the matching variable_* function first"
            )

    def per_period(self, name: str, default=None):
        """Input data ``name`` broadcast to a leading period axis (numpy) or as given (cvxpy)."""
        x = self.data.get(name, default)
        if x is None:
            raise SopjaxError(f"model data {name!r} is missing")
        if isinstance(x, cp.Expression):
            return x
        x = np.asarray(x, dtype=float)
        if x.ndim == 1:
            x = np.broadcast_to(x, (self.periods, x.shape[0]))
        if x.shape[0] != self.periods:
            raise SopjaxError(f"model data {name!r} has {x.shape[0]} periods, the model has {self.periods}")
        return x

    def value(self, name: str) -> np.ndarray:
        """Solved value of a variable/expression as numpy (constants pass through)."""
        x = self.var[name]
        if isinstance(x, cp.Expression):
            if x.value is None:
                raise SopjaxError(f"{name} has no value: the model is not solved")
            return np.asarray(x.value, dtype=float)
        return np.asarray(x, dtype=float)
