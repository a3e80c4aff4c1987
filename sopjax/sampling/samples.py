"""The sampled quantities of one draw: bus loads and PV output, per sample (and period)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.network import Network

__all__ = ["Samples"]


@dataclasses.dataclass(frozen=True)
class Samples:
    """Samples of the uncertain inputs (a pytree; ``start`` is static metadata).

    Shapes carry a time axis only when the model has one (a 2-D PV forecast or
    a load profile).

    Attributes:
        p_load_pu: active load per bus, positive = consumption, (sample, [time,] bus).
        q_load_pu: reactive load per bus, (sample, [time,] bus).
        p_pv_pu: active output per PV unit (``net.pv`` order), >= 0, (sample, [time,] pv).
        start: global index of the first sample (rows are ``start .. start+sample-1``).
    """

    p_load_pu: Any
    q_load_pu: Any
    p_pv_pu: Any
    start: int = 0

    @property
    def n_samples(self) -> int:
        return int(self.p_load_pu.shape[0])

    @property
    def has_time(self) -> bool:
        return self.p_load_pu.ndim == 3

    @property
    def n_time(self) -> int | None:
        return int(self.p_load_pu.shape[1]) if self.has_time else None

    def net_load(self, net: Network) -> tuple[jax.Array, jax.Array]:
        """Net bus load (load minus PV), the ``p``/``q`` inputs of the power-flow kernels.

        PV units inject ``p`` and ``p * tan(acos(pf))`` (as
        :func:`~sopjax.kernels.injections.pv_net_load`).

        Returns:
            (p_net_pu, q_net_pu), each shaped like ``p_load_pu``.
        """
        pf = jnp.asarray(net.pv.pf, self.p_pv_pu.dtype)
        q_pv = self.p_pv_pu * jnp.sqrt(jnp.maximum(1.0 - pf**2, 0.0)) / pf
        bus = jnp.asarray(net.pv.bus)
        p = jnp.asarray(self.p_load_pu).at[..., bus].add(-self.p_pv_pu)
        q = jnp.asarray(self.q_load_pu).at[..., bus].add(-q_pv)
        return p, q

    def to_xarray(self, net: Network):
        """An ``xarray.Dataset`` with labelled dims ``sample, [time,] bus / pv`` (kW / kvar).

        Coordinates: ``sample`` (global index), ``bus`` (case bus ids),
        ``pv`` (unit index) with ``pv_bus`` (case bus id of each unit).
        """
        import xarray as xr

        kw = 1e3 * net.base_mva
        lead = ("sample", "time") if self.has_time else ("sample",)
        coords = {
            "sample": self.start + np.arange(self.n_samples),
            "bus": list(net.bus_ids),
            "pv": np.arange(net.pv.count),
            "pv_bus": ("pv", [net.bus_ids[int(b)] for b in np.asarray(net.pv.bus)]),
        }
        if self.has_time:
            coords["time"] = np.arange(self.n_time)
        return xr.Dataset(
            {
                "p_load_kw": ((*lead, "bus"), np.asarray(self.p_load_pu) * kw, {"units": "kW"}),
                "q_load_kvar": ((*lead, "bus"), np.asarray(self.q_load_pu) * kw, {"units": "kvar"}),
                "p_pv_kw": ((*lead, "pv"), np.asarray(self.p_pv_pu) * kw, {"units": "kW"}),
            },
            coords=coords,
            attrs={"network": net.name, "base_mva": net.base_mva},
        )


jax.tree_util.register_dataclass(
    Samples, data_fields=["p_load_pu", "q_load_pu", "p_pv_pu"], meta_fields=["start"]
)
