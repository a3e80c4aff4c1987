"""The dataset's layout: per-sample variables, static graph arrays, and the graph view of a sample.

A dataset is an xarray Dataset (stored as zarr) with dimensions ``sample``, ``bus``,
``branch``, ``sop``, ``pv`` and ``config``. Static arrays (no ``sample`` dim) describe
the feeder: ``f_bus``, ``t_bus`` (0-based bus index of each branch's ends, the edge
list of the full graph), ``r_pu``, ``x_pu``, ``bus_id``, ``branch_number``, ``is_slack``,
``sop_bus_i``, ``sop_bus_j``, ``sop_loss_i``, ``sop_loss_j``, ``pv_bus``, ``config_closed`` (config, branch) and
``config_held_out``. A sample's graph is the full edge list masked by its
``branch_closed`` row; see :func:`edge_index` and docs/surrogates.md. Readable
without sopjax (``examples/load_dataset_numpy.py``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SAMPLE_VARS", "STATIC_VARS", "VARIANT_VARS", "edge_index", "sample_vars"]

#: per-sample variables and their trailing dims (the store's layout; docs/surrogates.md)
SAMPLE_VARS: dict[str, tuple[str, ...]] = {
    "split": (),
    "config_id": (),
    "fault_branch": (),
    "load_scale": (),
    "p_load_pu": ("bus",),
    "q_load_pu": ("bus",),
    "p_pv_pu": ("pv",),
    "s_rated_i_pu": ("sop",),
    "s_rated_j_pu": ("sop",),
    "sop_p_i_pu": ("sop",),
    "sop_q_i_pu": ("sop",),
    "sop_p_j_pu": ("sop",),
    "sop_q_j_pu": ("sop",),
    "p_net_pu": ("bus",),
    "q_net_pu": ("bus",),
    "branch_closed": ("branch",),
    "vm_pu": ("bus",),
    "va_rad": ("bus",),
    "p_from_pu": ("branch",),
    "q_from_pu": ("branch",),
    "p_loss_pu": ("branch",),
    "losses_pu": (),
    "converged": (),
    "iterations": (),
    "energized": ("bus",),
    "recovery": (),
    "dispatch_valid": (),
    "opt_p_i_pu": ("sop",),
    "opt_q_i_pu": ("sop",),
    "opt_p_j_pu": ("sop",),
    "opt_q_j_pu": ("sop",),
    "opt_objective_pu": (),
    "opt_line_loss_pu": (),
    "opt_vm_pu": ("bus",),
    "cap_dual_i": ("sop",),
    "cap_dual_j": ("sop",),
    "dispatch_converged": (),
    "opt_infeasibility_pu": (),
}

#: per-sample variables of a dataset whose ``sop_mode_mix`` enables another family than ``pq``
#: (docs/surrogates.md, "SOP modes and Vf islands"); a default dataset does not hold them
VARIANT_VARS: dict[str, tuple[str, ...]] = {
    "variant": (),
    "sop_mode": ("sop",),
    "u_set_pu": ("sop",),
    "pickup": ("bus",),
    "outage": ("bus",),
    "recovery_ratio": (),
    "vsc_p_i_pu": ("sop",),
    "vsc_q_i_pu": ("sop",),
    "vsc_p_j_pu": ("sop",),
    "vsc_q_j_pu": ("sop",),
    "sop_loading_i": ("sop",),
    "sop_loading_j": ("sop",),
    "island_lost": (),
}


def sample_vars(spec) -> dict[str, tuple[str, ...]]:
    """The per-sample variables of a dataset of ``spec`` and their trailing dims."""
    return {**SAMPLE_VARS, **VARIANT_VARS} if spec.variants else SAMPLE_VARS


#: static variables (no sample dimension) and their dims
STATIC_VARS: dict[str, tuple[str, ...]] = {
    "f_bus": ("branch",),
    "t_bus": ("branch",),
    "r_pu": ("branch",),
    "x_pu": ("branch",),
    "bus_id": ("bus",),
    "branch_number": ("branch",),
    "is_slack": ("bus",),
    "sop_bus_i": ("sop",),
    "sop_bus_j": ("sop",),
    "sop_loss_i": ("sop",),
    "sop_loss_j": ("sop",),
    "pv_bus": ("pv",),
    "config_closed": ("config", "branch"),
    "config_held_out": ("config",),
}


def edge_index(f_bus: np.ndarray, t_bus: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """The closed branches of one sample as a (2, edge) int array (from-bus row, to-bus row).

    PyTorch Geometric's ``edge_index`` convention; add the reversed edges for an
    undirected graph. ``np.flatnonzero(closed)`` gives each edge's branch index.
    """
    k = np.flatnonzero(np.asarray(closed, bool))
    return np.stack([np.asarray(f_bus)[k], np.asarray(t_bus)[k]]).astype(np.int64)
