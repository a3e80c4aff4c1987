"""Restoration strategies: branch statuses + SOP modes/set-points + load pickup.

Build strategies in user units (:meth:`Strategy.build`), from a solver's
per-unit plan (:meth:`Strategy.from_arrays`) or from a config table
(:func:`strategies_from_config`); validate and stack them for the scoring
kernel with :func:`compile_strategies`.
"""

from sopjax.strategies.batch import (
    StrategyBatch,
    compile_strategies,
    outage_buses,
    scoring_context,
)
from sopjax.strategies.config import strategies_from_config, strategy_from_config
from sopjax.strategies.pickup import greedy_pickup, score_once
from sopjax.strategies.strategy import (
    OFF,
    PQ_I,
    PQ_J,
    SOP_MODES,
    VF_I,
    VF_J,
    SOPSetting,
    Strategy,
    StrategyError,
)

__all__ = [
    "OFF", "PQ_I", "PQ_J", "SOP_MODES", "VF_I", "VF_J", "SOPSetting", "Strategy", "StrategyBatch",
    "StrategyError", "compile_strategies", "greedy_pickup", "outage_buses", "score_once", "scoring_context",
    "strategies_from_config", "strategy_from_config",
]
