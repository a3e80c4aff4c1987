"""Strategies from config tables (parsed TOML / dicts); the library itself reads no files.

One table per strategy::

    [[strategy]]
    name = "SOP 8-21"
    close = []                 # 1-based case branch numbers to close
    open = []                  # ... to open (the fault's branches are always opened)
    pickup = "greedy"          # "all" | "greedy" | {shed = [bus ids]} | {fraction = {"17" = 0.5}}
    pickup_margin_pu = 0.0     # greedy only: extra margin above v_min at the forecast
    pickup_capacity_margin = 0.0   # greedy only: fraction of Vf-SOP capacity kept free
    sop = [{pair = [8, 21], mode = "vf_i", u_set_pu = 1.05, q_j_kvar = 0.0}]
    capacitors = {"18" = 2}    # connected steps per capacitor bank, by case bus id (default: the network's)

SOP settings take the fields of :class:`~sopjax.strategies.strategy.SOPSetting`
(``pair`` or ``index``, ``mode``, ``p_kw``, ``q_i_kvar``, ``q_j_kvar``, ``u_set_pu``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sopjax.config import integer_list, number, string
from sopjax.config import tables as config_tables
from sopjax.kernels.scoring import ScoringOptions
from sopjax.network import Network
from sopjax.strategies.pickup import greedy_pickup
from sopjax.strategies.strategy import Strategy, StrategyError

__all__ = ["strategy_from_config", "strategies_from_config"]

_KEYS = {
    "name", "open", "close", "sop", "pickup", "pickup_margin_pu", "pickup_capacity_margin", "description",
    "capacitors",
}


def strategy_from_config(
    net: Network,
    table: Mapping[str, Any],
    *,
    fault_open: Sequence[int] = (),
    p_pv_forecast_pu: Sequence[float] | np.ndarray | None = None,
    v_min_pu: float = 0.95,
    v_max_pu: float = 1.05,
    options: ScoringOptions = ScoringOptions(),
) -> Strategy:
    """One :class:`Strategy` from a config table (see the module docstring).

    Args:
        net: the network with its SOP and PV tables.
        table: the strategy's table.
        fault_open: branches isolated by the fault; always opened.
        p_pv_forecast_pu: PV forecast (pv,), needed for ``pickup = "greedy"``.
        v_min_pu, v_max_pu: voltage limits used by the greedy pickup.
        options: scoring settings used by the greedy pickup.

    Raises:
        StrategyError: unknown key, bad SOP setting, a faulted branch closed.
        NetworkError: unknown branch number or bus id (named).
    """
    config_tables.table(table, "[[strategy]]", error=StrategyError)
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise StrategyError(f"every strategy needs a non-empty 'name', got {name!r}")
    where = f"strategy {name!r}"
    # StrategyError, not ConfigError: callers catch every strategy problem as one type
    config_tables.table(table, where, allowed=_KEYS, error=StrategyError)
    opened = integer_list(table.get("open"), f"{where}: open", error=StrategyError)
    closed = integer_list(table.get("close"), f"{where}: close", error=StrategyError)
    faulted = set(int(k) for k in fault_open)
    clash = faulted & set(closed)
    if clash:
        raise StrategyError(f"{where} closes branch {sorted(clash)[0]}, which is isolated by the fault")
    opened = sorted(set(opened) | faulted)
    sops = table.get("sop", [])
    if isinstance(sops, Mapping):
        sops = [sops]
    sops = config_tables.table_list(sops, f"{where}: sop", error=StrategyError)
    pickup = table.get("pickup", "all")
    greedy = isinstance(pickup, str) and pickup.lower() == "greedy"
    s = Strategy.build(net, name, open=opened, close=closed, sops=list(sops), pickup=None if greedy else pickup,
                       capacitors=table.get("capacitors"))
    description = string(table.get("description", ""), f"{where}: description", allow_empty=True,
                         error=StrategyError)
    s = s.with_pickup(s.pickup, description=description)
    if greedy:
        if p_pv_forecast_pu is None:
            raise StrategyError(f"{where}: pickup = 'greedy' needs the PV forecast")
        margin, cap = (
            number(table.get(key, 0.0), f"{where}: {key}", lo=0.0, error=StrategyError)
            for key in ("pickup_margin_pu", "pickup_capacity_margin")
        )
        for key, v in (("pickup_margin_pu", margin), ("pickup_capacity_margin", cap)):
            if not 0 <= v < 1:
                raise StrategyError(f"{where}: {key} must lie in [0, 1), got {v}")
        s = greedy_pickup(
            net, s, p_pv_pu=p_pv_forecast_pu, fault_open=sorted(faulted), v_min_pu=v_min_pu,
            v_max_pu=v_max_pu, margin_pu=margin, capacity_margin=cap, options=options,
        )
    else:
        for key in ("pickup_margin_pu", "pickup_capacity_margin"):
            if key in table:
                raise StrategyError(f"{where}: {key} only applies to pickup = 'greedy'")
    return s


def strategies_from_config(
    net: Network, tables: Sequence[Mapping[str, Any]], **kwargs
) -> list[Strategy]:
    """:func:`strategy_from_config` for each table (same keyword arguments)."""
    if not tables:
        raise StrategyError("the config defines no strategies ([[strategy]] tables)")
    tables = config_tables.table_list(tables, "[[strategy]]", error=StrategyError)
    return [strategy_from_config(net, t, **kwargs) for t in tables]
