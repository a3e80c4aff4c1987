"""Training loop shared by the surrogates: optax AdamW, warmup-cosine schedule, early stopping.

Deterministic for a fixed seed on one device: the initial weights come from the seed,
batches from :func:`sopjax.datasets.batches` (``default_rng([seed, epoch])``), and the
updates are plain JAX arithmetic (tests/test_surrogates.py trains twice and compares).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import optax

from sopjax.datasets import batches
from sopjax.surrogates.errors import SurrogateError

__all__ = ["TrainSettings", "fit", "mean_loss"]


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Optimizer and stopping settings.

    Attributes:
        steps: maximum optimizer steps.
        batch_size: samples per step.
        learning_rate: peak learning rate of the warmup-cosine schedule.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warmup steps.
        eval_every: steps between validation losses.
        patience: stop after this many validations without improvement (the best weights are kept).
        seed: weight initialization and shuffling seed.
        physics_weight: weight of the DistFlow residual term (0: data loss only).
    """

    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    warmup_steps: int = 100
    eval_every: int = 100
    patience: int = 10
    seed: int = 0
    physics_weight: float = 0.0

    def __post_init__(self):
        for k in ("steps", "batch_size", "eval_every", "patience"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SurrogateError(f"training {k} must be an integer >= 1, got {v!r}")
        for k in ("learning_rate", "weight_decay", "physics_weight"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise SurrogateError(f"training {k} must be a finite number >= 0, got {v!r}")
        if self.learning_rate <= 0:
            raise SurrogateError(f"training learning_rate must be > 0, got {self.learning_rate}")


def _optimizer(s: TrainSettings) -> optax.GradientTransformation:
    warm = min(s.warmup_steps, max(s.steps - 1, 0))
    sched = optax.warmup_cosine_decay_schedule(
        0.0, s.learning_rate, warm, max(s.steps, warm + 1), end_value=s.learning_rate * 1e-2
    )
    return optax.adamw(sched, weight_decay=s.weight_decay)


def mean_loss(loss_fn, model, arrays: dict, batch_size: int) -> float:
    """Mean of ``loss_fn`` over ``arrays`` in batches (the last one padded by repetition, weighted)."""
    n = next(iter(arrays.values())).shape[0]
    f = eqx.filter_jit(loss_fn)
    total = 0.0
    for a in range(0, n, batch_size):
        m = min(batch_size, n - a)
        idx = np.concatenate([np.arange(a, a + m), np.full(batch_size - m, a)])
        total += float(f(model, {k: jnp.asarray(v[idx]) for k, v in arrays.items()})) * m
    return total / n


def fit(
    model: eqx.Module,
    loss_fn: Callable,
    train: dict,
    val: dict,
    settings: TrainSettings,
    *,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[eqx.Module, dict]:
    """Minimize ``loss_fn(model, batch)`` over ``train``; early stopping on ``val``.

    Args:
        model: initial model (an equinox module).
        loss_fn: scalar loss of a batch (dict of arrays, leading sample axis).
        train, val: name -> numpy array with the sample axis first.
        settings: :class:`TrainSettings`.
        progress: tqdm bar over steps (default: when stderr is a terminal).
        log: called with one line per validation.

    Returns:
        ``(best model, history)``; history holds ``step``, ``train_loss``, ``val_loss`` lists,
        ``best_step``, ``stopped_early``, ``seconds``.
    """
    import sys

    from tqdm.auto import tqdm

    n_train = next(iter(train.values())).shape[0]
    if n_train < settings.batch_size:
        raise SurrogateError(
            f"the training split has {n_train} samples, fewer than batch_size {settings.batch_size}"
        )
    opt = _optimizer(settings)
    opt_state = opt.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model, opt_state, batch):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, batch)
        updates, opt_state = opt.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    hist = {"step": [], "train_loss": [], "val_loss": [], "best_step": 0, "stopped_early": False}
    best, best_loss, bad = model, math.inf, 0
    bar = tqdm(
        total=settings.steps,
        unit="step",
        desc="train",
        disable=not sys.stderr.isatty() if progress is None else not progress,
    )
    t0, it, epoch, run = time.perf_counter(), 0, 0, []
    try:
        while it < settings.steps and not hist["stopped_early"]:
            for batch in batches(train, settings.batch_size, seed=settings.seed, epoch=epoch):
                model, opt_state, loss = step(model, opt_state, batch)
                run.append(float(loss))
                it += 1
                bar.update(1)
                if it % settings.eval_every == 0 or it == settings.steps:
                    v = mean_loss(loss_fn, model, val, settings.batch_size)
                    hist["step"].append(it)
                    hist["train_loss"].append(float(np.mean(run)))
                    hist["val_loss"].append(v)
                    run = []
                    if log is not None:
                        log(f"step {it:6d}  train {hist['train_loss'][-1]:.3e}  val {v:.3e}")
                    if v < best_loss:
                        best, best_loss, bad, hist["best_step"] = model, v, 0, it
                    else:
                        bad += 1
                        if bad >= settings.patience:
                            hist["stopped_early"] = True
                            break
                if it >= settings.steps:
                    break
            epoch += 1
    finally:
        bar.close()
    hist["seconds"] = time.perf_counter() - t0
    return best, hist
