"""Build the network, dispatch data and Monte Carlo samples of a sweep spec.

Sweep parameters map to dispatch inputs by differentiable functions, so that
``d quantity / d parameter`` is an ordinary JAX derivative:

* ``capacity_mva`` -> every VSC's capacity ``S = capacity_mva / base_mva``;
* ``pv_penetration`` -> the PV fleet scaled by ``k = pen * P_load / P_pv,rated``
  (the fleet keeps its shape); a PV sample scales with it exactly, because a
  normal forecast error with a relative sigma, truncated to ``[0, rated]``,
  is homogeneous in the fleet size;
* ``load_scale`` -> all sampled loads times the factor.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.errors import ConfigError
from sopjax.kernels.dispatch import DispatchData, DispatchInputs, compile_dispatch
from sopjax.network import Network
from sopjax.network_builder import build_network
from sopjax.sweeps.config import SweepSpec

__all__ = ["Scenario", "build_scenario"]

@dataclasses.dataclass(frozen=True)
class Scenario:
    """Network, dispatch data and the Monte Carlo sample pool of a spec.

    Attributes:
        net: network with the configured fleet (PV factor 1, configured SOP capacities).
        data: compiled dispatch data.
        p_load, q_load: sampled loads at ``load_scale`` = 1, (sample, bus) p.u.
        p_pv: sampled PV output of the configured fleet (factor 1), (sample, pv) p.u.
        p_load_total_pu: nominal active load (p.u.).
        p_pv_rated_pu: rated active power of the configured fleet (p.u.).
        base: baseline parameter values (all filled).
    """

    net: Network
    data: DispatchData
    p_load: Any
    q_load: Any
    p_pv: Any
    p_load_total_pu: float
    p_pv_rated_pu: float
    base: dict

    @property
    def kw(self) -> float:
        return self.net.base_mva * 1e3

    def pv_factor(self, penetration):
        """Fleet scale factor for a penetration (differentiable)."""
        if self.p_pv_rated_pu <= 0:
            raise ConfigError("pv_penetration needs PV units in [network] pv")
        return penetration * self.p_load_total_pu / self.p_pv_rated_pu

    def inputs(self, params: dict, idx=None) -> DispatchInputs:
        """Batched dispatch inputs for parameter values (JAX scalars or per-SOP arrays)."""
        p = {**self.base, **params}
        sl = slice(None) if idx is None else idx
        p_load = self.p_load[sl] * p["load_scale"]
        q_load = self.q_load[sl] * p["load_scale"]
        k = self.pv_factor(p["pv_penetration"]) if p["pv_penetration"] is not None else 1.0
        p_pv = self.p_pv[sl] * k
        n = p_load.shape[0]
        ns = self.data.n_sop
        if p["capacity_mva"] is None:
            cap_i = jnp.broadcast_to(jnp.asarray(self.net.sop.s_rated_i_pu), (n, ns))
            cap_j = jnp.broadcast_to(jnp.asarray(self.net.sop.s_rated_j_pu), (n, ns))
        else:
            s = jnp.asarray(p["capacity_mva"], p_load.dtype) / self.net.base_mva
            cap_i = cap_j = jnp.broadcast_to(s, (n, ns))
        return DispatchInputs(p_load, q_load, p_pv, cap_i, cap_j)


def _samples(spec: SweepSpec, net: Network, n: int, seed: int):
    from sopjax.sampling import UncertaintyModel

    forecast = np.asarray(net.pv.s_rated_pu, float) * np.asarray(net.pv.pf, float) * spec.pv_forecast_frac
    table = dict(spec.uncertainty)
    if not table:
        p = np.broadcast_to(np.asarray(net.p_load_pu, float), (n, net.n_bus))
        q = np.broadcast_to(np.asarray(net.q_load_pu, float), (n, net.n_bus))
        return p.copy(), q.copy(), np.broadcast_to(forecast, (n, net.pv.count)).copy()
    model = UncertaintyModel.from_dict(table)
    s = model.sample(net, forecast if net.pv.count else None, key=jax.random.key(seed), n=n)
    return np.asarray(s.p_load_pu), np.asarray(s.q_load_pu), np.asarray(s.p_pv_pu)


def build_scenario(spec: SweepSpec, *, samples: int | None = None, seed: int | None = None) -> Scenario:
    """Network, dispatch data and the sample pool of ``spec``."""
    net = build_network(spec.network)
    data = compile_dispatch(net, v_min_pu=spec.v_min_pu, v_max_pu=spec.v_max_pu,
                            voltage_weight=spec.voltage_weight)
    n = int(samples or spec.samples)
    p, q, pv = _samples(spec, net, n, int(spec.seed if seed is None else seed))
    p_rated = float(np.sum(np.asarray(net.pv.s_rated_pu) * np.asarray(net.pv.pf)))
    base = dict(spec.baseline)
    return Scenario(
        net=net, data=data,
        p_load=jnp.asarray(p), q_load=jnp.asarray(q), p_pv=jnp.asarray(pv),
        p_load_total_pu=float(np.sum(net.p_load_pu)),
        p_pv_rated_pu=p_rated,
        base=base,
    )
