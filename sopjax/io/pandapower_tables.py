"""pandapower element tables read into sopjax arrays: bus shunts, lines and transformers as branches.

The helpers of :func:`sopjax.io.pandapower.from_pandapower` that turn pandapower's
``shunt``, ``line``, ``switch`` and ``trafo`` rows into per-bus shunt admittances and a
branch table (pi-model lines, transformers with pandapower's own per-unit model, line
switches and dangling ends, parallel branches merged). The mapping is documented in
:mod:`sopjax.io.pandapower`.
"""

from __future__ import annotations

import math

import numpy as np

from sopjax.errors import NetworkError, UnsupportedElementError

__all__ = [
    "in_service", "element_table", "n_rows", "bus_shunts", "line_switches", "dangle_end", "line_branches",
    "append_trafos", "merge_parallel",
]


def in_service(table) -> np.ndarray:
    if "in_service" in table.columns:
        return table["in_service"].fillna(False).to_numpy(dtype=bool)
    return np.ones(len(table), dtype=bool)


def element_table(net_pp, name: str):
    """The element table ``name`` of the pandapower net, or None if absent/empty."""
    try:
        table = net_pp[name]
    except (KeyError, AttributeError):
        return None
    if not hasattr(table, "columns") or len(table) == 0:
        return None
    return table


def merge_parallel(out: dict[str, list]) -> dict[str, list]:
    """Replace branches joining the same two buses by one equivalent branch.

    Closed parallel branches (e.g. two transformers of one substation) become one
    pi branch: series admittances, shunts and ratings add; their ratios and phase
    shifts must be equal. Open parallel branches are dropped (closing one could only
    make a loop). The kept branch keeps the lowest branch number of its group.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for k, (a, b) in enumerate(zip(out["f"], out["t"])):
        groups.setdefault((min(a, b), max(a, b)), []).append(k)
    if all(len(g) == 1 for g in groups.values()):
        return out
    keep: list[int] = []
    for ks in groups.values():
        closed = [k for k in ks if out["status"][k]] or ks[:1]
        first = closed[0]
        for k in closed[1:]:
            same = out["f"][k] == out["f"][first] and abs(out["tap"][k] - out["tap"][first]) < 1e-12 and (
                out["shift"][k] == out["shift"][first])
            if not same:
                raise UnsupportedElementError(
                    f"parallel branches {out['number'][first]} and {out['number'][k]} (buses {out['f'][k]}-"
                    f"{out['t'][k]}) have different orientation, ratio or phase shift; they cannot be merged"
                )
            y = 1 / complex(out["r"][first], out["x"][first]) + 1 / complex(out["r"][k], out["x"][k])
            out["r"][first], out["x"][first] = (1 / y).real, (1 / y).imag
            for col in ("g", "b", "rate"):
                out[col][first] += out[col][k]
            out["dangle"][first] = -1
        keep.append(first)
    keep.sort()
    return {col: [vals[k] for k in keep] for col, vals in out.items()}


def n_rows(net_pp, name: str) -> int:
    table = element_table(net_pp, name)
    return 0 if table is None else len(table)


def bus_shunts(net_pp, uf, rep_pos, bus_on, vn_of, base_mva, dropped):
    """Bus shunt admittance (p.u.) of ``net.shunt``: ``p_mw + j q_mvar`` drawn at ``vn_kv``, x ``step``."""
    g = np.zeros(len(rep_pos))
    b = np.zeros(len(rep_pos))
    shunt = element_table(net_pp, "shunt")
    if shunt is None:
        return g, b
    step = shunt["step"].fillna(1).to_numpy(float) if "step" in shunt.columns else np.ones(len(shunt))
    for pos, (idx, bus, on) in enumerate(zip(shunt.index, shunt["bus"], in_service(shunt))):
        bus = int(bus)
        if bus not in uf:
            raise NetworkError(f"shunt {idx} refers to unknown bus {bus}")
        if not on or not bus_on[bus] or bus in dropped:
            continue
        ratio = (vn_of[bus] / float(shunt["vn_kv"].iloc[pos])) ** 2
        k = rep_pos[uf.find(bus)]
        g[k] += float(shunt["p_mw"].iloc[pos]) * step[pos] * ratio / base_mva
        b[k] -= float(shunt["q_mvar"].iloc[pos]) * step[pos] * ratio / base_mva
    return g, b


def line_switches(net_pp, line) -> dict[int, dict[int, bool]]:
    """For each switched line: ``{bus: closed}`` of the switches at its ends."""
    out: dict[int, dict[int, bool]] = {}
    switches = element_table(net_pp, "switch")
    if switches is None:
        return out
    ls = switches[switches["et"] == "l"]
    for idx, b, e, closed in zip(ls.index, ls["bus"], ls["element"], ls["closed"].astype(bool)):
        e = int(e)
        if e not in line.index:
            raise NetworkError(f"line switch {idx} refers to unknown line {e}")
        if int(b) not in (int(line.at[e, "from_bus"]), int(line.at[e, "to_bus"])):
            raise NetworkError(f"line switch {idx} is at bus {int(b)}, which is not an end of line {e}")
        ends = out.setdefault(e, {})
        ends[int(b)] = ends.get(int(b), True) and bool(closed)
    return out


def dangle_end(a: int, b: int, ends: dict[int, bool] | None, in_service: bool) -> int:
    """The end (0 from, 1 to) that stays connected when the line's switch is open, else -1."""
    if not in_service or not ends:
        return -1
    open_ends = [bus for bus, closed in ends.items() if not closed]
    if len(open_ends) == 1:  # open at one end: the other end keeps the line (and its charging)
        return 1 if open_ends[0] == a else 0
    if not open_ends and len(ends) == 1:  # one (closed) switch: opening it leaves the other end
        return 1 if a in ends else 0
    return -1


