"""Seed 002 Fig. 12: restoration ratio and minimum voltage vs PV penetration (SOP + reconfiguration).

    python experiments/seed002/fig12.py [--samples N] [--out results/seed002]
"""

from pathlib import Path

from common import load, merge, parse_args, pct, plan_and_score, status, write

args = parse_args("fig12", __doc__)
cfg = load(args.config, args)
exp = cfg["experiment"]
rows = ["| PV penetration | installed kVA | forecast kW | ratio (plan) | exact @ forecast | MC mean "
        f"| MC @{cfg['montecarlo']['confidence']:.2%} | Vmin exact @ forecast | Vmin MC mean | Vmin MC 1 % quantile "
        "| P(voltage violation) | switching | time s | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
series = {"penetration": [], "ratio_plan": [], "ratio_mc_mean": [], "ratio_guaranteed": [], "vmin_exact": [],
          "vmin_mc_mean": [], "vmin_mc_q01": []}
payload = {"points": {}}
for pen in exp["penetration"]:
    # penetration = rated PV active power / feeder load; the forecast is capacity_factor x the rated kW
    kva = [pen * exp["total_load_kw"] / exp["pf"] * s for s in exp["pv_shares"]]
    patch = {"network": {"pv": [{"bus": b, "s_rated_kva": k, "pf": exp["pf"]} for b, k in zip(exp["pv_buses"], kva)]},
             "uncertainty": {"pv_forecast_kw": [k * exp["pf"] * exp["capacity_factor"] for k in kva]}}
    c = merge({k: v for k, v in cfg.items() if k != "experiment"}, patch)
    r, s, ds = plan_and_score(c, "plan")
    p, chk = r["plan"], r["check"]
    q01 = float(ds.sel(strategy="plan")["vmin_pu_quantile"].sel(quantile=0.01, method="nearest").values)
    rows.append(f"| {pen:.0%} | {sum(kva):.0f} | {sum(kva) * exp['pf'] * exp['capacity_factor']:.0f} | {pct(p.recovery_ratio)} "
                f"| {pct(chk['recovery_ratio'])} | {pct(s['recovery_mean'])} | {pct(s['recovery_guaranteed'])} "
                f"| {chk['vmin_pu']:.4f} | {s['vmin_mean_pu']:.4f} | {q01:.4f} | {pct(s['p_voltage_violation'])} "
                f"| close {p.closed or '-'}, open {p.opened or '-'} | {r['wall_s']:.1f} | {status(p)} |")
    print(rows[-1], flush=True)
    for k, v in (("penetration", pen), ("ratio_plan", p.recovery_ratio), ("ratio_mc_mean", s["recovery_mean"]),
                 ("ratio_guaranteed", s["recovery_guaranteed"]), ("vmin_exact", chk["vmin_pu"]),
                 ("vmin_mc_mean", s["vmin_mean_pu"]), ("vmin_mc_q01", q01)):
        series[k].append(v)
    payload["points"][f"{pen:.2f}"] = {"plan": p.as_dict(r["study"].net), "montecarlo": s, "wall_s": r["wall_s"]}
payload["series"] = series

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(6.4, 4.0))
x = [100 * v for v in series["penetration"]]
ax.plot(x, [100 * v for v in series["ratio_plan"]], "o-", label="restoration ratio, plan")
ax.plot(x, [100 * v for v in series["ratio_mc_mean"]], "s--", label="restoration ratio, MC mean")
ax.set_xlabel("PV penetration (%)")
ax.set_ylabel("load restoration ratio (%)")
ax2 = ax.twinx()
ax2.plot(x, series["vmin_mc_q01"], "^:", color="tab:red", label="Vmin, MC 1 % quantile")
ax2.plot(x, series["vmin_exact"], "v-.", color="tab:purple", label="Vmin, exact at forecast")
ax2.set_ylabel("minimum node voltage (p.u.)")
h1, l1 = ax.get_legend_handles_labels()
h2, l2 = ax2.get_legend_handles_labels()
ax.legend(h1 + h2, l1 + l2, loc="lower left", fontsize=8)
ax.set_title("IEEE 33, SOP 2 MVA + reconfiguration (seed 002, Fig. 12)")
fig.tight_layout()
Path(args.out).mkdir(parents=True, exist_ok=True)
fig.savefig(Path(args.out) / f"{args.name}.png", dpi=120)
md = "\n".join([f"# {cfg['title']}", "", *rows, "", f"![Fig. 12]({args.name}.png)", ""])
write(args.out, args.name, md, payload)
