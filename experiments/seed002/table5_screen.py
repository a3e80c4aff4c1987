"""Seed 002 Table 5, assumption screen: which substation voltage / PV reading lets the order appear at all.

    python experiments/seed002/table5_screen.py [--out results/seed002]

For every ``[[experiment.variant]]`` of configs/seed002_table5.toml: cases 1 and 2 solved (MISOCP,
SCIP, as table5.py) and, for cases 3 and 4, a proven upper bound on the restorable outage load: the
LinDistFlow relaxation of the model (:func:`sopjax.problems.restoration.solve.restored_load_bound`,
HiGHS's dual bound, valid even when its time limit stops it) at the forecast, which contains every
plan of the quantile-planned MISOCP. A variant whose case-3 bound lies below its case-2 optimum
cannot reproduce tie switch < SOP < reconfiguration, whatever the solver.
"""

import dataclasses

from common import case_config, load, merge, parse_args, pct, plan_case, status, write

import numpy as np

from sopjax.problems.restoration import outage_mask, restored_load_bound
from sopjax.problems.restoration.study import study_from_config

args = parse_args("table5_screen", __doc__)
cfg = load(args.config, args)
exp = cfg["experiment"]
rows = ["| assumption set | case 1 tie (MISOCP) | case 2 SOP (MISOCP) | case 3 reconfiguration: upper bound "
        "| case 4 SOP + reconfiguration: upper bound | order possible? |", "|---|---|---|---|---|---|",
        "| paper (Table 5) | " + " | ".join(pct(c["paper"]["ratio"]) for c in cfg["case"]) + " | yes |"]
payload = {}
for var in exp["variant"]:
    base = merge(cfg, {k: v for k, v in var.items() if k not in ("name", "solve_case3")})
    vals, bounds = {}, {}
    for case in base["case"][:2]:
        r = plan_case(case_config(base, case))
        vals[case["name"]] = (r["plan"].recovery_ratio, status(r["plan"]))
    for case in base["case"][2:]:
        st = study_from_config(case_config(base, case))
        s = dataclasses.replace(st.settings, uncertainty="forecast")
        out = outage_mask(st.net, s)
        p = np.asarray(st.net.p_load_pu, float) * st.net.base_mva * 1e3
        bound_kw, info = restored_load_bound(st.net, s, time_limit=float(exp["bound_time_limit"]))
        bounds[case["name"]] = ((bound_kw - p[~out].sum()) / p[out].sum(), info.status)
    (r1, s1), (r2, s2) = vals.values()
    (b3, i3), (b4, i4) = bounds.values()
    possible = "yes" if r1 < r2 < b3 else "no"
    c3 = ""
    if var.get("solve_case3") and possible == "yes":  # the MISOCP itself (an incumbent if stopped)
        p3 = plan_case(case_config(base, base["case"][2]))["plan"]
        c3 = f"; MISOCP {pct(p3.recovery_ratio)} ({status(p3)})"
        if p3.recovery_ratio <= r2:
            possible = "no (case 3 optimum <= case 2)" if p3.info.status == "optimal" else "not shown"
    rows.append(f"| {var['name']} | {pct(r1)} ({s1}) | {pct(r2)} ({s2}) | <= {pct(b3)} (HiGHS {i3}){c3} "
                f"| <= {pct(b4)} (HiGHS {i4}) | {possible} |")
    print(rows[-1], flush=True)
    payload[var["name"]] = {"case1": r1, "case2": r2, "case3_bound": b3, "case4_bound": b4, "possible": possible}
md = "\n".join([f"# {cfg['title']}: assumption screen", "",
                "Recovery ratio = restored outage load / outage load (3255 kW) at the PV forecast. 'order "
                "possible' = case 1 < case 2 < the case-3 bound; 'no' proves that tie switch < SOP < "
                "reconfiguration cannot appear under that assumption set.", "", *rows, ""])
write(args.out, args.name, md, payload)
