"""Sample sources for the Monte Carlo runner: sample ``i`` depends only on ``i``.

The runner asks a source for the samples ``[start, start + n)``. Because a
source's samples are a function of their global index, not of how the run is
chunked, any chunk size gives the same samples, and an interrupted run resumes
exactly where it stopped.

A source provides:

* ``draw(start, n) -> (p_load_pu (n, bus), q_load_pu (n, bus), p_pv_pu (n, pv))``;
* ``nominal() -> (p_load_pu (bus,), q_load_pu (bus,), p_pv_pu (pv,))``: the
  forecast without noise (for the "recovery at the nominal forecast");
* ``fingerprint() -> str``: identifies the samples (checkpoint compatibility);
  it must change whenever any sample would change;
* ``describe() -> dict``: JSON-able description for the dataset attributes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

import numpy as np

from sopjax.errors import SopjaxError
from sopjax.sampling.profiles import check_profile

__all__ = ["SampleSource", "ArraySource", "ModelSource", "ProfileSource", "TimeSeriesError"]


class SampleSource(Protocol):
    def draw(self, start: int, n: int) -> tuple: ...

    def nominal(self) -> tuple: ...

    def fingerprint(self) -> str: ...

    def describe(self) -> dict: ...


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


class ArraySource:
    """Samples given as arrays (tests, external scenario sets, cross-checks).

    Args:
        p_load_pu, q_load_pu: (sample, bus) loads, consumption positive.
        p_pv_pu: (sample, pv) PV output.
        nominal: (p (bus,), q (bus,), pv (pv,)) forecast; default the sample mean.
    """

    def __init__(self, p_load_pu, q_load_pu, p_pv_pu, nominal=None):
        self.p = np.asarray(p_load_pu, float)
        self.q = np.asarray(q_load_pu, float)
        self.pv = np.asarray(p_pv_pu, float)
        if self.p.ndim != 2 or self.q.shape != self.p.shape:
            raise SopjaxError(f"sample loads must be (sample, bus) arrays of one shape, got {self.p.shape}, {self.q.shape}")
        if self.pv.ndim != 2 or self.pv.shape[0] != self.p.shape[0]:
            raise SopjaxError(f"p_pv_pu must be (sample, pv) with {self.p.shape[0]} samples, got {self.pv.shape}")
        for name, arr in (("p_load", self.p), ("q_load", self.q), ("p_pv", self.pv)):
            bad = np.argwhere(~np.isfinite(arr))
            if bad.size:
                raise SopjaxError(f"{name} sample {bad[0][0]} has a non-finite value at column {bad[0][1]}")
        if nominal is None:
            nominal = (self.p.mean(0), self.q.mean(0), self.pv.mean(0))
        self._nominal = tuple(np.asarray(a, float) for a in nominal)

    @property
    def size(self) -> int:
        return self.p.shape[0]

    def draw(self, start: int, n: int):
        if start + n > self.size:
            raise SopjaxError(f"the source holds {self.size} samples; asked for {start}..{start + n - 1}")
        sl = slice(start, start + n)
        return self.p[sl], self.q[sl], self.pv[sl]

    def nominal(self):
        return self._nominal

    def fingerprint(self) -> str:
        return "arrays:" + _digest(self.p, self.q, self.pv, *self._nominal)

    def describe(self) -> dict:
        return {"kind": "arrays", "samples": self.size, "digest": self.fingerprint()}


class ModelSource:
    """Samples of a :class:`sopjax.sampling.UncertaintyModel` (or any object with its ``sample``).

    Rows are drawn with ``model.sample(net, forecast, key=key, n=n_samples,
    start=a, stop=b)``, which returns rows ``a:b`` of the ``n_samples``-row
    design whatever the chunking (plain MC and Sobol rows depend only on their
    index; a Latin hypercube is stratified over all ``n_samples`` rows).

    Args:
        net: the network.
        model: the uncertainty model.
        pv_forecast_pu: PV forecast per unit, (pv,) (single period).
        seed: integer seed; the key is ``jax.random.key(seed)``.
        n_samples: the design size (the run's number of samples).
        description: JSON-able description of the model (attrs, fingerprint).
    """

    def __init__(self, net, model, pv_forecast_pu, *, seed: int, n_samples: int, description: dict | None = None):
        import jax

        self.net = net
        self.model = model
        self.forecast = np.asarray(pv_forecast_pu, float)
        if self.forecast.shape != (net.pv.count,):
            raise SopjaxError(
                f"pv forecast needs one value per PV unit ({net.pv.count}) for a single period, "
                f"got shape {self.forecast.shape}"
            )
        if getattr(model, "load_profile", None) is not None:
            raise SopjaxError("run_montecarlo scores one period; remove load_profile from the model, or score "
                              "the horizon with ProfileSource and run_timeseries (sopjax.montecarlo.timeseries)")
        self.seed = int(seed)
        self.n_samples = int(n_samples)
        self.description = dict(description or {"model": repr(model)})
        self.key = jax.random.key(self.seed)

    def draw(self, start: int, n: int):
        if start + n > self.n_samples:
            raise SopjaxError(f"the design has {self.n_samples} samples; asked for {start}..{start + n - 1}")
        s = self.model.sample(self.net, self.forecast, key=self.key, n=self.n_samples, start=start, stop=start + n)
        return s.p_load_pu, s.q_load_pu, s.p_pv_pu

    def nominal(self):
        return (np.asarray(self.net.p_load_pu, float), np.asarray(self.net.q_load_pu, float), self.forecast.copy())

    def fingerprint(self) -> str:
        import json

        text = json.dumps(
            {"seed": self.seed, "n": self.n_samples, "model": self.description, "repr": repr(self.model)},
            sort_keys=True, default=str,
        )
        return "model:" + hashlib.sha256(text.encode()).hexdigest()[:16] + ":" + _digest(self.forecast)

    def describe(self) -> dict:
        return {"kind": "model", "seed": self.seed, **self.description}


class TimeSeriesError(SopjaxError):
    """Invalid time-series input: profile, strategies per period, control policy (named)."""


class ProfileSource:
    """Samples over a horizon of an :class:`~sopjax.sampling.UncertaintyModel`; sample ``i`` depends on ``i``.

    Args:
        net: the network.
        model: the uncertainty model; its ``load_profile`` (periods,) scales the nominal load
            per period and its ``time_rho`` correlates the forecast errors of consecutive periods.
        pv_forecast_pu: PV forecast (time, pv) per unit, or (pv,) repeated over the load profile's periods.
        seed: integer seed (``jax.random.key(seed)``).
        n_samples: the design size.
        periods: expected number of periods (checked against the profile and forecast), optional.
        description: JSON-able description (dataset attributes, fingerprint).

    Raises:
        TimeSeriesError / ProfileError: a forecast or profile of the wrong length, a negative value.
    """

    def __init__(
        self,
        net,
        model,
        pv_forecast_pu,
        *,
        seed: int,
        n_samples: int,
        periods: int | None = None,
        description: dict | None = None,
    ):
        import jax as _jax

        self.net, self.model = net, model
        fc = np.asarray(pv_forecast_pu, float)
        prof = model.profile_array()
        if fc.ndim == 1:
            fc = np.broadcast_to(fc, (1 if prof is None else prof.shape[0], fc.shape[0])).copy()
        if fc.ndim != 2 or fc.shape[1] != net.pv.count:
            raise TimeSeriesError(
                f"pv forecast must be (time, {net.pv.count}) per unit, got shape {fc.shape}"
            )
        for k in range(fc.shape[1]):
            check_profile(fc[:, k], name=f"pv forecast of PV unit {k}")
        if prof is not None and prof.shape[0] != fc.shape[0]:
            raise TimeSeriesError(
                f"load profile has {prof.shape[0]} periods but the pv forecast has {fc.shape[0]}"
            )
        if periods is not None and fc.shape[0] != int(periods):
            raise TimeSeriesError(f"the profile has {fc.shape[0]} periods, expected {int(periods)}")
        self.forecast = fc
        self.profile = np.ones(fc.shape[0]) if prof is None else prof
        self.seed, self.n_samples = int(seed), int(n_samples)
        self.description = dict(description or {"model": repr(model)})
        self.key = _jax.random.key(self.seed)

    @property
    def n_periods(self) -> int:
        return self.forecast.shape[0]

    def draw(self, start: int, n: int):
        """Samples ``[start, start + n)``: (n, time, bus), (n, time, bus), (n, time, pv)."""
        if start + n > self.n_samples:
            raise SopjaxError(f"the design has {self.n_samples} samples; asked for {start}..{start + n - 1}")
        s = self.model.sample(
            self.net, self.forecast, key=self.key, n=self.n_samples, start=start, stop=start + n
        )
        return s.p_load_pu, s.q_load_pu, s.p_pv_pu

    def nominal(self):
        """The forecast without noise: (time, bus), (time, bus), (time, pv)."""
        p = self.profile[:, None] * np.asarray(self.net.p_load_pu, float)[None]
        q = self.profile[:, None] * np.asarray(self.net.q_load_pu, float)[None]
        return p, q, self.forecast.copy()

    def fingerprint(self) -> str:
        text = json.dumps(
            {"seed": self.seed, "n": self.n_samples, "model": self.description, "repr": repr(self.model)},
            sort_keys=True,
            default=str,
        )
        return "profile:" + hashlib.sha256(text.encode()).hexdigest()[:16] + ":" + _digest(self.forecast)

    def describe(self) -> dict:
        return {"kind": "profile", "seed": self.seed, "periods": self.n_periods, **self.description}
