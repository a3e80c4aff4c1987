"""Read pandapower networks into :class:`~sopjax.network.Network`.

``from_pandapower`` compiles a balanced pandapower distribution network into a
validated ``Network``. The way back, ``to_pandapower``, is in
:mod:`sopjax.io.pandapower_export`.

Mapping (pandapower -> sopjax):

* **buses**: ``Network.bus_ids`` are pandapower bus indices; ``base_kv`` =
  ``vn_kv``; ``v_min_pu`` / ``v_max_pu`` from ``min_vm_pu`` / ``max_vm_pu`` when
  present, else 0.9 / 1.1. Buses joined by a *closed* bus-bus switch are merged
  into the bus of lowest index; see :func:`pandapower_bus_map`.
* **lines**: pi model, ``r = r_ohm_per_km * length_km / parallel`` (x likewise),
  total shunt ``b = 2 pi f c_nf_per_km 1e-9 length parallel``, ``g = g_us_per_km
  1e-6 length parallel`` (``line_charging=False`` drops the shunt), rating
  ``sqrt(3) * vn_kv * max_i_ka * df * parallel`` MVA. Line *i* of ``net.line``
  (row order, 0-based position *i*) is branch number ``i + 1``, so
  ``net.line.index[number - 1]`` is its pandapower index.
* **transformers**: trafo *j* is branch number ``len(net.line) + j + 1`` (hv =
  from side), with pandapower's own per-unit model
  (:mod:`sopjax.io.pandapower_trafo`); phase shifters are refused.
* **parallel branches** between the same two buses are merged into one.
* **switches**: a line switch (``et='l'``) that is open opens its line; every
  line with a switch is ``switchable``; a line open at one end only stays
  connected at the other (``dangle_end``: its charging stays, as in pandapower).
  Out-of-service lines are open and also ``switchable`` (the MATPOWER convention
  for tie lines, e.g. ``case33bw``). An open trafo switch opens its transformer.
  Open bus-bus switches (``et='b'``) are ignored: they join nothing, and sopjax
  reconfigures branches, not bus couplers. Closed bus-bus switches with
  ``z_ohm > 0`` are not supported.
* **loads** and **storage**: ``p_mw * scaling``, ``q_mvar * scaling`` (pandapower
  applies the scaling to both), summed per bus (storage at its set-point, positive
  = charging); constant-current / constant-impedance shares (``const_i_*``,
  ``const_z_*``) are rejected.
* **shunts**: bus shunt admittance ``(p_mw - j q_mvar) step (vn_bus / vn_kv)^2``.
* **sgens**: PV/DG units at their bus and set-point (``p_set_pu``); rating
  ``max(sn_mva, |p + jq|)``, power factor ``p / |p + jq|``. With ``sgen_as="load"``
  their present output is instead subtracted from the bus load.
* **ext_grid**: its bus is the slack, ``vm_pu`` the slack voltage (``va_degree``
  is dropped: sopjax angles are relative to the slack); several ext_grids of one
  ``vm_pu`` are merged into one slack bus unless closed branches connect them.

Everything else that carries power (three-winding transformers, generators,
wards, impedances, motors, asymmetric elements, ...) raises
:class:`~sopjax.errors.UnsupportedElementError` naming what was found and how many.
``slack_at_trafo_lv=True`` replaces every in-service transformer by an ideal
source at its LV bus at the ext_grid's ``vm_pu`` and drops the HV side. Several
such LV busbars are merged into one slack bus, which is exact for ideal sources
of the same set-point as long as the LV grids are not connected to each other (a
connection then shows up as a closed loop).
"""

from __future__ import annotations

import math

import numpy as np

from sopjax import graph
from sopjax.errors import NetworkError, TopologyError, UnsupportedElementError
from sopjax.network import Network, PVUnits, make_network
from sopjax.io.pandapower_tables import (
    append_trafos, bus_shunts, element_table, in_service, line_branches, merge_parallel, n_rows,
)
from sopjax.topology import compile_topology

