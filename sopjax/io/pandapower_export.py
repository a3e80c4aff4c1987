"""Build the pandapower net of a :class:`~sopjax.network.Network` (the Newton-Raphson cross-check, the benchmark).

The inverse of :func:`sopjax.io.pandapower.from_pandapower` for what sopjax models:
buses, lines from their per-unit impedances, loads, the slack as an external grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sopjax.errors import NetworkError
from sopjax.network import Network

__all__ = ["to_pandapower"]


def to_pandapower(
    net: Network,
    status: Sequence[bool] | np.ndarray | None = None,
    p_load_pu: np.ndarray | None = None,
    q_load_pu: np.ndarray | None = None,
):
    """Build the pandapower network equivalent to ``net`` (balanced, no shunts).

    Buses keep their ids as pandapower indices; each branch becomes a 1 km line
    with ``r_ohm_per_km``/``x_ohm_per_km`` equal to its impedance in ohms and
    ``c_nf_per_km = 0``, named by its branch number; each bus with a nonzero
    load gets one load; the slack gets an ext_grid at ``v_slack_pu``. Each
    capacitor bank becomes a pandapower shunt (``q_mvar`` per step, ``step`` and
    ``max_step`` its connected and installed steps: the same constant-susceptance
    model). The PV and SOP tables are not exported.

    Args:
        net: the network.
        status: closed flag per branch, (branch,); default the case statuses.
        p_load_pu, q_load_pu: bus load (bus,), default the nominal load.

    Returns:
        A ``pandapowerNet``.
    """
    import pandapower as pp

    if net.has_shunts or net.has_taps:
        raise NetworkError(
            f"to_pandapower exports lines without charging and no transformers; network {net.name!r} has "
            "shunts or transformer ratios (export the original pandapower net instead)"
        )
    nb, nl = net.n_bus, net.n_branch
    closed = np.asarray(net.in_service if status is None else status, dtype=bool)
    if closed.shape != (nl,):
        raise NetworkError(f"branch status needs {nl} entries, got shape {closed.shape}")
    p = np.asarray(net.p_load_pu if p_load_pu is None else p_load_pu, dtype=float)
    q = np.asarray(net.q_load_pu if q_load_pu is None else q_load_pu, dtype=float)
    if p.shape != (nb,) or q.shape != (nb,):
        raise NetworkError(f"loads need shape ({nb},), got {p.shape} and {q.shape}")
    kv = np.asarray(net.base_kv, dtype=float)
    out = pp.create_empty_network(name=net.name, sn_mva=net.base_mva)
    pp.create_buses(
        out,
        nb,
        vn_kv=kv,
        index=list(net.bus_ids),
        min_vm_pu=np.asarray(net.v_min_pu, float),
        max_vm_pu=np.asarray(net.v_max_pu, float),
    )
    ids = np.asarray(net.bus_ids)
    f, t = np.asarray(net.f_bus), np.asarray(net.t_bus)
    zbase = kv[f] ** 2 / net.base_mva
    rate = np.asarray(net.rate_pu, float) * net.base_mva
    imax = np.where(np.isfinite(rate), rate / (math.sqrt(3) * kv[f]), 99999.0)
    if nl:
        pp.create_lines_from_parameters(
            out,
            ids[f],
            ids[t],
            length_km=1.0,
            r_ohm_per_km=np.asarray(net.r_pu, float) * zbase,
            x_ohm_per_km=np.asarray(net.x_pu, float) * zbase,
            c_nf_per_km=0.0,
            max_i_ka=imax,
            in_service=closed,
            name=[str(k) for k in net.branch_numbers],
        )
    has_load = (p != 0) | (q != 0)
    if has_load.any():
        pp.create_loads(
            out, ids[has_load], p_mw=p[has_load] * net.base_mva, q_mvar=q[has_load] * net.base_mva
        )
    cap = net.capacitor
    for k in range(cap.count):
        pp.create_shunt(
            out, int(ids[int(cap.bus[k])]), q_mvar=-float(cap.q_unit_pu[k]) * net.base_mva, p_mw=0.0,
            step=int(cap.step[k]), max_step=max(int(cap.units[k]), 1), name=f"capacitor {k}",
        )
    pp.create_ext_grid(out, int(ids[net.slack_bus]), vm_pu=float(net.v_slack_pu), va_degree=0.0)
    return out
