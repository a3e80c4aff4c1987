"""Daily (24-hour) load and PV profiles and their validation.

Sources, stated once:

* ``rts79_*`` load shapes: **IEEE RTS-79**, IEEE Committee Report, "IEEE
  Reliability Test System", IEEE Trans. PAS-98(6), pp. 2047-2054, 1979,
  Table 3 "Hourly peak load in percent of daily peak" (hour 0 = 12-1 am), for
  winter (weeks 1-8, 44-52), summer (18-30) and spring/fall (9-17, 31-43)
  weekdays and weekends. A system-level shape, documented and widely used.
* ``residential_synthetic`` and ``commercial_synthetic``: **synthetic**
  shapes made for sopjax (a base level plus smooth peaks: residential morning
  and evening peaks, commercial business-hours plateau with a lunch dip). They
  have the right qualitative form and no measured basis; do not quote them as
  data.
* :func:`clear_sky_pv_profile`: horizontal global irradiance from the Haurwitz
  (1945) clear-sky model ``GHI = 1098 cos(z) exp(-0.057 / cos(z))`` W/m2, solar
  zenith ``z`` from latitude, Cooper's (1969) declination and the hour angle in
  local solar time; averaged over each period, normalised to a peak of 1. A
  cloudless day on a horizontal plane, no temperature derating: an upper
  envelope of PV output, not a forecast of any real day.

All shapes are per-period multipliers with a peak of 1 (load: of the case's
nominal load; PV: of the unit's peak forecast).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sopjax.network import Network
from sopjax.sampling.errors import ProfileError

__all__ = [
    "RTS79_HOURLY_PCT",
    "LOAD_SHAPES",
    "load_profile",
    "daily_profile",
    "check_profile",
    "clear_sky_pv_profile",
    "pv_forecast",
]

HOURS = 24

#: IEEE RTS-79 Table 3: hourly load in percent of the daily peak, hour 0 = 12-1 am.
RTS79_HOURLY_PCT: dict[str, tuple[int, ...]] = {
    "winter_weekday": (67, 63, 60, 59, 59, 60, 74, 86, 95, 96, 96, 95,
                       95, 95, 93, 94, 99, 100, 100, 96, 91, 83, 73, 63),
    "winter_weekend": (78, 72, 68, 66, 64, 65, 66, 70, 80, 88, 90, 91,
                       90, 88, 87, 87, 91, 100, 99, 97, 94, 92, 87, 81),
    "summer_weekday": (64, 60, 58, 56, 56, 58, 64, 76, 87, 95, 99, 100,
                       99, 100, 100, 97, 96, 96, 93, 92, 92, 93, 87, 72),
    "summer_weekend": (74, 70, 66, 65, 64, 62, 62, 66, 81, 86, 91, 93,
                       93, 92, 91, 91, 92, 94, 95, 95, 100, 93, 88, 80),
    "spring_fall_weekday": (63, 62, 60, 58, 59, 65, 72, 85, 95, 99, 100, 99,
                            93, 92, 90, 88, 90, 92, 96, 98, 96, 90, 80, 70),
    "spring_fall_weekend": (75, 73, 69, 66, 65, 65, 68, 74, 83, 89, 92, 94,
                            91, 90, 90, 86, 85, 88, 92, 100, 97, 95, 90, 85),
}


def _bump(h: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((h - centre) / width) ** 2)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _residential(h: np.ndarray) -> np.ndarray:
    # SYNTHETIC: night base 0.40, morning peak ~07:30, evening peak ~19:30.
    return 0.40 + 0.25 * _bump(h, 7.5, 1.3) + 0.55 * _bump(h, 19.5, 2.2) + 0.10 * _bump(h, 13.0, 3.0)


def _commercial(h: np.ndarray) -> np.ndarray:
    # SYNTHETIC: base 0.30, business hours 08:00-18:30, shallow lunch dip.
    on = _sigmoid((h - 8.0) / 0.6) * _sigmoid((18.5 - h) / 0.8)
    return 0.30 + 0.70 * on * (1.0 - 0.08 * _bump(h, 12.5, 0.7))


def _shape(fn) -> np.ndarray:
    v = fn(np.arange(HOURS) + 0.5)
    return v / v.max()


LOAD_SHAPES: dict[str, np.ndarray] = {
    **{f"rts79_{k}": np.asarray(v, float) / 100.0 for k, v in RTS79_HOURLY_PCT.items()},
    "residential_synthetic": _shape(_residential),
    "commercial_synthetic": _shape(_commercial),
    "flat": np.ones(HOURS),
}


def load_profile(name: str) -> np.ndarray:
    """A named 24-hour load shape (peak 1), see the module doc for sources.

    Args:
        name: one of :data:`LOAD_SHAPES` (``rts79_winter_weekday``, ...,
            ``residential_synthetic``, ``commercial_synthetic``, ``flat``).

    Returns:
        Multipliers of the nominal load, shape (24,), hour 0 = 00:00-01:00.

    Raises:
        ProfileError: unknown name.
    """
    if name not in LOAD_SHAPES:
        raise ProfileError(f"unknown load profile {name!r}; choose one of {', '.join(LOAD_SHAPES)}")
    return LOAD_SHAPES[name].copy()


def check_profile(values, *, name: str = "profile", length: int | None = None) -> np.ndarray:
    """Validate a profile: 1-D, non-empty, finite, >= 0 and (if given) ``length`` periods.

    Raises:
        ProfileError: naming ``name`` and the period at fault.
    """
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ProfileError(f"{name} must be a sequence of numbers") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ProfileError(
            f"{name} must be a non-empty 1-D sequence of per-period values, got shape {arr.shape}"
        )
    if length is not None and arr.size != length:
        raise ProfileError(f"{name} has {arr.size} periods, expected {length}")
    bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
    if bad.size:
        raise ProfileError(f"{name}[{bad[0]}] must be a finite number >= 0, got {arr[bad[0]]}")
    return arr


def daily_profile(values: Sequence[float], *, name: str = "profile", periods: int = HOURS) -> np.ndarray:
    """A user's daily profile, validated to have ``periods`` (default 24 hourly) values >= 0."""
    return check_profile(values, name=name, length=periods)