def line_branches(net_pp, uf, dropped, bus_on, vn_of, base_mva, f_hz) -> dict[str, list]:
    """Branch columns of ``net.line`` (pi model, per unit on ``base_mva`` and the from-bus ``vn_kv``)."""
    out: dict[str, list] = {k: [] for k in
                            ("f", "t", "r", "x", "g", "b", "rate", "status", "sw", "number", "tap", "shift",
                             "dangle", "trafo")}  # fmt: skip
    line = element_table(net_pp, "line")
    if line is None:
        return out
    on = in_service(line)
    switched = line_switches(net_pp, line)
    cols = {c: line[c].to_numpy(float) for c in ("length_km", "r_ohm_per_km", "x_ohm_per_km")}
    n = len(line)

    def column(name, default):
        return line[name].fillna(default).to_numpy(float) if name in line.columns else np.full(n, default)

    par, df, imax = column("parallel", 1.0), column("df", 1.0), column("max_i_ka", np.inf)
    cnf, gus = column("c_nf_per_km", 0.0), column("g_us_per_km", 0.0)
    for pos, (idx, a, b) in enumerate(zip(line.index, line["from_bus"], line["to_bus"])):
        a, b = int(a), int(b)
        for end in (a, b):
            if end not in uf:
                raise NetworkError(f"line {idx} refers to unknown bus {end}")
        if a in dropped or b in dropped:
            continue  # HV side of the transformers (slack_at_trafo_lv)
        ra, rb = uf.find(a), uf.find(b)
        if ra == rb:
            raise NetworkError(
                f"line {idx} joins buses {a} and {b}, which are merged (closed bus-bus switch, transformer "
                "LV buses or ext_grid buses): it would be a loop of zero length"
            )
        length, npar = cols["length_km"][pos], par[pos]
        if not (np.isfinite(length) and length > 0 and np.isfinite(npar) and npar >= 1):
            raise NetworkError(
                f"line {idx} has length_km={length}, parallel={npar}; need length > 0, parallel >= 1"
            )
        ends = switched.get(int(idx))
        closed = bool(on[pos]) and all((ends or {}).values()) and bus_on[a] and bus_on[b]
        kv = vn_of[a]
        zbase = kv**2 / base_mva
        out["f"].append(ra)
        out["t"].append(rb)
        out["r"].append(cols["r_ohm_per_km"][pos] * length / npar / zbase)
        out["x"].append(cols["x_ohm_per_km"][pos] * length / npar / zbase)
        out["b"].append(2 * math.pi * f_hz * cnf[pos] * 1e-9 * length * npar * zbase)
        out["g"].append(gus[pos] * 1e-6 * length * npar * zbase)
        rate = math.sqrt(3) * kv * imax[pos] * df[pos] * npar
        out["rate"].append(rate if np.isfinite(imax[pos]) else np.inf)
        out["status"].append(closed)
        out["sw"].append(ends is not None or not bool(on[pos]))
        out["number"].append(pos + 1)
        out["tap"].append(1.0)
        out["shift"].append(0.0)
        out["dangle"].append(dangle_end(a, b, ends, bool(on[pos]) and bus_on[a] and bus_on[b]))
        out["trafo"].append(False)
    return out


def append_trafos(out: dict[str, list], net_pp, uf, bus_on, n_lines: int) -> dict[str, list]:
    """Add ``net.trafo`` rows as branches numbered after the lines (hv = from side)."""
    trafo = element_table(net_pp, "trafo")
    if trafo is None:
        return out
    from sopjax.io.pandapower_trafo import trafo_branches

    tb = trafo_branches(net_pp, trafo)
    on = in_service(trafo)
    open_t: set[int] = set()
    switched: set[int] = set()
    switches = element_table(net_pp, "switch")
    if switches is not None:
        ts = switches[switches["et"] == "t"]
        switched = {int(e) for e in ts["element"]}
        open_t = {int(e) for e, c in zip(ts["element"], ts["closed"].astype(bool)) if not c}
    for pos, idx in enumerate(tb.index):
        a, b = int(tb.hv_bus[pos]), int(tb.lv_bus[pos])
        for end in (a, b):
            if end not in uf:
                raise NetworkError(f"transformer {idx} refers to unknown bus {end}")
        if uf.find(a) == uf.find(b):
            raise NetworkError(f"transformer {idx} joins buses {a} and {b}, which are merged")
        out["f"].append(uf.find(a))
        out["t"].append(uf.find(b))
        out["r"].append(tb.r_pu[pos])
        out["x"].append(tb.x_pu[pos])
        out["g"].append(tb.g_pu[pos])
        out["b"].append(tb.b_pu[pos])
        out["rate"].append(tb.rate_mva[pos])
        out["status"].append(bool(on[pos]) and int(idx) not in open_t and bus_on[a] and bus_on[b])
        out["sw"].append(int(idx) in switched)
        out["number"].append(n_lines + pos + 1)
        out["tap"].append(tb.tap[pos])
        out["shift"].append(tb.shift_deg[pos])
        out["dangle"].append(-1)
        out["trafo"].append(True)
    return out