__all__ = ["from_pandapower", "pandapower_bus_map", "load_pandapower_network"]

# element tables sopjax cannot represent; rows out of service are ignored
_UNSUPPORTED = (
    ("trafo3w", "three-winding transformer"),
    ("gen", "voltage-controlled generator (gen)"),
    ("impedance", "impedance branch"),
    ("tcsc", "TCSC"),
    ("svc", "SVC"),
    ("ssc", "SSC"),
    ("vsc", "VSC"),
    ("xward", "extended ward"),
    ("ward", "ward"),
    ("dcline", "DC line"),
    ("motor", "motor"),
    ("asymmetric_load", "asymmetric load"),
    ("asymmetric_sgen", "asymmetric static generator"),
    ("line_dc", "DC line"),
    ("bus_dc", "DC bus"),
    ("load_dc", "DC load"),
    ("source_dc", "DC source"),
    ("vsc_bipolar", "bipolar VSC"),
    ("vsc_stacked", "stacked VSC"),
)

_DEFAULT_VMIN, _DEFAULT_VMAX = 0.9, 1.1


def _check_unsupported(net_pp, slack_at_trafo_lv: bool) -> None:
    found = []
    for name, what in _UNSUPPORTED:
        table = element_table(net_pp, name)
        if table is None:
            continue
        n = int(in_service(table).sum())
        if n:
            found.append(f"{n} {what}{'s' if n > 1 else ''} (net.{name})")
    if found:
        raise UnsupportedElementError(
            "the pandapower network holds elements sopjax does not model: " + ", ".join(found)
        )


def _trafo_sources(net_pp, uf: graph.DisjointSet, switches) -> tuple[set[int], float, set[int]]:
    """Replace transformers by ideal sources at their LV buses.

    Returns (kept LV bus representatives, slack vm_pu, dropped HV-side buses).
    """
    trafo = element_table(net_pp, "trafo")
    ext = element_table(net_pp, "ext_grid")
    if trafo is None or not in_service(trafo).any():
        raise UnsupportedElementError("slack_at_trafo_lv=True but the network has no in-service transformer")
    trafo = trafo[in_service(trafo)]
    if switches is not None:
        ts = switches[(switches["et"] == "t") & ~switches["closed"].astype(bool)]
        open_t = sorted(set(int(e) for e in ts["element"]) & set(int(i) for i in trafo.index))
        if open_t:
            raise UnsupportedElementError(
                f"transformer {open_t[0]} has an open switch; with slack_at_trafo_lv=True every "
                "in-service transformer becomes a source: set it out of service instead"
            )
    # HV side: everything reachable from the HV buses through lines/bus switches
    # without crossing a transformer.
    lv = {int(b) for b in trafo["lv_bus"]}
    hv = {int(b) for b in trafo["hv_bus"]}
    pairs: list[tuple[int, int]] = []
    line = element_table(net_pp, "line")
    if line is not None:
        on = in_service(line)
        pairs += zip(line["from_bus"].to_numpy()[on], line["to_bus"].to_numpy()[on])
    if switches is not None:
        bb = switches[(switches["et"] == "b") & switches["closed"].astype(bool)]
        pairs += zip(bb["bus"], bb["element"])
    pairs = [(int(a), int(b)) for a, b in pairs]
    joined = graph.DisjointSet(hv.union(*pairs))
    for a, b in pairs:
        joined.union(a, b)
    hv_roots = {joined.find(b) for b in hv}
    hv_side = {b for b in joined if joined.find(b) in hv_roots}
    clash = hv_side & lv
    if clash:
        raise UnsupportedElementError(
            f"bus {min(clash)} is on both sides of the transformers (the LV grid connects back to the "
            "HV side); slack_at_trafo_lv needs the transformers to be the only link to the upstream grid"
        )
    vms = []
    if ext is not None:
        ext_on = ext[in_service(ext)]
        for bus, vm in zip(ext_on["bus"], ext_on["vm_pu"]):
            if int(bus) in hv_side:
                vms.append(float(vm))
            else:
                raise UnsupportedElementError(
                    f"ext_grid at bus {int(bus)} is not on the HV side of the transformers; with "
                    "slack_at_trafo_lv=True the transformers must be the only sources"
                )
    if not vms:
        raise UnsupportedElementError(
            "slack_at_trafo_lv=True but no in-service ext_grid feeds the transformers"
        )
    if max(vms) - min(vms) > 1e-12:
        raise UnsupportedElementError(
            f"the ext_grids feeding the transformers have different vm_pu ({min(vms)} .. {max(vms)}); "
            "their LV buses cannot be merged into one slack"
        )
    for name in ("load", "sgen"):
        table = element_table(net_pp, name)
        if table is None:
            continue
        on_hv = in_service(table) & table["bus"].isin(hv_side).to_numpy()
        if on_hv.any():
            raise UnsupportedElementError(
                f"{int(on_hv.sum())} {name}(s) on the HV side of the transformers (e.g. at bus "
                f"{int(table['bus'][on_hv].iloc[0])}) would be dropped by slack_at_trafo_lv=True"
            )
    lv_sorted = sorted(lv)
    for b in lv_sorted[1:]:
        uf.union(lv_sorted[0], b)
    return {uf.find(b) for b in lv}, vms[0], hv_side


