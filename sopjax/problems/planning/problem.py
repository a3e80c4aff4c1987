"""The SOP planning problem: network, candidate sites, scenarios, costs and limits.

:func:`make_planning_problem` validates user input (case bus ids, kVA, currency)
once and compiles it into a :class:`PlanningProblem` in internal units (0-based
buses, per unit), which the solvers in :mod:`sopjax.problems.planning` consume.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from sopjax.errors import NetworkError
from sopjax.network import Network
from sopjax.problems.planning.costs import CostModel, PlanningInputError
from sopjax.problems.planning.scenarios import Scenarios

__all__ = ["Candidate", "PlanningProblem", "make_planning_problem", "tie_candidates"]


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A candidate SOP site between two buses.

    Attributes:
        bus_i, bus_j: 0-based terminal buses (VSC i, VSC j).
        label: human-readable name, e.g. ``"8-21 (tie 33)"`` (case bus ids).
        branch: 0-based index of the tie branch the SOP replaces, or -1.
    """

    bus_i: int
    bus_j: int
    label: str
    branch: int = -1


def tie_candidates(net: Network) -> list[Candidate]:
    """One candidate per open switchable branch (the tie switches), in case order."""
    out = []
    for k in np.flatnonzero(np.asarray(net.switchable, bool) & ~np.asarray(net.in_service, bool)):
        f, t = int(net.f_bus[k]), int(net.t_bus[k])
        label = f"{net.bus_ids[f]}-{net.bus_ids[t]} (tie {net.branch_numbers[k]})"
        out.append(Candidate(f, t, label, int(k)))
    return out


def _pairs(net: Network, pairs) -> list[Candidate]:
    out, seen = [], {}
    closed_between = {}
    for k in range(net.n_branch):
        closed_between[frozenset((int(net.f_bus[k]), int(net.t_bus[k])))] = k
    for n, pair in enumerate(pairs):
        try:
            a, b = (int(x) for x in pair)
        except (TypeError, ValueError):
            raise PlanningInputError(f"candidate {n + 1}: {pair!r} is not a pair of bus ids") from None
        try:
            i, j = net.bus_index(a), net.bus_index(b)
        except NetworkError as e:
            raise PlanningInputError(f"candidate {n + 1} ({a}, {b}): {e}") from None
        if i == j:
            raise PlanningInputError(f"candidate {n + 1} ({a}, {b}) has both terminals at bus {a}")
        key = frozenset((i, j))
        if key in seen:
            raise PlanningInputError(f"candidate {n + 1} ({a}, {b}) duplicates candidate {seen[key] + 1}")
        seen[key] = n
        k = closed_between.get(key, -1)
        tie = k >= 0 and not bool(net.in_service[k])
        label = f"{a}-{b}" + (f" (tie {net.branch_numbers[k]})" if tie else "")
        out.append(Candidate(i, j, label, k if tie else -1))
    return out


