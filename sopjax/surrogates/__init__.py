"""Surrogates of the exact kernels, in equinox, always checked against them (``sopjax train``).

* :mod:`~sopjax.surrogates.features`: graph features, the LinDistFlow prior, normalization;
* :mod:`~sopjax.surrogates.models`: an MLP for one feeder and a message-passing GNN for any;
* :mod:`~sopjax.surrogates.physics`: DistFlow residuals of a predicted state;
* :mod:`~sopjax.surrogates.powerflow`: the power-flow surrogate (loss, prediction);
* :mod:`~sopjax.surrogates.train`: optax AdamW with a schedule and early stopping;
* :mod:`~sopjax.surrogates.checkpoint`: save and reload;
* :mod:`~sopjax.surrogates.evaluate`: errors in p.u. and kW against the exact labels;
* :mod:`~sopjax.surrogates.calibration`: calibration of voltage-violation predictions;
* :mod:`~sopjax.surrogates.plots`: parity plots, reliability diagrams (matplotlib);
* :mod:`~sopjax.surrogates.dispatch`: learned SOP dispatch with a repair step;
* :mod:`~sopjax.surrogates.screening`: surrogate ranking with an exact re-score;
* :mod:`~sopjax.surrogates.sweep`: sweeps through the learned dispatch (``engine = "learned"``);
* :mod:`~sopjax.surrogates.study`: the TOML entry point.
"""

from sopjax.surrogates.errors import SurrogateError
from sopjax.surrogates.evaluate import power_flow_errors, predicted_losses
from sopjax.surrogates.features import FeatureSet, Normalizer, feature_set, fit_normalizer
from sopjax.surrogates.models import GNN, MLP, make_model
from sopjax.surrogates.physics import Residuals, distflow_residuals
from sopjax.surrogates.powerflow import PowerFlowSurrogate, batch_arrays, make_loss
from sopjax.surrogates.study import (
    evaluate_store,
    load_power_flow,
    parse_train_config,
    train_from_config,
    train_power_flow,
)
from sopjax.surrogates.train import TrainSettings, fit

__all__ = [
    "GNN",
    "MLP",
    "FeatureSet",
    "Normalizer",
    "PowerFlowSurrogate",
    "Residuals",
    "SurrogateError",
    "TrainSettings",
    "batch_arrays",
    "distflow_residuals",
    "evaluate_store",
    "feature_set",
    "fit",
    "fit_normalizer",
    "load_power_flow",
    "make_loss",
    "make_model",
    "parse_train_config",
    "power_flow_errors",
    "predicted_losses",
    "train_from_config",
    "train_power_flow",
]
