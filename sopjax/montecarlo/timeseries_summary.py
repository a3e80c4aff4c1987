"""The printed summary of a time-series Monte Carlo dataset (horizon table, value of control)."""

from __future__ import annotations

import numpy as np

__all__ = ["summary_table_timeseries"]


def summary_table_timeseries(ds) -> str:
    """Horizon table per strategy, then the value of corrective control per plan (controlled - fixed)."""
    conf = float(ds.attrs["confidence"])
    lvl = float(ds.attrs["ci_level"])
    head = (
        f"{'strategy':<34} {'nominal':>8} {'mean':>8} {f'{lvl:.0%} CI':>15} {f'@{conf:.2%}':>9} "
        f"{'ENS kWh':>9} {'loss kWh':>9} {'P(viol)':>8} {'ctl fail':>8} {'failed':>6}"
    )
    lines = [
        f"{ds.attrs.get('network', '')}: {int(ds.attrs['n_samples'])} samples x "
        f"{int(ds.attrs['n_periods'])} periods of {float(ds.attrs['period_h']):g} h, fault opens "
        f"{ds.attrs.get('fault_open')}; energy recovery over the horizon in %",
        head,
        "-" * len(head),
    ]
    for s in ds["strategy"].values:
        sub = ds.sel(strategy=s)
        ci = (
            f"[{100 * float(sub.energy_recovery_ci_low):.1f}, {100 * float(sub.energy_recovery_ci_high):.1f}]"
        )
        failed = int(np.max(sub["n_failed"].values))
        lines.append(
            f"{str(s)[:34]:<34} {100 * float(sub.energy_recovery_nominal):>8.2f} "
            f"{100 * float(sub.energy_recovery_mean):>8.2f} "
            f"{ci:>15} {100 * float(sub.energy_recovery_guaranteed):>9.2f} {float(sub.ens_kwh_mean):>9.0f} "
            f"{float(sub.loss_kwh_mean):>9.0f} {100 * float(sub.p_any_violation_horizon):>7.1f}% "
            f"{int(np.sum(sub.control_failed.values)):>8d} {failed:>6d}"
        )
    lines.append(
        f"nominal: at the forecast; @{conf:.2%}: energy recovery reached with that probability; ENS: energy "
        "not supplied; P(viol): a violation in some period; ctl fail: sample-periods whose controller failed "
        "(fixed set-points kept); failed: largest count of non-converged samples in a period."
    )
    if "pair" in ds.dims:
        lines += [
            "",
            "value of corrective control (paired, same samples; controlled - fixed):",
            f"{'strategy':<34} {'d recovery pp':>14} {f'{lvl:.0%} CI':>17} {'d loss kWh':>11} "
            f"{f'{lvl:.0%} CI':>17} {'d ENS kWh':>10}",
        ]
        for p in ds["pair"].values:
            sub = ds.sel(pair=p)
            lo = 100 * float(sub.gain_energy_recovery_ci_low)
            hi = 100 * float(sub.gain_energy_recovery_ci_high)
            rci = f"[{lo:.2f}, {hi:.2f}]"
            lci = f"[{float(sub.gain_loss_kwh_ci_low):.1f}, {float(sub.gain_loss_kwh_ci_high):.1f}]"
            lines.append(
                f"{str(p)[:34]:<34} {100 * float(sub.gain_energy_recovery_mean):>14.2f} {rci:>17} "
                f"{float(sub.gain_loss_kwh_mean):>11.1f} {lci:>17} {float(sub.gain_ens_kwh_mean):>10.1f}"
            )
    return "\n".join(lines)
