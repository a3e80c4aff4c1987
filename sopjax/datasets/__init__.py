"""Labelled datasets of radial feeders with SOPs, for ML pipelines (``sopjax dataset``).

* :mod:`~sopjax.datasets.spec`: what a dataset holds (:class:`DatasetSpec`, split names);
* :mod:`~sopjax.datasets.variants`: the pool of radial switch configurations;
* :mod:`~sopjax.datasets.generate`: one chunk, a pure function of ``(seed, chunk index)``;
* :mod:`~sopjax.datasets.labels`: labels from the exact power flow and the JAX dispatch;
* :mod:`~sopjax.datasets.islands`: SOP mode families, Vf-mode SOP islands labelled by the
  Monte Carlo engine's exact kernel;
* :mod:`~sopjax.datasets.restoration`: MISOCP restoration labels of a subset (own zarr group);
* :mod:`~sopjax.datasets.layout`: variables and the graph layout (docs/surrogates.md);
* :mod:`~sopjax.datasets.store`: the chunked, resumable, growable zarr store;
* :mod:`~sopjax.datasets.loader`: split selection and a JAX batch iterator;
* :mod:`~sopjax.datasets.study`: the TOML entry point.
"""

from sopjax.datasets.generate import draw_inputs, generate_chunk, sop_p_j
from sopjax.datasets.islands import sample_network, sample_strategy, variant_labels, vf_labels
from sopjax.datasets.labels import dispatch_labels, exact_kernel, power_flow_labels, sample_topologies
from sopjax.datasets.layout import SAMPLE_VARS, STATIC_VARS, VARIANT_VARS, edge_index, sample_vars
from sopjax.datasets.loader import batches, load_split, split_mask
from sopjax.datasets.restoration import (
    open_restoration,
    restoration_problem,
    restoration_samples,
    write_restoration,
)
from sopjax.datasets.spec import SPLITS, VARIANTS, DatasetError, DatasetSpec
from sopjax.datasets.store import (
    DatasetJob,
    build_dataset,
    chunks_done,
    dataset_network,
    network_fingerprint,
    open_store,
    static_dataset,
    store_pool,
    write_chunk,
    write_chunk_task,
)
from sopjax.datasets.study import dataset_from_config, network_from_attrs
from sopjax.datasets.variants import configuration_pool, random_spanning_tree, vf_candidates

__all__ = [
    "DatasetJob",
    "SAMPLE_VARS",
    "SPLITS",
    "STATIC_VARS",
    "VARIANTS",
    "VARIANT_VARS",
    "DatasetError",
    "DatasetSpec",
    "batches",
    "build_dataset",
    "chunks_done",
    "configuration_pool",
    "dataset_from_config",
    "dataset_network",
    "dispatch_labels",
    "draw_inputs",
    "edge_index",
    "exact_kernel",
    "generate_chunk",
    "load_split",
    "network_fingerprint",
    "network_from_attrs",
    "open_restoration",
    "open_store",
    "power_flow_labels",
    "random_spanning_tree",
    "restoration_problem",
    "restoration_samples",
    "sample_network",
    "sample_strategy",
    "sample_topologies",
    "sample_vars",
    "sop_p_j",
    "split_mask",
    "static_dataset",
    "store_pool",
    "variant_labels",
    "vf_candidates",
    "vf_labels",
    "write_chunk",
    "write_chunk_task",
    "write_restoration",
]
