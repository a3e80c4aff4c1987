"""``sopjax powerflow CASE``: one radial power flow with switch changes."""

from __future__ import annotations

import argparse


from sopjax.cli.common import nonnegative_float, positive_float


def register(sub) -> None:
    p = sub.add_parser(
        "powerflow",
        help="run a radial power flow on a case",
        description="Run an exact radial power flow (backward/forward sweep) on a built-in case or a "
        "MATPOWER .m file. Branch numbers are the case file's 1-based rows.",
    )
    p.add_argument("case", metavar="CASE", help="built-in name (ieee33, ieee69, ieee85), a .m file, "
                   "simbench:<code> or pandapower:<builder>")
    p.add_argument("--open", default="", metavar="LIST", help="branches to open, e.g. 7,9,14,32,37")
    p.add_argument("--close", default="", metavar="LIST", help="branches to close, e.g. 33,34,35,36")
    p.add_argument("--load-scale", type=nonnegative_float, default=1.0, metavar="X", help="factor on all loads")
    p.add_argument("--method", choices=("sweep", "lindistflow"), default="sweep")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument(
        "--tol", type=positive_float, default=None, help="voltage tolerance in p.u. (default 1e-8 in float64, 1e-6 in float32)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def summary(net, res, topo) -> dict:
    """The JSON-able result of one power flow, in kW and the case's bus ids."""
    import numpy as np

    energized = np.asarray(topo.energized)
    vm = np.asarray(res.vm_pu, dtype=float)
    masked = np.where(energized, vm, np.inf)
    k = int(np.argmin(masked))
    kw = net.base_mva * 1e3
    return {
        "case": net.name,
        "losses_kw": float(res.losses_pu) * kw,
        "vmin_pu": float(vm[k]),
        "vmin_bus": net.bus_ids[k],
        "vm_pu": vm.tolist(),
        "va_deg": np.degrees(np.asarray(res.va_rad, dtype=float)).tolist(),
        "bus_ids": list(net.bus_ids),
        "energized": energized.tolist(),
        "p_slack_kw": float(res.p_source_pu[net.slack_bus]) * kw,
        "q_slack_kvar": float(res.q_source_pu[net.slack_bus]) * kw,
        "open": [net.branch_numbers[i] for i in np.flatnonzero(~np.asarray(topo.branch_active))],
        "converged": bool(res.converged),
        "iterations": int(res.iterations),
    }


def run(args: argparse.Namespace) -> int:
    import sys

    from sopjax.cases import load_case
    from sopjax.cli.common import branch_list, print_json
    from sopjax.powerflow import solve

    net = load_case(args.case)
    res, topo = solve(
        net,
        open=branch_list(args.open, "--open"),
        close=branch_list(args.close, "--close"),
        load_scale=args.load_scale,
        method=args.method,
        dtype=args.dtype,
        tol=args.tol,
    )
    out = summary(net, res, topo)
    if not out["converged"]:
        # the state is the last iterate (often the flat start): no number of it is a result
        for key in _RESULT_KEYS:
            out[key] = None
        msg = (f"{net.name}: NOT CONVERGED in {out['iterations']} iterations; no results "
               f"(load scale {args.load_scale:g}: the loads may exceed what the feeder can carry)")
        if args.json:
            print_json(out)
        print(f"sopjax powerflow: error: {msg}", file=sys.stderr)
        return 1
    if args.json:
        print_json(out)
    else:
        print(f"{net.name}: converged in {out['iterations']} iterations")
        print(f"  losses      {out['losses_kw']:.2f} kW")
        print(f"  slack       {out['p_slack_kw']:.2f} kW, {out['q_slack_kvar']:.2f} kvar")
        print(f"  min voltage {out['vmin_pu']:.4f} p.u. at bus {out['vmin_bus']}")
        off = [b for b, e in zip(net.bus_ids, out["energized"]) if not e]
        if off:
            print(f"  de-energized buses: {', '.join(map(str, off))}")
    return 0


#: the values of :func:`summary` that are results of a converged power flow
_RESULT_KEYS = ("losses_kw", "vmin_pu", "vmin_bus", "vm_pu", "va_deg", "p_slack_kw", "q_slack_kvar")
