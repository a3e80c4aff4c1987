"""The ``sopjax train`` study: TOML mapping -> dataset, model, training, checkpoint, evaluation.

Config layout (``configs/ieee33_train_gnn.toml``)::

    title = "..."
    [data]
    dataset = "results/ieee33_dataset.zarr"   # a store written by `sopjax dataset`
    train_samples = 0                          # 0: the whole train split
    prior = true                               # LinDistFlow prior (power-flow models)
    [model]
    kind = "gnn"                               # "mlp", "gnn" or "dispatch"
    width = 64
    depth = 3                                  # MLP hidden layers
    rounds = 12                                # GNN message-passing rounds
    [training]                                 # TrainSettings fields
    steps = 3000
    physics_weight = 0.0
    [output]
    checkpoint = "results/ieee33_gnn"          # writes .eqx + .json
    [evaluate]
    datasets = ["results/ieee69_dataset.zarr"] # extra stores to evaluate on (test + OOD splits)
    plots = "results/plots"                    # optional: parity plots + reliability diagrams (PNG)

Every figure is an error against the exact kernel's labels (:mod:`sopjax.surrogates.evaluate`);
voltage-violation probabilities are calibrated on the validation split's errors
(:mod:`sopjax.surrogates.calibration`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from sopjax.config import ConfigError, integer, number, require, table
from sopjax.datasets import SPLITS, DatasetError, load_split, open_store
from sopjax.surrogates import checkpoint
from sopjax.surrogates.errors import SurrogateError
from sopjax.surrogates.evaluate import split_report, voltage_errors
from sopjax.surrogates.features import Normalizer, feature_set, fit_normalizer
from sopjax.surrogates.models import MODEL_KINDS, make_model
from sopjax.surrogates.powerflow import PowerFlowSurrogate, batch_arrays, make_loss
from sopjax.surrogates.train import TrainSettings, fit

__all__ = [
    "evaluate_store",
    "load_power_flow",
    "parse_train_config",
    "train_from_config",
    "train_power_flow",
    "validation_errors",
]

_TRAIN_INT = ("steps", "batch_size", "warmup_steps", "eval_every", "patience", "seed")
_TRAIN_NUM = ("learning_rate", "weight_decay", "physics_weight")
PF_VARS = (
    "p_net_pu",
    "q_net_pu",
    "branch_closed",
    "vm_pu",
    "va_rad",
    "p_from_pu",
    "q_from_pu",
    "losses_pu",
    "split",
    "done",
)


def parse_train_config(cfg: Mapping[str, Any]) -> dict:
    """Parse a train config into ``{"data", "model", "settings", "checkpoint", "evaluate", "title"}``.

    Raises:
        ConfigError: missing or unknown keys, wrong types (named by key path).
    """
    top = table(cfg, "config", allowed=("title", "data", "model", "training", "output", "evaluate"))
    require(top, ("data", "model", "output"), "config")
    data = table(top["data"], "[data]", allowed=("dataset", "train_samples", "prior", "config_id"))
    require(data, ("dataset",), "[data]")
    model = table(top["model"], "[model]", allowed=("kind", "width", "depth", "rounds"))
    require(model, ("kind",), "[model]")
    kinds = (*MODEL_KINDS, "dispatch")
    if model["kind"] not in kinds:
        raise ConfigError(f"[model] kind must be one of {list(kinds)}, got {model['kind']!r}")
    mcfg = {
        "kind": model["kind"],
        "width": integer(model.get("width", 64), "[model] width", lo=1),
        "depth": integer(model.get("depth", 3), "[model] depth", lo=1),
        "rounds": integer(model.get("rounds", 12), "[model] rounds", lo=1),
    }
    tr = table(top.get("training", {}), "[training]", allowed=(*_TRAIN_INT, *_TRAIN_NUM))
    kw = {k: integer(tr[k], f"[training] {k}", lo=0) for k in _TRAIN_INT if k in tr}
    kw.update({k: number(tr[k], f"[training] {k}", lo=0.0) for k in _TRAIN_NUM if k in tr})
    try:
        settings = TrainSettings(**kw)
    except SurrogateError as e:
        raise ConfigError(f"[training]: {e}") from None
    out = table(top["output"], "[output]", allowed=("checkpoint",))
    require(out, ("checkpoint",), "[output]")
    ev = table(top.get("evaluate", {}), "[evaluate]", allowed=("datasets", "plots"))
    for key, v in (("[data] dataset", data["dataset"]), ("[output] checkpoint", out["checkpoint"])):
        if not isinstance(v, str) or not v:
            raise ConfigError(f"{key} must be a path (a non-empty string), got {v!r}")
    extra = ev.get("datasets", [])
    if not isinstance(extra, list) or not all(isinstance(x, str) and x for x in extra):
        raise ConfigError(f"[evaluate] datasets must be a list of paths, got {extra!r}"[:200])
    plots = ev.get("plots")
    if plots is not None and (not isinstance(plots, str) or not plots):
        raise ConfigError(f"[evaluate] plots must be a directory path (a non-empty string), got {plots!r}")
    prior = data.get("prior", True)
    if not isinstance(prior, bool):
        raise ConfigError(f"[data] prior must be true or false, got {prior!r}")
    return {
        "title": str(top.get("title", "sopjax train")),
        "data": {
            "dataset": str(data["dataset"]),
            "train_samples": integer(data.get("train_samples", 0), "[data] train_samples", lo=0),
            "prior": prior,
            "config_id": integer(data.get("config_id", 0), "[data] config_id", lo=0),
        },
        "model": mcfg,
        "settings": settings,
        "checkpoint": str(out["checkpoint"]),
        "evaluate": [str(p) for p in ev.get("datasets", [])],
        "plots": plots,
    }


def _skeleton(kind: str, config: dict):
    return make_model(
        kind,
        n_bus=config["n_bus"],
        n_branch=config["n_branch"],
        width=config["width"],
        depth=config["depth"],
        rounds=config["rounds"],
        seed=0,
    )


def load_power_flow(path) -> PowerFlowSurrogate:
    """A :class:`PowerFlowSurrogate` from a checkpoint written by :func:`train_power_flow`."""
    model, head = checkpoint.load(path, _skeleton)
    if head["kind"] not in MODEL_KINDS:
        raise SurrogateError(f"checkpoint {path} holds a {head['kind']!r} model, not a power-flow surrogate")
    return PowerFlowSurrogate(model, Normalizer(**head["normalizer"]), head["kind"], head["config"])


def _pf_features(store, split, prior, limit=0):
    ds = load_split(store, split, variables=[v for v in PF_VARS if v != "done"])
    if limit and ds.sizes["sample"] > limit:
        ds = ds.isel(sample=slice(0, limit))
    return feature_set(ds, prior=prior)


def evaluate_store(
    sur: PowerFlowSurrogate,
    store,
    *,
    prior: bool = True,
    splits=("test", "ood_topology", "ood_load"),
    val_errors=None,
    plots=None,
) -> dict[str, dict]:
    """Errors per split of ``store`` (splits without samples are left out).

    Args:
        sur: the surrogate; store: a dataset store; prior: the LinDistFlow prior on or off.
        splits: the splits to evaluate.
        val_errors: validation voltage errors (:func:`validation_errors`): adds each split's
            violation calibration.
        plots: a directory: writes ``<case>_<split>_<kind>_parity.png`` per split and, with
            ``val_errors``, ``<case>_<kind>_reliability.png`` (it must exist).
    """
    from pathlib import Path

    out = {}
    ds = open_store(store)
    case = ds.attrs.get("case", "dataset")
    for s in splits:
        try:
            fs = _pf_features(ds, s, prior)
        except DatasetError:
            continue
        plot = None if plots is None else Path(plots) / f"{case}_{s}_{sur.kind}_parity.png"
        title = f"{case}, {s} split, {sur.kind.upper()} ({fs.n_samples} samples)"
        out[s] = split_report(fs, sur.predict(fs), val_errors=val_errors, plot=plot, title=title)
    if plots is not None and val_errors is not None and out:
        from sopjax.surrogates.plots import reliability_diagram

        reliability_diagram(
            {s: m["calibration"]["table"] for s, m in out.items()},
            Path(plots) / f"{case}_{sur.kind}_reliability.png",
            title=f"{case}, {sur.kind.upper()}: P(V outside [0.95, 1.05] p.u.) from validation errors",
        )
    return out


def validation_errors(sur: PowerFlowSurrogate, store, *, prior: bool = True) -> np.ndarray:
    """Voltage errors ``exact - predicted`` (p.u.) of ``sur`` on the validation split of ``store``."""
    fs = _pf_features(open_store(store), "val", prior)
    return voltage_errors(fs, sur.predict(fs))


def train_power_flow(
    store,
    model_cfg: dict,
    settings: TrainSettings,
    out,
    *,
    prior: bool = True,
    train_samples: int = 0,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[PowerFlowSurrogate, dict]:
    """Train an MLP or GNN on the train split of ``store``, early-stop on val, save to ``out``.

    Returns:
        ``(surrogate, history)``.
    """
    ds = open_store(store)
    train = _pf_features(ds, "train", prior, train_samples)
    val = _pf_features(ds, "val", prior)
    norm = fit_normalizer(train)
    cfg = {
        **{k: model_cfg[k] for k in ("width", "depth", "rounds")},
        "n_bus": train.n_bus,
        "n_branch": train.n_branch,
        "seed": settings.seed,
        "prior": prior,
    }
    model = make_model(
        model_cfg["kind"],
        n_bus=train.n_bus,
        n_branch=train.n_branch,
        width=cfg["width"],
        depth=cfg["depth"],
        rounds=cfg["rounds"],
        seed=settings.seed,
    )
    loss = make_loss(train, norm, settings.physics_weight)
    model, hist = fit(
        model, loss, batch_arrays(train, norm), batch_arrays(val, norm), settings, progress=progress, log=log
    )
    hist["train_samples"] = train.n_samples
    checkpoint.save(
        out,
        model_cfg["kind"],
        model,
        cfg,
        {
            "normalizer": norm.to_dict(),
            "history": hist,
            "dataset": str(store),
            "settings": dataclasses.asdict(settings),
        },
    )
    return PowerFlowSurrogate(model, norm, model_cfg["kind"], cfg), hist


def train_from_config(
    cfg: Mapping[str, Any], *, progress: bool | None = None, log: Callable[[str], None] | None = None
) -> dict:
    """Run a train config: train, save the checkpoint, evaluate (see the module docstring).

    Returns:
        ``{"title", "kind", "history", "metrics": {store: {split: errors}}, "checkpoint"}``.
    """
    p = parse_train_config(cfg)
    d, m = p["data"], p["model"]
    if m["kind"] == "dispatch":
        from sopjax.surrogates.dispatch import train_dispatch

        res = train_dispatch(
            d["dataset"],
            m,
            p["settings"],
            p["checkpoint"],
            config_id=d["config_id"],
            progress=progress,
            log=log,
        )
        return {"title": p["title"], "kind": "dispatch", "checkpoint": p["checkpoint"], **res}
    sur, hist = train_power_flow(
        d["dataset"],
        m,
        p["settings"],
        p["checkpoint"],
        prior=d["prior"],
        train_samples=d["train_samples"],
        progress=progress,
        log=log,
    )
    if p["plots"] is not None:
        from pathlib import Path

        Path(p["plots"]).mkdir(parents=True, exist_ok=True)
    kw = {"prior": d["prior"], "val_errors": validation_errors(sur, d["dataset"], prior=d["prior"]),
          "plots": p["plots"]}
    metrics = {d["dataset"]: evaluate_store(sur, d["dataset"], **kw)}
    for extra in p["evaluate"]:
        if m["kind"] == "mlp" and open_store(extra).sizes["bus"] != sur.model.n_bus:
            metrics[extra] = {"skipped": f"an MLP of {sur.model.n_bus} buses cannot run on this feeder"}
            continue
        metrics[extra] = evaluate_store(sur, extra, splits=SPLITS, **kw)
    return {
        "title": p["title"],
        "kind": m["kind"],
        "history": hist,
        "metrics": metrics,
        "checkpoint": p["checkpoint"],
    }