@dataclasses.dataclass(frozen=True)
class PlanningProblem:
    """A validated multi-period SOP siting and sizing problem (internal units).

    Attributes:
        net: network with its PV units and the planning voltage limits.
        candidates: candidate sites, (candidate,).
        scenarios: representative days with probabilities.
        costs: economic data.
        s_max_kva: largest capacity per VSC at each candidate (kVA), (candidate,).
        loss: converter loss coefficient A (loss = A |S|) per candidate, (candidate,).
        max_sops: largest number of installed SOPs, or None.
        budget: largest total (not annualised) investment (currency), or None.
        status: branch statuses of the planning topology (True = closed), (branch,);
            the case's, with every candidate's tie branch open.
    """

    net: Network
    candidates: tuple[Candidate, ...]
    scenarios: Scenarios
    costs: CostModel
    s_max_kva: np.ndarray
    loss: np.ndarray
    max_sops: int | None
    budget: float | None
    status: np.ndarray

    @property
    def n_candidates(self) -> int:
        return len(self.candidates)

    @property
    def kva_per_pu(self) -> float:
        return self.net.base_mva * 1e3

    @property
    def bus_i(self) -> np.ndarray:
        return np.asarray([c.bus_i for c in self.candidates], dtype=np.int32)

    @property
    def bus_j(self) -> np.ndarray:
        return np.asarray([c.bus_j for c in self.candidates], dtype=np.int32)

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.candidates]

    def block_loads(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Loads and PV of every (scenario, period) block, flattened scenario-major.

        Returns:
            ``p_load_pu`` (block, bus), ``q_load_pu`` (block, bus), ``pv_p_pu`` (block, pv).
        """
        sc = self.scenarios
        n = sc.n_scenarios * sc.n_periods
        return sc.p_load_pu.reshape(n, -1), sc.q_load_pu.reshape(n, -1), sc.p_pv_pu.reshape(n, -1)

    def block_weights(self) -> np.ndarray:
        """Probability of the scenario of each block, (block,)."""
        return np.repeat(self.scenarios.probability, self.scenarios.n_periods)


def _per_candidate(value, n: int, name: str, *, positive: bool) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise PlanningInputError(f"{name} needs one value per candidate ({n}), got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr) | ((arr <= 0) if positive else (arr < 0)))
    if bad.size:
        need = "> 0" if positive else ">= 0"
        raise PlanningInputError(
            f"{name} must be finite and {need}, got {arr[bad[0]]} at candidate {bad[0] + 1}"
        )
    return arr


def make_planning_problem(
    net: Network,
    *,
    scenarios: Scenarios,
    candidates: str | Sequence[tuple[int, int]] = "ties",
    costs: CostModel | None = None,
    s_max_kva: float | Sequence[float] = 2000.0,
    loss: float | Sequence[float] = 0.02,
    v_min_pu: float | None = None,
    v_max_pu: float | None = None,
    max_sops: int | None = None,
    budget: float | None = None,
) -> PlanningProblem:
    """Validate and compile a planning problem.

    Args:
        net: the network, with its PV units (:func:`sopjax.add_pv`).
        scenarios: representative days (:mod:`sopjax.problems.planning.scenarios`); the
            load axis must match the buses and the PV axis the PV units.
        candidates: ``"ties"`` (every open tie switch) or (bus_i, bus_j) pairs of case bus ids.
        costs: economic data (default :class:`CostModel`).
        s_max_kva: largest capacity per VSC (kVA), scalar or per candidate.
        loss: converter loss coefficient A in [0, 1), scalar or per candidate.
        v_min_pu, v_max_pu: voltage limits at every bus except the substation
            (default: the case's limits).
        max_sops: largest number of SOPs to install (None: no limit).
        budget: largest total investment in currency (None: no limit).

    Returns:
        A :class:`PlanningProblem`.

    Raises:
        PlanningInputError: naming the offending candidate, bus or parameter.
    """
    costs = CostModel() if costs is None else costs
    if not isinstance(scenarios, Scenarios):
        raise PlanningInputError(f"scenarios must be a Scenarios object, got {type(scenarios).__name__}")
    if scenarios.p_load_pu.shape[2] != net.n_bus:
        raise PlanningInputError(
            f"scenario loads cover {scenarios.p_load_pu.shape[2]} buses, network {net.name!r} has {net.n_bus}"
        )
    if scenarios.p_pv_pu.shape[2] != net.pv.count:
        raise PlanningInputError(
            f"scenario PV output covers {scenarios.p_pv_pu.shape[2]} units, "
            f"the network has {net.pv.count} PV units"
        )
    if isinstance(candidates, str):
        if candidates != "ties":
            raise PlanningInputError(f"candidates must be 'ties' or a list of bus pairs, got {candidates!r}")
        cands = tie_candidates(net)
        if not cands:
            raise PlanningInputError(
                f"network {net.name!r} has no open tie switches; list candidate bus pairs"
            )
    else:
        cands = _pairs(net, candidates)
        if not cands:
            raise PlanningInputError("the candidate list is empty")
    n = len(cands)
    smax = _per_candidate(s_max_kva, n, "s_max_kva", positive=True)
    a = _per_candidate(loss, n, "loss", positive=False)
    if np.any(a >= 1):
        raise PlanningInputError(
            f"loss coefficient must be < 1, got {a.max()} at candidate {int(np.argmax(a)) + 1}"
        )
    if max_sops is not None:
        if int(max_sops) != max_sops or max_sops < 0:
            raise PlanningInputError(f"max_sops must be a non-negative integer, got {max_sops!r}")
        max_sops = int(max_sops)
    if budget is not None and (not math.isfinite(budget) or budget < 0):
        raise PlanningInputError(f"budget must be a finite number >= 0, got {budget!r}")

    vmin = np.array(net.v_min_pu, dtype=float)
    vmax = np.array(net.v_max_pu, dtype=float)
    others = np.arange(net.n_bus) != net.slack_bus
    for name, value in (("v_min_pu", v_min_pu), ("v_max_pu", v_max_pu)):
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise PlanningInputError(f"{name} must be a positive number, got {value!r}")
    if v_min_pu is not None:
        vmin[others] = v_min_pu
    if v_max_pu is not None:
        vmax[others] = v_max_pu
    vs = float(net.v_slack_pu)
    vmin[net.slack_bus] = min(vmin[net.slack_bus], vs)
    vmax[net.slack_bus] = max(vmax[net.slack_bus], vs)
    if np.any(vmin > vmax):
        raise PlanningInputError(f"v_min_pu ({v_min_pu}) exceeds v_max_pu ({v_max_pu})")
    net = net.replace(v_min_pu=vmin, v_max_pu=vmax)

    status = np.asarray(net.in_service, dtype=bool).copy()
    for c in cands:
        if c.branch >= 0:
            status[c.branch] = False
    return PlanningProblem(
        net=net,
        candidates=tuple(cands),
        scenarios=scenarios,
        costs=costs,
        s_max_kva=smax,
        loss=a,
        max_sops=max_sops,
        budget=None if budget is None else float(budget),
        status=status,
    )
