"""pymoo NSGA-II over a vectorized problem, with a progress bar and resumable checkpoints.

Integer plans: integer random sampling, simulated binary crossover and polynomial mutation on
the real line followed by rounding (pymoo's ``RoundingRepair``), duplicates eliminated.

Checkpoints: every ``checkpoint_every`` generations the whole algorithm (population, archive,
its ``numpy.random.Generator``) and the per-generation fronts are pickled to ``checkpoint``
(written to a temporary file, then renamed). A killed run started again with the same
checkpoint continues from the last one and, since the evaluation is deterministic and the
generator state is restored, ends with the same front as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import numpy as np

from sopjax.errors import ConfigError, SopjaxError

__all__ = ["GASettings", "GAResult", "run_nsga2", "nondominated"]


@dataclasses.dataclass(frozen=True)
class GASettings:
    """NSGA-II settings.

    Attributes:
        pop_size: population size (>= 4).
        generations: generations to run (>= 1).
        seed: seed of pymoo's generator.
        crossover_prob, crossover_eta: SBX probability and distribution index.
        mutation_eta: polynomial-mutation distribution index.
        checkpoint_every: generations between checkpoints (>= 1).
    """

    pop_size: int = 100
    generations: int = 100
    seed: int = 0
    crossover_prob: float = 0.9
    crossover_eta: float = 15.0
    mutation_eta: float = 20.0
    checkpoint_every: int = 5

    def __post_init__(self):
        if isinstance(self.pop_size, bool) or int(self.pop_size) != self.pop_size or self.pop_size < 4:
            raise ConfigError(f"ga.pop_size must be an integer >= 4 (NSGA-II needs pairs of parents), "
                              f"got {self.pop_size!r}")
        if int(self.generations) != self.generations or self.generations < 1:
            raise ConfigError(f"ga.generations must be an integer >= 1, got {self.generations!r}")
        if int(self.checkpoint_every) != self.checkpoint_every or self.checkpoint_every < 1:
            raise ConfigError(f"ga.checkpoint_every must be an integer >= 1, got {self.checkpoint_every!r}")
        if not 0 <= self.crossover_prob <= 1:
            raise ConfigError(f"ga.crossover_prob must lie in [0, 1], got {self.crossover_prob}")


@dataclasses.dataclass
class GAResult:
    """Outcome of :func:`run_nsga2`.

    Attributes:
        X: the final non-dominated feasible plans, (plan, n_var) int.
        F: their objectives, (plan, objective).
        history: the feasible non-dominated objectives of every generation (list of arrays).
        n_evals: plans evaluated (pymoo's count, resumed runs included).
        resumed_from: the generation a checkpoint was resumed from (0: fresh run).
    """

    X: np.ndarray
    F: np.ndarray
    history: list
    n_evals: int
    resumed_from: int


def nondominated(F: np.ndarray) -> np.ndarray:
    """Mask of the rows of ``F`` (minimized) that no other row dominates."""
    F = np.asarray(F, float)
    le = np.all(F[:, None, :] <= F[None, :, :], -1)
    lt = np.any(F[:, None, :] < F[None, :, :], -1)
    dominated = np.any(le & lt, 0)
    return ~dominated


def _algorithm(s: GASettings):
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling

    return NSGA2(pop_size=int(s.pop_size), sampling=IntegerRandomSampling(),
                 crossover=SBX(prob=s.crossover_prob, eta=s.crossover_eta, vtype=float, repair=RoundingRepair()),
                 mutation=PM(eta=s.mutation_eta, vtype=float, repair=RoundingRepair()),
                 eliminate_duplicates=True, seed=int(s.seed))


def _front(alg) -> tuple[np.ndarray, np.ndarray]:
    opt = alg.opt if alg.opt is not None else alg.pop
    X, F, G = opt.get("X"), opt.get("F"), opt.get("G")
    ok = np.all(np.asarray(G) <= 0, -1) if G is not None and np.size(G) else np.ones(len(X), bool)
    X, F = np.asarray(X)[ok], np.asarray(F)[ok]
    keep = nondominated(F) if len(F) else np.zeros(0, bool)
    X, F = np.rint(X[keep]).astype(int), F[keep]
    order = np.lexsort(F.T[::-1]) if len(F) else np.zeros(0, int)
    return X[order], F[order]


def _save(path: Path, alg, history, fingerprint: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump({"algorithm": alg, "history": history, "fingerprint": fingerprint}, fh)
    os.replace(tmp, path)


def run_nsga2(problem, settings: GASettings, *, checkpoint: str | Path | None = None, fingerprint: str = "",
              progress: bool | None = None, stop_after: int | None = None) -> GAResult:
    """Run NSGA-II on a vectorized pymoo ``problem``, resuming from ``checkpoint`` if it exists.

    Args:
        problem: a pymoo problem (e.g. :class:`~sopjax.problems.allocation.AllocationProblem`).
        settings: GA settings.
        checkpoint: pickle path for resumable runs (None: no checkpoints).
        fingerprint: a string identifying the study; a checkpoint of another study is refused.
        progress: show a tqdm bar over generations (None: when stderr is a terminal).
        stop_after: stop (after checkpointing) once this generation is done, as a killed run
            would (tests and demonstrations of resuming).

    Raises:
        SopjaxError: a checkpoint written for another study.
    """
    from tqdm.auto import tqdm

    path = Path(checkpoint) if checkpoint else None
    history: list = []
    resumed = 0
    if path is not None and path.exists():
        with open(path, "rb") as fh:
            state = pickle.load(fh)
        if state.get("fingerprint") != fingerprint:
            raise SopjaxError(f"checkpoint {path} belongs to another study (fingerprint differs); "
                              "delete it or choose another --checkpoint")
        alg, history = state["algorithm"], state["history"]
        alg.problem = problem  # the fresh problem (its compiled kernels); same data by the fingerprint
        resumed = len(history)
    else:
        alg = _algorithm(settings)
        alg.setup(problem, termination=("n_gen", int(settings.generations)), seed=int(settings.seed), verbose=False)
    done = len(history)
    bar = tqdm(total=int(settings.generations), initial=done, desc="NSGA-II generations", unit="gen",
               disable=(None if progress is None else not progress))
    try:
        while alg.has_next():
            alg.next()
            history.append(_front(alg)[1])
            done = len(history)
            bar.update(1)
            last = not alg.has_next()
            if path is not None and (done % settings.checkpoint_every == 0 or last):
                _save(path, alg, history, fingerprint)
            if stop_after is not None and done >= stop_after and not last:
                if path is not None:
                    _save(path, alg, history, fingerprint)
                break
    finally:
        bar.close()
    X, F = _front(alg)
    return GAResult(X=X, F=F, history=history, n_evals=int(alg.evaluator.n_eval), resumed_from=resumed)
