"""The uncertainty model: one spec object from Python or a TOML dict, and its sampler.

``UncertaintyModel(pv=..., load=..., scheme=..., correlation=..., load_profile=..., time_rho=...)``
is a frozen, hashable description; :meth:`UncertaintyModel.sample` draws
:class:`~sopjax.sampling.samples.Samples` for a network and a PV forecast.

How a draw is made (all JAX, jitted once per model and shape):

1. The scheme yields independent uniforms, one row of ``dim`` values per
   global sample index (:mod:`sopjax.sampling.schemes`). Layout of a row, in
   blocks: common factors (time, factor), PV (time, pv), load (time, bus) --
   the most influential inputs first, which suits Sobol points.
2. If there is any dependence (``correlation`` or ``time_rho``), uniforms go
   to standard normals, are mixed (AR(1) over time, then across units) and come
   back to uniforms -- a Gaussian copula (:mod:`sopjax.sampling.correlation`).
3. Marginals by inverse CDF: PV output from the forecast
   (:mod:`sopjax.sampling.pv`), load multipliers (:mod:`sopjax.sampling.load`)
   applied to the nominal load times the load profile of each period.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

from sopjax.network import Network
from sopjax.sampling.correlation import (
    CORRELATION_MODELS,
    CommonFactor,
    CorrelationMatrix,
    ar1_sqrt,
    check_rho,
)
from sopjax.sampling.errors import ProfileError, UncertaintyError
from sopjax.sampling.hashing import unit_bits
from sopjax.sampling.load import LOAD_MODELS, LoadNormal
from sopjax.sampling.profiles import check_profile, load_profile
from sopjax.sampling.pv import PV_MODELS, PVBeta, PVForecastError, p_max_pu
from sopjax.sampling.samples import Samples
from sopjax.sampling.schemes import MAX_SAMPLES, check_scheme, uniforms
from sopjax.sampling.sobol import SOBOL_MAX_DIM

__all__ = ["UncertaintyModel", "from_dict"]

PVModel = PVForecastError | PVBeta
Correlation = CommonFactor | CorrelationMatrix


@dataclasses.dataclass(frozen=True)
class UncertaintyModel:
    """What is uncertain, how it is distributed and correlated, and how it is sampled.

    Attributes:
        pv: PV output model (:class:`PVForecastError` (default, 10 %) or
            :class:`PVBeta`); ``None`` = PV output equals the forecast.
        load: load model (:class:`LoadNormal`, default 5 %); ``None`` = nominal loads.
        scheme: ``"mc"`` (default), ``"lhs"`` or ``"sobol"``.
        correlation: ``None`` (independent), :class:`CommonFactor` or
            :class:`CorrelationMatrix`.
        load_profile: ``None`` (no time axis from the loads), the name of a
            24-hour shape (:data:`~sopjax.sampling.profiles.LOAD_SHAPES`) or a
            sequence of per-period multipliers of the nominal load.
        time_rho: AR(1) correlation of the random draws between consecutive
            periods, in [-1, 1] (default 0: independent periods).

    Raises:
        UncertaintyError: an invalid parameter, named.
    """

    pv: PVModel | None = PVForecastError()
    load: LoadNormal | None = LoadNormal()
    scheme: str = "mc"
    correlation: Correlation | None = None
    load_profile: str | tuple[float, ...] | None = None
    time_rho: float = 0.0

    def __post_init__(self):
        check_scheme(self.scheme)
        if self.pv is not None and not isinstance(self.pv, tuple(PV_MODELS.values())):
            raise UncertaintyError(
                f"UncertaintyModel.pv must be PVForecastError, PVBeta or None, got {self.pv!r}"
            )
        if self.load is not None and not isinstance(self.load, LoadNormal):
            raise UncertaintyError(f"UncertaintyModel.load must be LoadNormal or None, got {self.load!r}")
        if self.correlation is not None and not isinstance(
            self.correlation, (CommonFactor, CorrelationMatrix)
        ):
            raise UncertaintyError(
                "UncertaintyModel.correlation must be CommonFactor, CorrelationMatrix or None, "
                f"got {self.correlation!r}"
            )
        if isinstance(self.load_profile, str):
            load_profile(self.load_profile)  # raises on an unknown name
        elif self.load_profile is not None:
            prof = check_profile(self.load_profile, name="UncertaintyModel.load_profile")
            object.__setattr__(self, "load_profile", tuple(float(v) for v in prof))
        object.__setattr__(self, "time_rho", check_rho("UncertaintyModel", "time_rho", self.time_rho))

    # ----------------------------------------------------------------- layout
    def profile_array(self) -> np.ndarray | None:
        """The load profile as an array (periods,), or ``None``."""
        if self.load_profile is None:
            return None
        if isinstance(self.load_profile, str):
            return load_profile(self.load_profile)
        return np.asarray(self.load_profile, float)

    def n_dims(self, n_pv: int, n_bus: int, n_time: int = 1) -> int:
        """Uniforms per sample: ``n_time * (factors + pv + bus)`` for the parts that are random."""
        f = self.correlation.n_factors if self.correlation is not None else 0
        per = f + (n_pv if self.pv is not None else 0) + (n_bus if self.load is not None else 0)
        return n_time * per

    # --------------------------------------------------------------- sampling
    def sample(
        self,
        net: Network,
        pv_forecast_pu=None,
        *,
        key: jax.Array,
        n: int,
        start: int = 0,
        stop: int | None = None,
        dtype=None,
    ) -> Samples:
        """Draw samples ``start .. stop-1`` of an ``n``-sample design.

        The rows do not depend on how a run is cut: ``sample(..., start=a, stop=b)``
        equals rows ``a:b`` of ``sample(..., n=n)`` for every scheme, and for
        ``"mc"`` and ``"sobol"`` row ``i`` does not depend on ``n`` either
        (a Latin hypercube is stratified over its ``n`` rows, so there ``n`` is
        part of the design).

        Args:
            net: the network (nominal loads, PV ratings and power factors).
            pv_forecast_pu: forecast PV output (p.u.), (pv,) or (time, pv); default the
                units' set-points ``net.pv.p_set_pu`` (e.g. imported pandapower sgens); may be
                omitted when the network has no PV. Must be in ``[0, p_max]``.
            key: PRNG key (keyword-only); the same key gives the same numbers.
            n: design size (number of samples of the whole run).
            start, stop: the global rows to draw (default: all ``n``).
            dtype: ``float32`` or ``float64`` (default: JAX's default float).

        Returns:
            :class:`Samples` with shapes (stop-start, [time,] bus / pv).

        Raises:
            UncertaintyError: bad forecast (shape, NaN, negative, above the rating),
                profile length mismatch, correlation size mismatch, bad range.
        """
        n, start, stop = _check_range(n, start, stop)
        dt = _check_dtype(dtype)
        n_pv, n_bus = net.pv.count, net.n_bus
        forecast, has_time = self._forecast(net, pv_forecast_pu, n_pv)
        n_time = forecast.shape[0]
        profile = self.profile_array()
        if self.correlation is not None:
            self.correlation.check(n_pv, n_bus)
            if isinstance(self.correlation, CorrelationMatrix):
                if self.correlation.over in ("all", "pv") and self.pv is None and n_pv:
                    raise UncertaintyError(
                        f"correlation over {self.correlation.over!r} covers PV units but pv=None "
                        "(PV output is deterministic); use over='load'"
                    )
                if self.correlation.over in ("all", "load") and self.load is None:
                    raise UncertaintyError(
                        f"correlation over {self.correlation.over!r} covers loads but load=None; "
                        "use over='pv'"
                    )
        dim = self.n_dims(n_pv, n_bus, n_time)
        if self.scheme == "sobol" and dim > SOBOL_MAX_DIM:
            raise UncertaintyError(
                f"the Sobol scheme supports at most {SOBOL_MAX_DIM} dimensions, this model needs {dim} "
                f"({n_time} periods x (factors + {n_pv} PV + {n_bus} buses)); use scheme='mc' or 'lhs'"
            )
        s_rated = jnp.asarray(net.pv.s_rated_pu, dt)
        pf = jnp.asarray(net.pv.pf, dt)
        if _concrete(forecast) and _concrete(net.pv.s_rated_pu):
            self._check_forecast(net, np.asarray(forecast, float), has_time)
        p_nom = jnp.asarray(net.p_load_pu, dt)
        q_nom = jnp.asarray(net.q_load_pu, dt)
        if profile is not None:
            scale = jnp.asarray(profile, dt)[:, None]
            p_nom, q_nom = scale * p_nom[None, :], scale * q_nom[None, :]
        else:
            p_nom, q_nom = jnp.broadcast_to(p_nom, (n_time, n_bus)), jnp.broadcast_to(q_nom, (n_time, n_bus))
        p_load, q_load, p_pv = _draw(
            self, key, jnp.asarray(start, jnp.uint32), p_nom, q_nom, s_rated, pf,
            jnp.asarray(forecast, dt), n=n, count=stop - start, dtype=dt.name,
        )
        if not has_time:
            p_load, q_load, p_pv = p_load[:, 0], q_load[:, 0], p_pv[:, 0]
        return Samples(p_load_pu=p_load, q_load_pu=q_load, p_pv_pu=p_pv, start=start)

    def iter_chunks(
        self, net: Network, pv_forecast_pu=None, *, key: jax.Array, n: int, chunk_size: int,
        start: int = 0, dtype=None,
    ) -> Iterator[Samples]:
        """Yield the rows ``start .. n-1`` of the design in chunks of ``chunk_size``.

        Concatenating the chunks gives exactly ``sample(..., n=n)[start:]``;
        resume an interrupted run by passing the next unfinished ``start``.
        """
        if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise UncertaintyError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        n, start, _ = _check_range(n, start, None)
        for a in range(start, n, int(chunk_size)):
            stop = min(a + int(chunk_size), n)
            yield self.sample(net, pv_forecast_pu, key=key, n=n, start=a, stop=stop, dtype=dtype)

    # ------------------------------------------------------------ validation
    def _forecast(self, net: Network, fc, n_pv: int):
        profile = self.profile_array()
        if fc is None and n_pv and net.pv.p_set_pu is not None:
            fc = np.asarray(net.pv.p_set_pu, float)  # the units' operating point (e.g. pandapower sgens)
        if fc is None:
            if n_pv:
                raise UncertaintyError(
                    f"pv_forecast_pu is required: network {net.name!r} has {n_pv} PV units "
                    "(shape (pv,) or (time, pv), per unit)"
                )
            fc = np.zeros((0,))
        if not _concrete(fc):
            arr = fc
        else:
            try:
                arr = np.asarray(fc, dtype=float)
            except (TypeError, ValueError):
                raise UncertaintyError("pv_forecast_pu must be an array of numbers") from None
        if arr.ndim not in (1, 2) or arr.shape[-1] != n_pv:
            raise UncertaintyError(
                f"pv_forecast_pu has shape {tuple(arr.shape)}; expected ({n_pv},) or (time, {n_pv}) "
                f"for the {n_pv} PV units of network {net.name!r}"
            )
        has_time = arr.ndim == 2 or profile is not None
        if arr.ndim == 2 and profile is not None and arr.shape[0] != profile.shape[0]:
            raise ProfileError(
                f"load_profile has {profile.shape[0]} periods but pv_forecast_pu has {arr.shape[0]} "
                "(time, pv); they must match"
            )
        if arr.ndim == 1:
            periods = 1 if profile is None else profile.shape[0]
            xp = np if _concrete(arr) else jnp
            arr = xp.broadcast_to(arr, (periods, n_pv))
        if arr.shape[0] == 0:
            raise UncertaintyError("pv_forecast_pu has no periods")
        return arr, has_time

    def _check_forecast(self, net: Network, fc: np.ndarray, has_time: bool) -> None:
        if fc.size == 0:
            return
        s = np.asarray(net.pv.s_rated_pu, float)
        pf = np.asarray(net.pv.pf, float)
        limit = self.pv.limit if self.pv is not None else "s_rated"
        p_max = np.asarray(p_max_pu(limit, s, pf))
        kw = 1e3 * net.base_mva

        def label(flat):
            t, k = divmod(int(flat), fc.shape[1])
            where = f"PV unit {k} (bus {net.bus_ids[int(np.asarray(net.pv.bus)[k])]})"
            return where + (f", period {t}" if has_time else "")

        bad = np.flatnonzero(~np.isfinite(fc).ravel())
        if bad.size:
            raise UncertaintyError(f"pv_forecast_pu is not finite at {label(bad[0])}")
        bad = np.flatnonzero((fc < 0).ravel())
        if bad.size:
            raise UncertaintyError(
                f"pv_forecast_pu is negative at {label(bad[0])}: {fc.ravel()[bad[0]] * kw:.6g} kW"
            )
        over = fc - p_max[None, :]
        bad = np.flatnonzero((over > 1e-9 * np.maximum(p_max, 1e-12)[None, :]).ravel())
        if bad.size:
            k = bad[0] % fc.shape[1]
            what = "pf * s_rated" if limit == "apparent" else "s_rated"
            raise UncertaintyError(
                f"pv_forecast_pu at {label(bad[0])} is {fc.ravel()[bad[0]] * kw:.6g} kW, above the unit's "
                f"rating {p_max[k] * kw:.6g} kW ({what})"
            )
        if self.pv is not None:
            self.pv.check(fc, s[None, :], pf[None, :], label)

    # ---------------------------------------------------------------- config
    def to_dict(self) -> dict:
        """A TOML-friendly dict; ``from_dict(m.to_dict()) == m``. Absent parts are ``"none"``."""
        d: dict[str, Any] = {
            "scheme": self.scheme,
            "pv": self.pv.to_dict() if self.pv is not None else "none",
            "load": self.load.to_dict() if self.load is not None else "none",
            "correlation": self.correlation.to_dict() if self.correlation is not None else "none",
            "time_rho": self.time_rho,
        }
        if self.load_profile is not None:
            lp = self.load_profile
            d["load_profile"] = lp if isinstance(lp, str) else list(lp)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "UncertaintyModel":
        """Build a model from a config dict (e.g. a TOML table); see :func:`from_dict`."""
        return from_dict(d)


# ---------------------------------------------------------------------------
# the jitted core
# ---------------------------------------------------------------------------


def _draw(model: UncertaintyModel, key, start, p_nom, q_nom, s_rated, pf, forecast, *, n, count, dtype):
    """(p_load, q_load, p_pv), each (count, time, ·), for rows start..start+count-1.

    The uniforms are jitted on their own (:func:`~sopjax.sampling.schemes.uniforms`),
    keyed by scheme and shape only, so that models of the same size share that
    compilation.
    """
    n_time, n_pv = forecast.shape
    n_bus = p_nom.shape[1]
    n_f = model.correlation.n_factors if model.correlation is not None else 0
    dim = n_time * (n_f + (n_pv if model.pv is not None else 0) + (n_bus if model.load is not None else 0))
    u = uniforms(model.scheme, key=key, start=start, count=count, n=n, dim=dim, dtype=dtype)
    # the transform does not depend on the scheme: one compilation serves all three
    canonical = dataclasses.replace(model, scheme="mc")
    return _transform(canonical, u, p_nom, q_nom, s_rated, pf, forecast, dtype=dtype)


@partial(jax.jit, static_argnames=("model", "dtype"))
def _transform(model: UncertaintyModel, u, p_nom, q_nom, s_rated, pf, forecast, *, dtype):
    """Uniforms (count, dim) -> (p_load, q_load, p_pv), each (count, time, ·)."""
    dt = np.dtype(dtype)
    count = u.shape[0]
    n_time, n_pv = forecast.shape
    n_bus = p_nom.shape[1]
    n_f = model.correlation.n_factors if model.correlation is not None else 0
    k_pv = n_pv if model.pv is not None else 0
    k_load = n_bus if model.load is not None else 0
    cuts = np.cumsum([n_time * n_f, n_time * k_pv])
    u_f, u_pv, u_load = (
        b.reshape(count, n_time, k) for b, k in zip(jnp.split(u, cuts, axis=1), (n_f, k_pv, k_load))
    )

    if model.correlation is not None or model.time_rho != 0.0:
        # one ndtri / ndtr over all blocks (fewer instances of these large kernels to compile)
        z = ndtri(u).reshape(count, -1) if u.size else jnp.zeros((count, 0), dt)
        z_f, z_pv, z_load = (
            b.reshape(count, n_time, k) for b, k in zip(jnp.split(z, cuts, axis=1), (n_f, k_pv, k_load))
        )
        if model.time_rho != 0.0:
            lt = jnp.asarray(ar1_sqrt(n_time, model.time_rho), dt)
            z_f, z_pv, z_load = (jnp.einsum("ts,nsk->ntk", lt, zz) for zz in (z_f, z_pv, z_load))
        if model.correlation is not None:
            z_pv, z_load = model.correlation.apply(z_f, z_pv, z_load)
        lo = dt.type(0.5 * 2.0 ** -unit_bits(dt))
        uc = jnp.clip(ndtr(jnp.concatenate([z_pv, z_load], axis=-1)), lo, 1 - lo)
        u_pv, u_load = uc[..., :k_pv], uc[..., k_pv:]

    if model.pv is not None:
        p_pv = model.pv.ppf(u_pv, forecast[None], s_rated, pf)
    else:
        p_pv = jnp.broadcast_to(forecast[None], (count, n_time, n_pv))
    if model.load is not None:
        factor = model.load.factor(u_load)
    else:
        factor = jnp.ones((count, n_time, n_bus), dt)
    return (factor * p_nom[None]).astype(dt), (factor * q_nom[None]).astype(dt), p_pv.astype(dt)


def _concrete(x) -> bool:
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def _check_dtype(dtype) -> np.dtype:
    dt = np.dtype(jnp.zeros(()).dtype if dtype is None else dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise UncertaintyError(f"dtype must be float32 or float64, got {dtype}")
    return dt


def _check_range(n, start, stop) -> tuple[int, int, int]:
    for name, v in (("n", n), ("start", start)) + ((("stop", stop),) if stop is not None else ()):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise UncertaintyError(f"{name} must be an integer, got {v!r}")
    n, start = int(n), int(start)
    stop = n if stop is None else int(stop)
    if not 1 <= n <= MAX_SAMPLES:
        raise UncertaintyError(f"n (number of samples) must be in 1..2**32, got {n}")
    if not 0 <= start < stop <= n:
        raise UncertaintyError(f"need 0 <= start < stop <= n, got start={start}, stop={stop}, n={n}")
    return n, start, stop


# ---------------------------------------------------------------------------
# config dicts
# ---------------------------------------------------------------------------

_TOP_KEYS = ("scheme", "pv", "load", "correlation", "load_profile", "time_rho")


def _part(section: str, value, registry: dict, default_kind: str):
    if value is None or value is False or value == "none":
        return None
    if not isinstance(value, Mapping):
        raise UncertaintyError(f"{section} must be a table (dict) or 'none', got {value!r}")
    value = dict(value)
    kind = value.pop("kind", default_kind)
    if not isinstance(kind, str) or kind not in registry:
        raise UncertaintyError(
            f"{section}.kind must be one of {', '.join(map(repr, registry))}, got {kind!r}"
        )
    cls = registry[kind]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - fields)
    if unknown:
        raise UncertaintyError(
            f"{section}: unknown key {unknown[0]!r} for kind {kind!r}; allowed: {', '.join(sorted(fields))}"
        )
    return cls(**value)


def from_dict(d: Mapping[str, Any], *, section: str = "uncertainty") -> UncertaintyModel:
    """Build an :class:`UncertaintyModel` from a config dict (a TOML table).

    Example (TOML)::

        [uncertainty]
        scheme = "sobol"
        load_profile = "rts79_summer_weekday"
        time_rho = 0.5
        [uncertainty.pv]
        kind = "normal"          # or "beta"
        sigma_frac = 0.1
        [uncertainty.load]
        sigma_frac = 0.05
        [uncertainty.correlation]
        kind = "common_factor"   # or "matrix" (with matrix = [[...]], over = "all")
        rho_pv = 0.6

    Absent keys take the model's defaults; ``pv = "none"``, ``load = "none"``
    switch a part off.

    Raises:
        UncertaintyError: unknown key or kind (named with its section), or an
            invalid value.
    """
    if not isinstance(d, Mapping):
        raise UncertaintyError(f"{section} must be a table (dict), got {type(d).__name__}")
    unknown = sorted(set(d) - set(_TOP_KEYS))
    if unknown:
        raise UncertaintyError(f"{section}: unknown key {unknown[0]!r}; allowed: {', '.join(_TOP_KEYS)}")
    kw: dict[str, Any] = {}
    if "scheme" in d:
        kw["scheme"] = d["scheme"]
    if "pv" in d:
        kw["pv"] = _part(f"{section}.pv", d["pv"], PV_MODELS, "normal")
    if "load" in d:
        kw["load"] = _part(f"{section}.load", d["load"], LOAD_MODELS, "normal")
    if "correlation" in d:
        kw["correlation"] = _part(
            f"{section}.correlation", d["correlation"], CORRELATION_MODELS, "common_factor"
        )
    if "load_profile" in d and d["load_profile"] not in (None, "none"):
        lp = d["load_profile"]
        kw["load_profile"] = lp if isinstance(lp, str) else tuple(lp)
    if "time_rho" in d:
        kw["time_rho"] = d["time_rho"]
    return UncertaintyModel(**kw)