def _grouping(net_pp, slack_at_trafo_lv: bool):
    """Union-find of merged buses, the set of dropped buses and trafo slack info."""
    bus = net_pp["bus"]
    uf = graph.DisjointSet(int(i) for i in bus.index)
    switches = element_table(net_pp, "switch")
    if switches is not None:
        bb = switches[switches["et"] == "b"]
        for idx, a, b, closed, z in zip(
            bb.index,
            bb["bus"],
            bb["element"],
            bb["closed"].astype(bool),
            bb["z_ohm"] if "z_ohm" in bb.columns else np.zeros(len(bb)),
        ):
            if not closed:
                continue  # an open bus-bus switch joins nothing (see module docstring)
            if z is not None and np.isfinite(z) and z > 0:
                raise UnsupportedElementError(
                    f"bus-bus switch {idx} (buses {int(a)}-{int(b)}) is closed with z_ohm={z}; "
                    "only ideal (z_ohm = 0) bus couplers can be merged"
                )
            for end in (a, b):
                if int(end) not in uf:
                    raise NetworkError(f"bus-bus switch {idx} refers to unknown bus {int(end)}")
            uf.union(int(a), int(b))
    dropped: set[int] = set()
    trafo_info = None
    if slack_at_trafo_lv:
        sources, vm, dropped = _trafo_sources(net_pp, uf, switches)
        trafo_info = (sources, vm)
    else:
        ext = element_table(net_pp, "ext_grid")
        ext_buses = sorted(int(b) for b in ext["bus"][in_service(ext)]) if ext is not None else []
        for b in ext_buses[1:]:  # ideal sources of one set-point: one slack (checked in _slack)
            if b in uf and ext_buses[0] in uf:
                uf.union(ext_buses[0], b)
    return uf, dropped, trafo_info


def pandapower_bus_map(net_pp, *, slack_at_trafo_lv: bool = False) -> dict[int, int]:
    """Map each pandapower bus index to the ``Network.bus_ids`` entry it became.

    Buses merged by closed bus-bus switches (or, with ``slack_at_trafo_lv``, the
    transformers' LV buses) map to the lowest index of their group; buses dropped
    on the HV side of the transformers are absent.
    """
    uf, dropped, _ = _grouping(net_pp, slack_at_trafo_lv)
    return {int(b): uf.find(int(b)) for b in net_pp["bus"].index if int(b) not in dropped}


