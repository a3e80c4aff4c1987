"""Uncertainty models: PV and load samples for Monte Carlo studies (issue 3, part 1).

Build one :class:`UncertaintyModel` (from Python or a TOML table) and draw
:class:`Samples` for a network and a PV forecast::

    import jax, sopjax
    from sopjax.sampling import UncertaintyModel, PVForecastError, LoadNormal, CommonFactor

    net = sopjax.add_pv(sopjax.ieee33(), buses=[30], s_rated_kva=1000, pf=0.95)
    model = UncertaintyModel(pv=PVForecastError(sigma_frac=0.1),   # N(mu, (0.1 mu)^2) on [0, rated]
                             load=LoadNormal(sigma_frac=0.05),     # factor N(1, 0.05^2), >= 0
                             scheme="sobol",                       # "mc" | "lhs" | "sobol"
                             correlation=CommonFactor(rho_pv=0.5))
    mu = [500 / 1e3 / net.base_mva]                               # forecast 500 kW in p.u.
    s = model.sample(net, mu, key=jax.random.key(0), n=512)
    s.p_load_pu, s.q_load_pu   # (512, 33)   positive = consumption
    s.p_pv_pu                  # (512, 1)    in [0, s_rated]
    p, q = s.net_load(net)     # (512, 33)   load minus PV: the power-flow kernels' input

Time series: a 2-D forecast (time, pv) and/or ``load_profile`` add a time
axis, giving (sample, time, bus) and (sample, time, pv)::

    fc = profiles.pv_forecast(net, profiles.clear_sky_pv_profile(latitude_deg=30))   # (24, pv)
    model = UncertaintyModel(load_profile="rts79_summer_weekday", time_rho=0.6)

Chunks and resume (the Monte Carlo engine): row ``i`` of a design depends
only on ``(key, i)`` (and ``n`` for LHS), so
``model.sample(..., n=N, start=a, stop=b)`` equals rows ``a:b`` of the full
draw for any chunking; ``model.iter_chunks(..., n=N, chunk_size=c, start=a)``
yields them in order.

Design rules:

* Explicit keys, keyword-only; same key -> same numbers (per dtype).
* The scheme makes independent uniforms (sample, dim); a Gaussian copula adds
  correlation; every marginal is an inverse CDF, so every distribution works
  with every scheme.
* Everything after validation is JAX (jitted once per model and shape) and
  can be called inside ``jax.jit`` (value checks on the forecast are then
  skipped, shape checks still run).
* Bad input raises :class:`UncertaintyError` (a :class:`~sopjax.errors.SopjaxError`)
  naming the parameter, PV unit, bus or period.

API at a glance::

    UncertaintyModel(pv=PVForecastError() | PVBeta() | None, load=LoadNormal() | None,
                     scheme="mc" | "lhs" | "sobol", correlation=None | CommonFactor() | CorrelationMatrix(),
                     load_profile=None | "rts79_summer_weekday" | [per-period multipliers], time_rho=0.0)
    model.sample(net, pv_forecast_pu, *, key, n, start=0, stop=None, dtype=None) -> Samples
    model.iter_chunks(net, pv_forecast_pu, *, key, n, chunk_size, start=0, dtype=None) -> Iterator[Samples]
    model.to_dict() / from_dict(d) / UncertaintyModel.from_dict(d)     # TOML tables
    Samples(p_load_pu, q_load_pu, p_pv_pu, start).net_load(net) / .to_xarray(net)

Modules (one concept each): ``model`` (spec + sampler), ``samples`` (the
result), ``pv`` and ``load`` (marginals), ``distributions`` (inverse CDFs:
truncated normal, beta), ``correlation`` (Gaussian copula: common factor,
matrix, AR(1) in time), ``profiles`` (24-hour shapes, clear-sky PV),
``schemes`` (uniforms by index) with ``philox`` (counter-based bits),
``lhs`` (pointwise Latin hypercube) and ``sobol`` (Owen-scrambled Sobol'),
``hashing`` (integer helpers), ``errors``. ``python benchmarks/sampling_bench.py``
prints throughput and per-scheme estimator spread.

See ``docs/sampling.md`` for the models, their conventions and sources.
"""

from sopjax.sampling import profiles
from sopjax.sampling.correlation import CommonFactor, CorrelationMatrix
from sopjax.sampling.distributions import beta_ppf, truncated_normal_ppf
from sopjax.sampling.errors import CorrelationError, ProfileError, UncertaintyError
from sopjax.sampling.load import LoadNormal
from sopjax.sampling.model import UncertaintyModel, from_dict
from sopjax.sampling.profiles import clear_sky_pv_profile, daily_profile, load_profile, pv_forecast
from sopjax.sampling.pv import PVBeta, PVForecastError
from sopjax.sampling.pv_stats import PVDistribution, pv_distribution, pv_quantile
from sopjax.sampling.samples import Samples
from sopjax.sampling.schemes import SCHEMES, uniforms

__all__ = [
    "SCHEMES",
    "CommonFactor",
    "CorrelationError",
    "CorrelationMatrix",
    "LoadNormal",
    "PVBeta",
    "PVDistribution",
    "PVForecastError",
    "ProfileError",
    "Samples",
    "UncertaintyError",
    "UncertaintyModel",
    "beta_ppf",
    "clear_sky_pv_profile",
    "daily_profile",
    "from_dict",
    "load_profile",
    "profiles",
    "pv_distribution",
    "pv_forecast",
    "pv_quantile",
    "truncated_normal_ppf",
    "uniforms",
]
