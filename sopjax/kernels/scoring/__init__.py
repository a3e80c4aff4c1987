"""Monte Carlo scoring of restoration strategies, one module per concern.

* :mod:`~sopjax.kernels.scoring.arrays`: kernel inputs (:class:`StrategyArrays`,
  :class:`ScoringContext`);
* :mod:`~sopjax.kernels.scoring.options`: static settings (:class:`ScoringOptions`,
  :class:`HistSpec`);
* :mod:`~sopjax.kernels.scoring.sample`: one strategy on one sample
  (:func:`score_sample`, :class:`SampleScore`; the scoring conventions);
* :mod:`~sopjax.kernels.scoring.layout`: strategies x samples on the device
  (:func:`score_batch`);
* :mod:`~sopjax.kernels.scoring.reduce`: per-chunk reductions (:func:`reduce_chunk`,
  :class:`ChunkMoments`, histograms).
"""

from sopjax.kernels.scoring.arrays import ScoringContext, StrategyArrays
from sopjax.kernels.scoring.layout import blocked_map, score_batch, score_strategy
from sopjax.kernels.scoring.options import HistSpec, ScoringOptions
from sopjax.kernels.scoring.reduce import (
    EXACT_FIELDS,
    MEAN_ONLY,
    MOMENT_FIELDS,
    ChunkMoments,
    chunk_moments,
    histogram,
    reduce_chunk,
)
from sopjax.kernels.scoring.sample import SampleScore, net_load, score_flow, score_sample, sop_powers

__all__ = [
    "StrategyArrays",
    "ScoringContext",
    "ScoringOptions",
    "SampleScore",
    "HistSpec",
    "score_sample",
    "score_flow",
    "net_load",
    "sop_powers",
    "score_batch",
    "score_strategy",
    "blocked_map",
    "reduce_chunk",
    "chunk_moments",
    "histogram",
    "ChunkMoments",
    "MOMENT_FIELDS",
    "MEAN_ONLY",
    "EXACT_FIELDS",
]
