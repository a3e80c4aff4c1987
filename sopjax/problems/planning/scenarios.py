"""Representative days for planning: k-means reduction of sampled days, with probabilities.

A *scenario* is one representative day: per period, the load of every bus and
the output of every PV unit (per unit). Many sampled days — drawn by
:class:`sopjax.sampling.UncertaintyModel` — are reduced to a few scenarios by
k-means on the daily profiles; each scenario's probability is the fraction of
samples in its cluster. The representative is the cluster mean (it preserves
the cluster's expected load and PV energy) or, optionally, the medoid (the
sample nearest to the mean: a day that was actually drawn).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sopjax.problems.planning.costs import PlanningInputError

__all__ = ["Scenarios", "kmeans", "reduce_scenarios", "scenario_features"]


@dataclasses.dataclass(frozen=True)
class Scenarios:
    """Representative days with probabilities (per unit, loads positive = consumption).

    Attributes:
        p_load_pu, q_load_pu: bus load, shape (scenario, period, bus).
        p_pv_pu: PV active output per unit (``net.pv`` order), shape (scenario, period, pv).
        probability: scenario probabilities summing to 1, shape (scenario,).
        labels: cluster of each reduced sample, shape (sample,), or None.
        feature_scale: (load, pv) scales of the k-means features, to assign new
            samples to scenarios (:meth:`assign`); None if not from a reduction.
    """

    p_load_pu: np.ndarray
    q_load_pu: np.ndarray
    p_pv_pu: np.ndarray
    probability: np.ndarray
    labels: np.ndarray | None = None
    feature_scale: tuple[float, float] | None = None

    def __post_init__(self):
        arrays = [np.asarray(getattr(self, k), dtype=float) for k in ("p_load_pu", "q_load_pu", "p_pv_pu")]
        pl, ql, pv = arrays
        pr = np.asarray(self.probability, dtype=float)
        if pl.ndim != 3 or ql.shape != pl.shape or pv.ndim != 3 or pv.shape[:2] != pl.shape[:2]:
            raise PlanningInputError(
                "scenario arrays must be (scenario, period, bus) for the loads and (scenario, period, pv) "
                f"for PV, got {pl.shape}, {ql.shape}, {pv.shape}"
            )
        if pr.shape != (pl.shape[0],):
            raise PlanningInputError(f"scenario probability must have shape ({pl.shape[0]},), got {pr.shape}")
        for name, a in (("p_load_pu", pl), ("q_load_pu", ql), ("p_pv_pu", pv)):
            if not np.all(np.isfinite(a)):
                raise PlanningInputError(f"scenario {name} contains a non-finite value")
        if np.any(pv < 0):
            raise PlanningInputError("scenario p_pv_pu must be >= 0")
        if not np.all(np.isfinite(pr)) or np.any(pr < 0) or abs(pr.sum() - 1.0) > 1e-9:
            raise PlanningInputError(f"scenario probabilities must be >= 0 and sum to 1, got {pr.tolist()}")
        for k, a in zip(("p_load_pu", "q_load_pu", "p_pv_pu", "probability"), (pl, ql, pv, pr)):
            object.__setattr__(self, k, a)

    @property
    def n_scenarios(self) -> int:
        return self.p_load_pu.shape[0]

    @property
    def n_periods(self) -> int:
        return self.p_load_pu.shape[1]

    @classmethod
    def deterministic(cls, p_load_pu, q_load_pu, p_pv_pu) -> "Scenarios":
        """One scenario with probability 1 from (period, bus), (period, bus), (period, pv) arrays."""
        return cls(np.asarray(p_load_pu, float)[None], np.asarray(q_load_pu, float)[None],
                   np.asarray(p_pv_pu, float)[None], np.ones(1))

    def assign(self, p_load_pu, p_pv_pu) -> np.ndarray:
        """Nearest scenario of each sampled day in the reduction's feature space.

        Args:
            p_load_pu: (sample, period, bus); p_pv_pu: (sample, period, pv).

        Returns:
            Scenario index per sample, (sample,).
        """
        scale = self.feature_scale or (1.0, 1.0)
        x = scenario_features(p_load_pu, p_pv_pu, scale)
        centres = scenario_features(self.p_load_pu, self.p_pv_pu, scale)
        d2 = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
        return np.argmin(d2, axis=1)


def scenario_features(p_load_pu, p_pv_pu, scale: tuple[float, float]) -> np.ndarray:
    """Flattened daily profiles ``[load / scale_load, pv / scale_pv]``, (sample, feature)."""
    pl, pv = np.asarray(p_load_pu, float), np.asarray(p_pv_pu, float)
    n = pl.shape[0]
    return np.concatenate([pl.reshape(n, -1) / scale[0], pv.reshape(n, -1) / scale[1]], axis=1)


def kmeans(
    x: np.ndarray, k: int, *, seed: int = 0, n_init: int = 8, max_iter: int = 300
) -> tuple[np.ndarray, np.ndarray, float]:
    """Lloyd's k-means with k-means++ seeding (deterministic for a given ``seed``).

    Args:
        x: points, shape (sample, feature).
        k: number of clusters, 1 <= k <= sample.
        seed: seed of the numpy generator used for the seeding.
        n_init: restarts; the run with the smallest inertia wins.
        max_iter: Lloyd iterations per restart.

    Returns:
        (centres (k, feature), labels (sample,), inertia = sum of squared distances).

    Raises:
        PlanningInputError: ``k`` outside 1..sample.
    """
    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    if isinstance(k, bool) or int(k) != k or not 1 <= k <= n:
        raise PlanningInputError(
            f"number of scenarios must be an integer between 1 and the number of samples ({n}), got {k!r}"
        )
    k = int(k)
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(max(1, int(n_init))):
        centres = x[[rng.integers(n)]]
        for _ in range(1, k):  # k-means++ seeding
            d2 = np.min(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
            p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
            centres = np.vstack([centres, x[rng.choice(n, p=p)]])
        labels = np.full(n, -1)
        for _ in range(max_iter):
            d2 = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
            new = np.argmin(d2, axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                members = labels == j
                if members.any():
                    centres[j] = x[members].mean(0)
                else:  # re-seed an empty cluster at the worst-served point
                    far = int(np.argmax(d2[np.arange(n), labels]))
                    centres[j] = x[far]
                    labels[far] = j
        inertia = float(((x - centres[labels]) ** 2).sum())
        if best is None or inertia < best[2]:
            best = (centres.copy(), labels.copy(), inertia)
    return best


def reduce_scenarios(
    p_load_pu,
    q_load_pu,
    p_pv_pu,
    k: int,
    *,
    seed: int = 0,
    representative: str = "mean",
    n_init: int = 8,
) -> Scenarios:
    """Reduce sampled days to ``k`` representative days with probabilities (k-means).

    Features are the daily load and PV profiles, each block divided by its
    overall standard deviation so that neither dominates the distance. Scenarios
    are returned in decreasing order of probability.

    Args:
        p_load_pu, q_load_pu: sampled bus loads, (sample, period, bus), e.g.
            ``Samples.p_load_pu`` of a time-series :class:`sopjax.sampling.UncertaintyModel`.
        p_pv_pu: sampled PV output, (sample, period, pv).
        k: number of scenarios.
        seed: k-means seed.
        representative: ``"mean"`` (cluster mean) or ``"medoid"`` (sample nearest the mean).
        n_init: k-means restarts.

    Returns:
        :class:`Scenarios` with ``probability`` = cluster share and ``labels``.

    Raises:
        PlanningInputError: shapes disagree, non-finite samples, bad ``k`` / ``representative``.
    """
    pl, ql, pv = (np.asarray(a, float) for a in (p_load_pu, q_load_pu, p_pv_pu))
    if pl.ndim != 3 or ql.shape != pl.shape or pv.ndim != 3 or pv.shape[:2] != pl.shape[:2]:
        raise PlanningInputError(
            "samples must be (sample, period, bus) for the loads and (sample, period, pv) for PV with equal "
            f"leading axes, got {pl.shape}, {ql.shape} and {pv.shape}"
        )
    if not (np.all(np.isfinite(pl)) and np.all(np.isfinite(ql)) and np.all(np.isfinite(pv))):
        raise PlanningInputError("load/PV samples contain non-finite values")
    if representative not in ("mean", "medoid"):
        raise PlanningInputError(f"representative must be 'mean' or 'medoid', got {representative!r}")
    n = pl.shape[0]
    scale = tuple(float(a.std()) if a.size and a.std() > 0 else 1.0 for a in (pl, pv))
    feats = scenario_features(pl, pv, scale)
    _, labels, _ = kmeans(feats, k, seed=seed, n_init=n_init)
    k = int(k)
    counts = np.bincount(labels, minlength=k)
    order = np.argsort(-counts, kind="stable")
    relabel = np.empty(k, dtype=int)
    relabel[order] = np.arange(k)
    labels = relabel[labels]
    reps = {"p": [], "q": [], "pv": []}
    for j in range(k):
        members = np.flatnonzero(labels == j)
        if representative == "mean":
            idx = members
        else:
            centre = feats[members].mean(0)
            idx = members[[int(np.argmin(((feats[members] - centre) ** 2).sum(-1)))]]
        reps["p"].append(pl[idx].mean(0))
        reps["q"].append(ql[idx].mean(0))
        reps["pv"].append(pv[idx].mean(0))
    prob = counts[order] / n
    return Scenarios(np.stack(reps["p"]), np.stack(reps["q"]), np.stack(reps["pv"]), prob, labels, scale)