def clear_sky_pv_profile(
    *, latitude_deg: float = 30.0, day_of_year: int = 172, periods: int = HOURS, substeps: int = 12
) -> np.ndarray:
    """Clear-sky PV shape (Haurwitz GHI on a horizontal plane), peak 1, in local solar time.

    Args:
        latitude_deg: site latitude in degrees (north positive), [-90, 90].
        day_of_year: 1..366 (172 = June 21).
        periods: periods per day (24 = hourly); period k covers
            ``[k, k+1) * 24/periods`` hours.
        substeps: evaluation points per period for the period average.

    Returns:
        Shape (periods,), max 1, zero at night.

    Raises:
        ProfileError: a parameter out of range, or no sun that day (polar night).
    """
    if not (math.isfinite(latitude_deg) and -90.0 <= latitude_deg <= 90.0):
        raise ProfileError(f"latitude_deg must be in [-90, 90], got {latitude_deg}")
    if not 1 <= int(day_of_year) <= 366:
        raise ProfileError(f"day_of_year must be in 1..366, got {day_of_year}")
    if int(periods) < 1 or int(substeps) < 1:
        raise ProfileError(f"periods and substeps must be >= 1, got {periods} and {substeps}")
    dt = 24.0 / periods
    hours = (np.arange(periods)[:, None] + (np.arange(substeps)[None, :] + 0.5) / substeps) * dt
    decl = math.radians(23.45) * math.sin(2 * math.pi * (284 + int(day_of_year)) / 365.0)
    lat = math.radians(latitude_deg)
    cos_z = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * np.cos(
        np.radians(15.0 * (hours - 12.0))
    )
    c = np.clip(cos_z, 1e-9, None)
    ghi = np.where(cos_z > 0, 1098.0 * c * np.exp(-0.057 / c), 0.0).mean(axis=1)
    if ghi.max() <= 0:
        raise ProfileError(f"no sunshine at latitude {latitude_deg} on day {day_of_year} (polar night)")
    return ghi / ghi.max()


def pv_forecast(
    net: Network, profile, *, peak_frac: float | Sequence[float] = 1.0, limit: str = "s_rated"
) -> np.ndarray:
    """PV forecast (time, pv) in p.u.: ``profile[t] * peak_frac * p_max`` per unit.

    Args:
        net: the network (its ``pv`` table gives ratings and power factors).
        profile: per-period shape with values in [0, 1], e.g. :func:`clear_sky_pv_profile`.
        peak_frac: forecast at the profile's peak as a fraction of ``p_max``
            (scalar or one per unit), in [0, 1].
        limit: ``"s_rated"`` (``p_max = s_rated``) or ``"apparent"``
            (``p_max = pf * s_rated``), as in :class:`~sopjax.sampling.PVForecastError`.

    Returns:
        Forecast array (time, pv), float64.

    Raises:
        ProfileError: profile invalid or above 1, ``peak_frac`` outside [0, 1].
    """
    shape = check_profile(profile, name="pv profile")
    if shape.max() > 1.0 + 1e-12:
        k = int(np.argmax(shape))
        raise ProfileError(f"pv profile[{k}] = {shape[k]} exceeds 1 (a shape has its peak <= 1)")
    if limit not in ("s_rated", "apparent"):
        raise ProfileError(f"limit must be 's_rated' or 'apparent', got {limit!r}")
    n = net.pv.count
    frac = np.broadcast_to(np.asarray(peak_frac, dtype=float), (n,)) if n else np.zeros(0)
    bad = np.flatnonzero(~np.isfinite(frac) | (frac < 0) | (frac > 1))
    if bad.size:
        raise ProfileError(f"peak_frac for PV unit {bad[0]} must be in [0, 1], got {frac[bad[0]]}")
    s = np.asarray(net.pv.s_rated_pu, float)
    p_max = s * np.asarray(net.pv.pf, float) if limit == "apparent" else s
    return shape[:, None] * (frac * p_max)[None, :]
