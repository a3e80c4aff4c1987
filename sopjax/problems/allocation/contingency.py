"""Stage 3 of seed 001: SOP + demand-response defensive control under a contingency.

After the faults (seed 001 Fig. 10: branches 32-33 and 3-23 of IEEE 33, 1-based case branches 32
and 22) the buses cut off from the substation form the outage area. A candidate control is an
integer vector ``[n_1 .. n_S, k_1 .. k_D]``:

* ``n_s`` VSC modules at SOP site ``s`` (as in stage 1). An SOP with exactly one terminal in the
  outage area runs in Vf mode on that side (set-point ``u_set_pu``) and feeds the island from the
  other feeder; any other installed SOP runs in PQ mode with no active transfer and reactive
  support ``q_support`` x capacity at both VSCs (a documented simple rule: reactive injection
  at the feeder ends is what lowers line VCPI). Sites outside the case's ``allowed`` set stay 0.
* ``k_d`` in ``0..dr_steps``: demand-response level at DR bus ``d``: 0 = not called, else
  reduction coefficient ``lambda = lambda_min + (lambda_max - lambda_min) (k - 1) / (dr_steps - 1)``
  (seed 001 eqs. 43-45: min/max reduction coefficients; P and Q reduced alike).

Every candidate is a restoration strategy (:class:`sopjax.strategies.Strategy`, pickup = 1 - lambda
at DR buses) scored at the contingency operating point by the Monte Carlo engine's kernel
(:func:`sopjax.kernels.scoring.score_batch`: exact sweep with Vf islands, VCPI per line, a Vf
converter over capacity trips its island). Objectives (seed 001 eqs. 38-42), both minimized:

* ``vcpi``: the largest line VCPI of the energized network;
* ``cost``: annualized SOP investment + operation (the planning cost model) plus, per contingency
  event (``events_per_year`` x ``duration_h``), the load-cut cost of demand response and the
  unserved energy of lost load at ``unserved_cost_per_kwh``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial

import jax
import numpy as np
from pymoo.core.problem import Problem

from sopjax.devices import add_sops
from sopjax.errors import ConfigError
from sopjax.kernels.scoring import ScoringOptions, score_batch
from sopjax.network import Network
from sopjax.problems.allocation.costs import AllocationCosts
from sopjax.problems.allocation.encoding import AllocationSpace
from sopjax.strategies import Strategy, compile_strategies, scoring_context
from sopjax.strategies.batch import outage_buses

__all__ = ["ContingencySettings", "ContingencyProblem", "CONTINGENCY_CASES"]

# seed 001 cases 4-6: which controls a case may use
CONTINGENCY_CASES = {"dr": (False, True), "sop": (True, False), "sop_dr": (True, True)}


@dataclasses.dataclass(frozen=True)
class ContingencySettings:
    """Stage-3 data.

    Attributes:
        fault_branches: 1-based case branches opened by the faults.
        dr_buses: case bus ids with demand response.
        lambda_min, lambda_max: reduction coefficient bounds (fractions).
        dr_steps: levels of the DR decision (>= 2).
        q_support: reactive support of PQ-mode SOPs as a fraction of capacity, [0, 1].
        u_set_pu: Vf-mode voltage set-point.
        v_min_pu, v_max_pu: compliance limits of the scoring.
        duration_h: contingency duration (h). events_per_year: contingencies per year.
        unserved_cost_per_kwh: value of lost load (currency/kWh).
    """

    fault_branches: tuple[int, ...] = (32, 22)
    dr_buses: tuple[int, ...] = (7, 10, 13, 17, 23)
    lambda_min: float = 0.05
    lambda_max: float = 0.2
    dr_steps: int = 5
    q_support: float = 0.5
    u_set_pu: float = 1.0
    v_min_pu: float = 0.9
    v_max_pu: float = 1.1
    duration_h: float = 4.0
    events_per_year: float = 10.0
    unserved_cost_per_kwh: float = 5.0

    def __post_init__(self):
        if not 0 <= self.lambda_min <= self.lambda_max <= 1:
            raise ConfigError(f"contingency.lambda_min / lambda_max must satisfy 0 <= min <= max <= 1, "
                              f"got {self.lambda_min}, {self.lambda_max}")
        if int(self.dr_steps) != self.dr_steps or self.dr_steps < 2:
            raise ConfigError(f"contingency.dr_steps must be an integer >= 2, got {self.dr_steps!r}")
        if not 0 <= self.q_support <= 1:
            raise ConfigError(f"contingency.q_support must lie in [0, 1], got {self.q_support}")
        for name in ("duration_h", "events_per_year", "unserved_cost_per_kwh"):
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0:
                raise ConfigError(f"contingency.{name} must be a finite number >= 0, got {v!r}")

    def reduction(self, k: np.ndarray) -> np.ndarray:
        """Reduction coefficient of DR levels ``k`` (0 = not called)."""
        k = np.asarray(k, float)
        lam = self.lambda_min + (self.lambda_max - self.lambda_min) * (k - 1) / (self.dr_steps - 1)
        return np.where(k <= 0, 0.0, lam)


@partial(jax.jit, static_argnames=("options",))
def _score(ctx, arrays, p, q, pv, options):
    return score_batch(ctx, arrays, p, q, pv, options)


class ContingencyProblem(Problem):
    """Vectorized pymoo problem of stage 3 for one case of :data:`CONTINGENCY_CASES`.

    Args:
        net: network with PV units (SOPs are added at the candidate sites here).
        space: stage-1 space (its SOP sites and module limits are reused).
        settings: contingency data.
        costs: economic data.
        p_load_pu, q_load_pu, p_pv_pu: the operating point of the contingency (bus,), (pv,).
        case: ``"dr"``, ``"sop"`` or ``"sop_dr"``.

    Raises:
        ConfigError: an unknown fault branch or DR bus, faults that isolate no load.
    """

    def __init__(self, net: Network, space: AllocationSpace, settings: ContingencySettings, costs: AllocationCosts,
                 *, p_load_pu, q_load_pu, p_pv_pu, case: str = "sop_dr"):
        if case not in CONTINGENCY_CASES:
            raise ConfigError(f"contingency case must be one of {', '.join(CONTINGENCY_CASES)}, got {case!r}")
        use_sop, use_dr = CONTINGENCY_CASES[case]
        for k in settings.fault_branches:
            try:
                net.branch_index(k)
            except Exception as e:
                raise ConfigError(f"contingency.fault_branches: {e}") from None
        dr_idx = []
        for n, b in enumerate(settings.dr_buses):
            try:
                dr_idx.append(net.bus_index(b))
            except Exception as e:
                raise ConfigError(f"contingency.dr_buses[{n}]: {e}") from None
        self.net = add_sops(net, pairs=list(space.sop_pairs), s_rated_kva=space.module_kva, loss=0.02)
        self.space, self.settings, self.costs, self.case = space, settings, costs, case
        self.dr_idx = np.asarray(dr_idx, int)
        self.outage = outage_buses(self.net, list(settings.fault_branches))
        self.status = self.net.branch_status(open=settings.fault_branches)
        try:
            self.ctx = scoring_context(self.net, fault_open=list(settings.fault_branches), v_min_pu=settings.v_min_pu,
                                       v_max_pu=settings.v_max_pu)
        except Exception as e:
            raise ConfigError(f"contingency.fault_branches: {e}") from None
        self.p, self.q, self.pv = (np.asarray(a, float)[None] for a in (p_load_pu, q_load_pu, p_pv_pu))
        xu = np.asarray([*(space.max_modules if use_sop else [0] * space.n_sop),
                         *([settings.dr_steps] * len(dr_idx) if use_dr else [0] * len(dr_idx))])
        super().__init__(n_var=len(xu), n_obj=2, n_ieq_constr=0, xl=np.zeros(len(xu)), xu=xu, vtype=int)
        self.records: dict[tuple, dict] = {}

    def strategy(self, x: Sequence[int], name: str = "plan") -> Strategy:
        """The restoration strategy of control ``x``."""
        x = np.asarray(x, int)
        net, ns = self.net, self.space.n_sop
        modes, q = [], np.zeros(ns)
        cap = x[:ns] * self.space.module_kva / (1e3 * net.base_mva)
        bi, bj = np.asarray(net.sop.bus_i), np.asarray(net.sop.bus_j)
        for s in range(ns):
            oi, oj = bool(self.outage[bi[s]]), bool(self.outage[bj[s]])
            if x[s] == 0 or (oi and oj):
                modes.append("off")
            elif oi != oj:
                modes.append("vf_i" if oi else "vf_j")
            else:
                modes.append("pq_i")
                q[s] = self.settings.q_support * cap[s]
        pickup = np.ones(net.n_bus)
        pickup[self.dr_idx] = 1.0 - self.settings.reduction(x[ns:])
        return Strategy.from_arrays(net, name, status=self.status, sop_mode=modes, q_i_pu=q, q_j_pu=q,
                                    u_set_pu=np.full(ns, self.settings.u_set_pu), pickup=pickup,
                                    info={"modules": x[:ns].tolist(), "dr_levels": x[ns:].tolist()})

    def evaluate_controls(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Score controls ``X`` (control, n_var): VCPI, cost terms, served and cut load (kW)."""
        X = np.clip(np.rint(np.asarray(X, float)), self.xl, self.xu).astype(int)
        ns, kw = self.space.n_sop, 1e3 * self.net.base_mva
        out = {k: np.zeros(len(X)) for k in ("vcpi", "cost", "sop_cost", "dr_cost", "unserved_cost", "cut_kw",
                                             "unserved_kw")}
        for n, x in enumerate(X):
            kva = x[:ns] * self.space.module_kva
            net = self._with_capacity(kva)
            batch = compile_strategies(net, [self.strategy(x)], fault_open=list(self.settings.fault_branches))
            sc = jax.tree_util.tree_map(np.asarray, _score(self.ctx, batch.arrays, self.p, self.q, self.pv,
                                                           ScoringOptions()))
            lam = self.settings.reduction(x[ns:])
            cut = float(np.sum(lam * self.p[0, self.dr_idx])) * kw
            demand = float(np.sum(np.asarray(batch.arrays.pickup)[0] * self.p[0])) * kw
            unserved = max(demand - float(sc.served_pu[0, 0]) * kw, 0.0)
            b = self.costs.sop.breakdown(capacity_kva=2.0 * float(kva.sum()), n_sites=int((kva > 0).sum()),
                                         line_loss_kwh_day=0.0, converter_loss_kwh_day=0.0)
            hours = self.settings.duration_h * self.settings.events_per_year
            out["sop_cost"][n] = b["annualized_investment"] + b["om"]
            out["dr_cost"][n] = self.costs.load_cut_cost_per_kwh * cut * hours
            out["unserved_cost"][n] = self.settings.unserved_cost_per_kwh * unserved * hours
            out["cost"][n] = out["sop_cost"][n] + out["dr_cost"][n] + out["unserved_cost"][n]
            out["vcpi"][n] = float(sc.vcpi_max[0, 0]) if bool(sc.converged[0, 0]) else 1.0
            out["cut_kw"][n], out["unserved_kw"][n] = cut, unserved
        return out

    def _with_capacity(self, kva: np.ndarray) -> Network:
        t = self.net.sop
        s = np.asarray(kva, float) / (1e3 * self.net.base_mva)
        return self.net.with_devices(sop=dataclasses.replace(
            t, s_rated_i_pu=s, s_rated_j_pu=s, q_max_i_pu=s, q_max_j_pu=s, q_min_i_pu=-s, q_min_j_pu=-s))

    def _evaluate(self, X, out, *args, **kwargs):
        r = self.evaluate_controls(X)
        out["F"] = np.stack([r["cost"], r["vcpi"]], -1)
        for n, x in enumerate(np.clip(np.rint(np.asarray(X, float)), self.xl, self.xu).astype(int)):
            self.records[tuple(int(v) for v in x)] = {k: float(v[n]) for k, v in r.items()}
