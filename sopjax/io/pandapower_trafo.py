"""Two-winding transformers of a pandapower net as sopjax branches.

The per-unit branch model is pandapower's own: the net is converted with
``pandapower.converter.pypower.to_ppc`` (on a copy), and each transformer's row
of the resulting MATPOWER branch matrix gives its series impedance, magnetizing
shunt (after pandapower's T-to-pi conversion), off-nominal ratio (rated voltages
against the bus voltages, tap position and tap side folded in) and phase shift, on
``net.sn_mva`` and the buses' ``vn_kv``: the same numbers pandapower's
Newton-Raphson uses, so the two cannot disagree on what a transformer is.

A vector-group shift (``shift_degree``, a multiple of 30 degrees) only rotates the
downstream angles of a radial network and is kept; any other phase shift (a
phase-shifting transformer: ``tap_changer_type`` "Ideal"/"Symmetrical" with a
phase step, ``tap_phase_shifter``, or a shift that is not a multiple of 30
degrees) is refused.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np

from sopjax.errors import UnsupportedElementError

__all__ = ["TrafoBranches", "trafo_branches"]


@dataclasses.dataclass(frozen=True)
class TrafoBranches:
    """Per-unit branch data of the transformers, in ``net.trafo`` row order.

    Attributes:
        index: pandapower trafo indices, (trafo,).
        hv_bus, lv_bus: pandapower bus indices (from = hv, to = lv), (trafo,).
        r_pu, x_pu: series impedance, (trafo,).
        g_pu, b_pu: total pi-model shunt (magnetizing), (trafo,).
        tap: off-nominal ratio at the hv side, (trafo,).
        shift_deg: vector-group phase shift (degrees), (trafo,).
        rate_mva: rating ``sn_mva * parallel * df``, (trafo,).
    """

    index: np.ndarray
    hv_bus: np.ndarray
    lv_bus: np.ndarray
    r_pu: np.ndarray
    x_pu: np.ndarray
    g_pu: np.ndarray
    b_pu: np.ndarray
    tap: np.ndarray
    shift_deg: np.ndarray
    rate_mva: np.ndarray


def _column(trafo, name, default):
    if name not in trafo.columns:
        return np.full(len(trafo), default, dtype=object)
    return trafo[name].to_numpy()


def _check_phase_shifters(trafo) -> None:
    kind = _column(trafo, "tap_changer_type", None)
    step_deg = np.asarray(_column(trafo, "tap_step_degree", np.nan), dtype=float)
    shifter = _column(trafo, "tap_phase_shifter", False)
    for pos, idx in enumerate(trafo.index):
        k = kind[pos]
        has_step = np.isfinite(step_deg[pos]) and step_deg[pos] != 0
        flagged = isinstance(shifter[pos], (bool, np.bool_)) and bool(shifter[pos])
        if k == "Ideal" or (k == "Symmetrical" and has_step) or flagged:
            raise UnsupportedElementError(
                f"transformer {idx} ({trafo['name'].iloc[pos] if 'name' in trafo.columns else ''}) is a "
                "phase-shifting transformer (tap_changer_type / tap_step_degree); only fixed vector-group "
                "shifts are modelled"
            )


def trafo_branches(net_pp, trafo) -> TrafoBranches:
    """Branch data of the rows of ``trafo`` (a slice of ``net_pp.trafo``).

    Raises:
        UnsupportedElementError: a phase-shifting transformer, or one whose pandapower
            model is asymmetric (different series impedance seen from the two sides).
    """
    from pandapower.converter.pypower.to_ppc import to_ppc
    from pandapower.pypower.idx_brch import BR_B, BR_R, BR_X, SHIFT, TAP

    _check_phase_shifters(trafo)
    net = copy.deepcopy(net_pp)
    with warnings.catch_warnings():  # pandapower's deprecation notes on older saved nets
        warnings.simplefilter("ignore", DeprecationWarning)
        ppci = to_ppc(net, init="flat", calculate_voltage_angles=True, check_connectivity=False)
    start, _ = net._pd2ppc_lookups["branch"]["trafo"]
    pos = np.asarray([net.trafo.index.get_loc(i) for i in trafo.index], dtype=int) + start
    br = np.real(net._ppc["branch"][pos])
    for name in ("branch_r_asym", "branch_x_asym", "branch_g_asym", "branch_b_asym"):
        if name in ppci and np.any(np.asarray(ppci[name])[pos] != 0):
            k = int(np.flatnonzero(np.asarray(ppci[name])[pos] != 0)[0])
            raise UnsupportedElementError(
                f"transformer {trafo.index[k]} has an asymmetric pandapower model ({name}); "
                "only symmetric pi models are supported"
            )
    g = np.real(np.asarray(ppci["branch_g"])[pos]) if "branch_g" in ppci else np.zeros(len(pos))
    shift = br[:, SHIFT]
    bad = np.flatnonzero(np.abs(np.remainder(shift + 1e-9, 30.0)) > 1e-6)
    if bad.size:
        k = int(bad[0])
        raise UnsupportedElementError(
            f"transformer {trafo.index[k]} shifts the phase by {shift[k]:g} degrees, not a vector group "
            "(multiple of 30): phase-shifting transformers are not modelled"
        )
    tap = br[:, TAP]
    tap = np.where(tap == 0, 1.0, tap)
    par = np.asarray(trafo["parallel"], float) if "parallel" in trafo.columns else np.ones(len(trafo))
    df = np.asarray(trafo["df"].fillna(1.0), float) if "df" in trafo.columns else np.ones(len(trafo))
    return TrafoBranches(
        index=np.asarray(trafo.index),
        hv_bus=np.asarray(trafo["hv_bus"], int),
        lv_bus=np.asarray(trafo["lv_bus"], int),
        r_pu=br[:, BR_R].copy(),
        x_pu=br[:, BR_X].copy(),
        g_pu=g,
        b_pu=br[:, BR_B].copy(),
        tap=tap,
        shift_deg=shift.copy(),
        rate_mva=np.asarray(trafo["sn_mva"], float) * par * df,
    )
