"""SimBench grids by code, and their load and generation profiles as sampling time series.

SimBench (https://simbench.de, the ``simbench`` PyPI package) publishes German
benchmark grids at every voltage level, each with one year of quarter-hourly
load and generation profiles. ``load_simbench("1-MV-rural--0-sw")`` imports a
grid with :func:`~sopjax.io.pandapower.from_pandapower` (lines with charging,
transformers, switches in their normal state, sgens as PV units at their
set-points). :func:`simbench_profiles` turns the grid's own profiles (absolute
values from ``simbench.get_absolute_values``; no synthetic stand-in) into per-unit
arrays on the network's buses and PV units, in the shapes
:class:`~sopjax.sampling.UncertaintyModel` takes: a per-period load multiplier
(``load_profile``) and a PV forecast of shape (time, pv) (``pv_forecast_pu``).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from sopjax.errors import NetworkError
from sopjax.io.pandapower import from_pandapower, pandapower_bus_map
from sopjax.network import Network

__all__ = ["simbench_codes", "simbench_pandapower", "load_simbench", "SimbenchProfiles", "simbench_profiles"]


def simbench_codes() -> list[str]:
    """All grid codes of the installed ``simbench`` package."""
    import simbench as sb

    return list(sb.collect_all_simbench_codes())


def simbench_pandapower(code: str):
    """The ``pandapowerNet`` of the SimBench grid ``code``.

    Raises:
        NetworkError: the code is not a SimBench code (the message lists examples).
    """
    import simbench as sb

    codes = simbench_codes()
    if code not in codes:
        lv_mv = [c for c in codes if c.startswith("1-LV-") or c.startswith("1-MV-")]
        raise NetworkError(
            f"unknown SimBench code {code!r}; codes look like {lv_mv[0]!r} or {lv_mv[-1]!r} "
            f"({len(codes)} codes, see simbench.collect_all_simbench_codes())"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sb.get_simbench_net(code)


def load_simbench(code: str, **kwargs) -> Network:
    """Import the SimBench grid ``code`` (keyword arguments go to :func:`from_pandapower`)."""
    kwargs.setdefault("name", code)
    return from_pandapower(simbench_pandapower(code), **kwargs)


@dataclasses.dataclass(frozen=True)
class SimbenchProfiles:
    """A SimBench grid's profiles on a sopjax network (per unit on ``net.base_mva``).

    Attributes:
        p_load_pu, q_load_pu: load per bus and period, (time, bus).
        pv_p_pu: output of each PV unit (an sgen) per period, (time, pv).
        step_minutes: period length (15 for SimBench).
    """

    p_load_pu: np.ndarray
    q_load_pu: np.ndarray
    pv_p_pu: np.ndarray
    step_minutes: int = 15

    def load_multiplier(self, net: Network) -> np.ndarray:
        """Total load of each period over the network's nominal total load, (time,).

        This is the ``load_profile`` of :class:`~sopjax.sampling.UncertaintyModel`
        (one multiplier of every bus's nominal load per period).
        """
        return self.p_load_pu.sum(axis=1) / float(np.sum(net.p_load_pu))

    def pv_forecast_pu(self, net: Network) -> np.ndarray:
        """The PV output per period, capped at each unit's rating: ``pv_forecast_pu`` (time, pv)."""
        return np.minimum(self.pv_p_pu, np.asarray(net.pv.s_rated_pu, float)[None, :])


def simbench_profiles(net_pp, net: Network, *, periods: slice | None = None) -> SimbenchProfiles:
    """Map ``net_pp``'s SimBench profiles onto ``net`` (imported from ``net_pp`` with the defaults).

    Args:
        net_pp: the SimBench ``pandapowerNet`` (:func:`simbench_pandapower`).
        net: the network imported from it.
        periods: which quarter-hours to keep (default: the whole year, 35136).

    Returns:
        :class:`SimbenchProfiles`.

    Raises:
        NetworkError: ``net_pp`` carries no profiles.
    """
    import simbench as sb

    if not hasattr(net_pp, "profiles") or not len(net_pp.profiles.get("load", [])):
        raise NetworkError("the pandapower net carries no SimBench profiles (net.profiles)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        abs_values = sb.get_absolute_values(net_pp, profiles_instead_of_study_cases=True)
    sel = slice(None) if periods is None else periods
    bus_map = pandapower_bus_map(net_pp)
    pos = {b: i for i, b in enumerate(net.bus_ids)}
    base = net.base_mva

    def per_bus(table: str, column: str) -> np.ndarray:
        frame = abs_values[(table, column)].iloc[sel]
        out = np.zeros((len(frame), net.n_bus))
        on = net_pp[table]["in_service"].to_dict()
        for idx in frame.columns:
            if not on.get(idx, False):
                continue
            bus = int(net_pp[table].at[idx, "bus"])
            if bus in bus_map:
                out[:, pos[bus_map[bus]]] += frame[idx].to_numpy(float) / base
        return out

    p_load, q_load = per_bus("load", "p_mw"), per_bus("load", "q_mvar")
    sgen = abs_values[("sgen", "p_mw")].iloc[sel]
    in_service = [idx for idx in net_pp.sgen.index if bool(net_pp.sgen.at[idx, "in_service"])]
    pv = sgen[in_service].to_numpy(float) / base if in_service else np.zeros((len(sgen), 0))
    if pv.shape[1] != net.pv.count:
        raise NetworkError(
            f"the net has {pv.shape[1]} in-service sgens but the network {net.name!r} has "
            f"{net.pv.count} PV units; import it with the defaults (sgen_as='pv')"
        )
    return SimbenchProfiles(p_load_pu=p_load, q_load_pu=q_load, pv_p_pu=pv)
