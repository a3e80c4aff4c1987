"""The ``sopjax dataset`` study: a TOML mapping -> network, :class:`DatasetSpec`, provenance.

Config layout (``configs/ieee33_dataset.toml``)::

    title = "..."
    [network]                  # the shared [network] table (case, pv, sop, v_slack_pu)
    [dataset]
    samples = 4096             # required
    chunk_size = 256
    seed = 2026
    load_scale = [0.6, 1.2]    # ... every DatasetSpec field, same names
    splits = {train = 0.7, val = 0.1, test = 0.1, ood_topology = 0.05, ood_load = 0.05}
    sop_mode_mix = {pq = 0.7, off = 0.1, vf = 0.2}   # SOP mode families (default: pq only)
    restoration_labels = 8     # MISOCP restoration plans of the first 8 faulted samples (default 0)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from sopjax.config import ConfigError, choice, integer, number, parse_network, require, table
from sopjax.datasets.spec import SPLITS, VARIANTS, DatasetSpec
from sopjax.network import Network
from sopjax.network_builder import build_network

__all__ = ["dataset_from_config", "network_from_attrs"]

_RANGES = ("load_scale", "ood_load_scale", "pv_output", "sop_capacity_kva", "vf_u_set_pu", "vf_pickup",
           "vf_v_limits_pu")  # fmt: skip
_INTS = ("samples", "chunk_size", "seed", "configurations", "held_out", "restoration_labels")
_NUMBERS = ("load_sigma_frac", "setpoint_frac", "fault_fraction", "dispatch_tol", "v_min_pu", "restoration_time_limit")
_KEYS = (*_RANGES, *_INTS, *_NUMBERS, "splits", "dispatch", "sop_mode_mix", "restoration_switchable")


def dataset_from_config(cfg: Mapping[str, Any]) -> tuple[Network, DatasetSpec, dict]:
    """Parse a dataset config.

    Returns:
        ``(network, spec, attrs)``; ``attrs`` holds the title for the store's provenance.

    Raises:
        ConfigError: a missing or unknown key, a value of the wrong type (named by key path).
        DatasetError: a spec that cannot yield samples (e.g. ``samples = 0``), named.
    """
    top = table(cfg, "config", allowed=("title", "network", "dataset"))
    spec_net = parse_network(top.get("network"), keys=("case", "pv", "sop", "v_slack_pu"))
    require(top, ("dataset",), "config")
    d = table(top["dataset"], "[dataset]", allowed=_KEYS)
    require(d, ("samples",), "[dataset]")
    kw: dict[str, Any] = {}
    for k in _INTS:
        if k in d:
            kw[k] = integer(d[k], f"[dataset] {k}")
    for k in _NUMBERS:
        if k in d:
            kw[k] = number(d[k], f"[dataset] {k}")
    for k in _RANGES:
        if k in d:
            v = d[k]
            if not isinstance(v, list) or len(v) != 2:
                raise ConfigError(f"[dataset] {k} must be a pair [low, high], got {v!r}")
            kw[k] = tuple(number(x, f"[dataset] {k}") for x in v)
    if "splits" in d:
        s = table(d["splits"], "[dataset] splits", allowed=SPLITS)
        kw["split_fractions"] = tuple(number(s.get(n, 0.0), f"[dataset] splits.{n}", lo=0.0) for n in SPLITS)
    if "sop_mode_mix" in d:
        m = table(d["sop_mode_mix"], "[dataset] sop_mode_mix", allowed=VARIANTS)
        kw["sop_mode_mix"] = tuple((n, number(w, f"[dataset] sop_mode_mix.{n}", lo=0.0)) for n, w in m.items())
    if "restoration_switchable" in d:
        kw["restoration_switchable"] = choice(
            d["restoration_switchable"], "[dataset] restoration_switchable", ("ties", "all", "none")
        )
    if "dispatch" in d:
        if not isinstance(d["dispatch"], bool):
            raise ConfigError(f"[dataset] dispatch must be true or false, got {d['dispatch']!r}")
        kw["dispatch"] = d["dispatch"]
    spec = DatasetSpec(**kw)
    net = build_network(spec_net)
    title = top.get("title", f"sopjax dataset: {spec_net.case}")
    return net, spec, {"title": str(title), "network": json.dumps(dataclasses.asdict(spec_net))}


def network_from_attrs(ds) -> Network:
    """The network a store was generated for, rebuilt from its ``network`` attribute (the parsed table).

    Raises:
        DatasetError: the store has no such attribute (made outside ``sopjax dataset``).
    """
    from sopjax.datasets.spec import DatasetError

    text = ds.attrs.get("network")
    if not text:
        raise DatasetError("the dataset store has no 'network' attribute; pass the network explicitly")
    d = {
        k: v
        for k, v in json.loads(text).items()
        if v is not None and k in ("case", "pv", "sop", "v_slack_pu")
    }
    d["sop"] = [{k: v for k, v in s.items() if v is not None} for s in d.get("sop", [])]
    return build_network(parse_network(d, keys=("case", "pv", "sop", "v_slack_pu")))