def from_pandapower(
    net_pp,
    name: str | None = None,
    *,
    slack_at_trafo_lv: bool = False,
    sgen_as: str = "pv",
    line_charging: bool = True,
) -> Network:
    """Compile a balanced pandapower network into a :class:`Network`.

    Args:
        net_pp: a ``pandapowerNet`` (not modified).
        name: network name (default ``net_pp.name`` or ``"pandapower"``).
        slack_at_trafo_lv: replace the in-service transformers by ideal sources at
            their LV buses (merged into one slack) and drop the HV side.
        sgen_as: ``"pv"`` (sgens become PV units, their output is not in the load)
            or ``"load"`` (their present output ``p_mw``, ``q_mvar`` is subtracted
            from the bus load, e.g. to reproduce pandapower's power flow).
        line_charging: model the lines' shunt capacitance and conductance (pi model,
            default); False drops them (a series-impedance model, e.g. to benchmark
            against solvers without shunts).

    Returns:
        A validated :class:`Network`; ``bus_ids`` are pandapower bus indices and
        branch number ``k`` is row ``k - 1`` of ``net_pp.line``.

    Raises:
        UnsupportedElementError: an element sopjax does not model (what, how many).
        NetworkError: invalid data, naming the bus / line / switch at fault.
    """
    if sgen_as not in ("pv", "load"):
        raise NetworkError(f"sgen_as must be 'pv' or 'load', got {sgen_as!r}")
    bus = element_table(net_pp, "bus")
    if bus is None:
        raise NetworkError("the pandapower network has no buses")
    _check_unsupported(net_pp, slack_at_trafo_lv)
    uf, dropped, trafo_info = _grouping(net_pp, slack_at_trafo_lv)
    base_mva = float(getattr(net_pp, "sn_mva", 1.0) or 1.0)
    f_hz = float(getattr(net_pp, "f_hz", 50.0) or 50.0)
    name = name or (str(net_pp.name) if getattr(net_pp, "name", "") else "pandapower")

    # ---------------------------------------------------------------- buses
    bus_on = dict(zip((int(i) for i in bus.index), in_service(bus)))
    kept = [int(b) for b in bus.index if int(b) not in dropped]
    reps = sorted({uf.find(b) for b in kept})
    rep_pos = {r: i for i, r in enumerate(reps)}
    vn = bus["vn_kv"].to_numpy(dtype=float)
    vn_of = dict(zip((int(i) for i in bus.index), vn))
    for b in kept:
        r = uf.find(b)
        if abs(vn_of[b] - vn_of[r]) > 1e-9 * vn_of[r]:
            raise NetworkError(
                f"buses {r} and {b} are merged (closed bus-bus switch or transformer LV buses) but have "
                f"different vn_kv ({vn_of[r]} and {vn_of[b]} kV)"
            )

    def bus_column(col: str, default: float) -> np.ndarray:
        out = np.full(len(reps), default)
        if col in bus.columns:
            vals = dict(zip((int(i) for i in bus.index), bus[col].to_numpy(dtype=float)))
            for r in reps:
                if np.isfinite(vals[r]):
                    out[rep_pos[r]] = vals[r]
        return out

    base_kv = np.array([vn_of[r] for r in reps])
    vmin = bus_column("min_vm_pu", _DEFAULT_VMIN)
    vmax = bus_column("max_vm_pu", _DEFAULT_VMAX)

    # -------------------------------------------------------------- sources
    ext_on = None
    if trafo_info is not None:
        sources, v_slack = trafo_info
        slack = min(sources)
    else:
        ext = element_table(net_pp, "ext_grid")
        ext_on = ext[in_service(ext)] if ext is not None else None
        n_ext = 0 if ext_on is None else len(ext_on)
        if n_ext == 0:
            raise UnsupportedElementError("a radial feeder needs exactly one in-service ext_grid, found 0")
        for b in ext_on["bus"]:
            if int(b) not in uf:
                raise NetworkError(f"ext_grid refers to unknown bus {int(b)}")
        vms = ext_on["vm_pu"].to_numpy(float)
        if np.ptp(vms) > 1e-12:
            raise UnsupportedElementError(
                f"a radial feeder needs exactly one in-service ext_grid, found {n_ext} with different vm_pu "
                f"(at buses {', '.join(str(int(b)) for b in ext_on['bus'])}): they cannot be one slack"
            )
        slack = uf.find(int(ext_on["bus"].iloc[0]))
        v_slack = float(vms[0])
    if not bus_on.get(slack, True):
        raise NetworkError(f"the slack bus {slack} is out of service")

    # ---------------------------------------------------------------- loads
    p = np.zeros(len(reps))
    q = np.zeros(len(reps))

    def add_bus_power(table_name: str, sign: float) -> None:
        table = element_table(net_pp, table_name)
        if table is None:
            return
        on = in_service(table)
        scale = (
            table["scaling"].fillna(1.0).to_numpy(float)
            if "scaling" in table.columns
            else np.ones(len(table))
        )
        pw = table["p_mw"].to_numpy(float) * scale
        qv = table["q_mvar"].fillna(0.0).to_numpy(float) * scale
        for idx, b, o, pi, qi in zip(table.index, table["bus"].to_numpy(), on, pw, qv):
            if not o:
                continue
            b = int(b)
            if b not in uf:
                raise NetworkError(f"{table_name} {idx} refers to unknown bus {b}")
            if not np.isfinite(pi) or not np.isfinite(qi):
                raise NetworkError(
                    f"{table_name} {idx} at bus {b} has a non-finite power ({pi} MW, {qi} Mvar)"
                )
            if not bus_on[b]:
                continue  # out-of-service bus: pandapower ignores its elements too
            k = rep_pos[uf.find(b)]
            p[k] += sign * pi
            q[k] += sign * qi

    load = element_table(net_pp, "load")
    if load is not None:
        for col in (
            "const_z_p_percent",
            "const_i_p_percent",
            "const_z_q_percent",
            "const_i_q_percent",
            "const_z_percent",
            "const_i_percent",
        ):
            if col in load.columns:
                nz = in_service(load) & (load[col].fillna(0).to_numpy(float) != 0)
                if nz.any():
                    raise UnsupportedElementError(
                        f"{int(nz.sum())} load(s) have a voltage-dependent share ({col}), e.g. load "
                        f"{load.index[nz][0]}; sopjax models constant-power loads only"
                    )
    add_bus_power("load", 1.0)
    add_bus_power("storage", 1.0)  # at its set-point, p_mw > 0 charging (pandapower's load convention)

    pv_bus, pv_s, pv_pf, pv_p = [], [], [], []
    sgen = element_table(net_pp, "sgen")
    if sgen is not None and sgen_as == "load":
        add_bus_power("sgen", -1.0)
    elif sgen is not None:
        scale = (
            sgen["scaling"].fillna(1.0).to_numpy(float) if "scaling" in sgen.columns else np.ones(len(sgen))
        )
        sn = sgen["sn_mva"].to_numpy(float) if "sn_mva" in sgen.columns else np.full(len(sgen), np.nan)
        for idx, b, o, pi, qi, si, sc in zip(
            sgen.index,
            sgen["bus"].to_numpy(),
            in_service(sgen),
            sgen["p_mw"].to_numpy(float),
            sgen["q_mvar"].fillna(0.0).to_numpy(float),
            sn,
            scale,
        ):
            if int(b) not in uf:
                raise NetworkError(f"sgen {idx} refers to unknown bus {int(b)}")
            if not o or not bus_on[int(b)]:
                continue
            pi, qi = pi * sc, qi * sc
            if not np.isfinite(pi) or not np.isfinite(qi) or pi < 0 or qi < 0:
                raise UnsupportedElementError(
                    f"sgen {idx} at bus {int(b)} has p_mw={pi}, q_mvar={qi}; PV units need p >= 0 and "
                    "q >= 0 (use sgen_as='load' to fold it into the load)"
                )
            mag = math.hypot(pi, qi)
            rating = max(si, mag) if np.isfinite(si) and si > 0 else mag
            pv_bus.append(rep_pos[uf.find(int(b))])
            pv_s.append(rating / base_mva)
            pv_pf.append(pi / mag if mag > 0 else 1.0)
            pv_p.append(pi / base_mva)

    g_sh, b_sh = bus_shunts(net_pp, uf, rep_pos, bus_on, vn_of, base_mva, dropped)
    branches = line_branches(net_pp, uf, dropped, bus_on, vn_of, base_mva, f_hz)
    if not line_charging:
        branches["g"] = [0.0] * len(branches["g"])
        branches["b"] = [0.0] * len(branches["b"])
    if not slack_at_trafo_lv:
        branches = append_trafos(branches, net_pp, uf, bus_on, n_lines=n_rows(net_pp, "line"))
    branches = merge_parallel(branches)

    net = make_network(
        bus_ids=reps,
        p_load_mw=p,
        q_load_mvar=q,
        branch_from=branches["f"],
        branch_to=branches["t"],
        r_pu=branches["r"],
        x_pu=branches["x"],
        slack_bus=slack,
        base_kv=base_kv,
        base_mva=base_mva,
        v_slack_pu=v_slack,
        v_min_pu=vmin,
        v_max_pu=vmax,
        rate_mva=branches["rate"],
        in_service=branches["status"],
        switchable=branches["sw"],
        branch_numbers=branches["number"],
        name=name,
        shunt_g_pu=g_sh,
        shunt_b_pu=b_sh,
        branch_g_pu=branches["g"],
        branch_b_pu=branches["b"],
        tap=branches["tap"],
        shift_deg=branches["shift"],
        dangle_end=branches["dangle"],
        transformer=branches["trafo"],
    )
    if ext_on is not None and len(ext_on) > 1:
        _check_sources_apart(net, ext_on)
    if pv_bus:
        net = net.with_devices(
            pv=PVUnits(
                bus=np.asarray(pv_bus, dtype=np.int32),
                s_rated_pu=np.asarray(pv_s, dtype=float),
                pf=np.asarray(pv_pf, dtype=float),
                p_set_pu=np.asarray(pv_p, dtype=float),
            )
        )
    return net


def _check_sources_apart(net: Network, ext_on) -> None:
    """Several ext_grids became one slack bus: refuse if closed branches connect them (a loop)."""
    try:
        compile_topology(net, np.asarray(net.in_service, bool))
    except TopologyError as e:
        raise UnsupportedElementError(
            f"a radial feeder needs exactly one in-service ext_grid, found {len(ext_on)} (at buses "
            f"{', '.join(str(int(b)) for b in ext_on['bus'])}) and closed branches connect them: {e}"
        ) from None


def load_pandapower_network(name: str, **kwargs) -> Network:
    """A network from a ``pandapower.networks`` builder, e.g. ``"lv_schutterwald"``.

    Keyword arguments go to :func:`from_pandapower`; when the builder's network
    holds transformers and ``slack_at_trafo_lv`` is not given, it is set to True
    (the feeder below the substation transformers).

    Raises:
        NetworkError: if no such builder exists.
    """
    import pandapower.networks as pn

    builder = getattr(pn, name, None)
    if builder is None or not callable(builder) or name.startswith("_"):
        raise NetworkError(f"pandapower.networks has no network builder {name!r}")
    net_pp = builder()
    if not hasattr(net_pp, "bus"):
        raise NetworkError(f"pandapower.networks.{name}() did not return a network")
    if "slack_at_trafo_lv" not in kwargs:
        trafo = element_table(net_pp, "trafo")
        kwargs["slack_at_trafo_lv"] = trafo is not None and bool(in_service(trafo).any())
    kwargs.setdefault("name", name)
    return from_pandapower(net_pp, **kwargs)
