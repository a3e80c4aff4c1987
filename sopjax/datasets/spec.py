"""What a labelled dataset holds: :class:`DatasetSpec`, validated once, and its split codes.

The spec is a plain frozen dataclass (no file reading): :mod:`sopjax.datasets.study`
builds it from a TOML mapping, tests and scripts build it directly. Every sample ``i``
is a pure function of ``(spec, i)``; a chunk of samples a pure function of
``(spec, chunk index)`` (:mod:`sopjax.datasets.generate`).
"""

from __future__ import annotations

import dataclasses
import json
import math

from sopjax.errors import SopjaxError

__all__ = ["SPLITS", "VARIANTS", "DatasetError", "DatasetSpec"]

#: split codes stored in the ``split`` variable (int8), in this order
SPLITS = ("train", "val", "test", "ood_topology", "ood_load")

#: SOP mode families of a sample (the ``variant`` variable, int8, in this order): ``pq`` every SOP
#: in PQ mode at random set-points (a fault with probability ``fault_fraction``, not restored);
#: ``off`` every SOP off (same faults); ``vf`` a fault isolates part of the feeder and one SOP in Vf
#: mode energizes the island (the others in PQ mode), with random load pickup
VARIANTS = ("pq", "off", "vf")

#: fields added after the first stores were written: left out of :meth:`DatasetSpec.to_json` at
#: their defaults, so that a store made before them still resumes and grows
_LATER_FIELDS = {
    "sop_mode_mix": (("pq", 1.0),),
    "vf_u_set_pu": (1.0, 1.05),
    "vf_pickup": (0.5, 1.0),
    "vf_v_limits_pu": (0.95, 1.05),
    "restoration_labels": 0,
    "restoration_switchable": "ties",
    "restoration_time_limit": 60.0,
}


class DatasetError(SopjaxError):
    """A dataset spec, store or feature array is invalid (the message names the field)."""


def _range(name: str, r, lo: float = 0.0) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in r)
    except (TypeError, ValueError):
        raise DatasetError(f"{name} must be a pair [low, high], got {r!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)) or a < lo or b < a:
        raise DatasetError(f"{name} must be finite with {lo} <= low <= high, got [{a}, {b}]")
    return a, b


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A labelled dataset of one feeder (with its PV and SOPs from the network).

    Attributes:
        samples: number of samples (> 0).
        chunk_size: samples per chunk, the unit of work, of writing and of resuming.
        seed: root seed; sample ``i`` uses ``(seed, i)`` only.
        load_scale: range of the per-sample system load multiplier (uniform), in distribution.
        ood_load_scale: the same for the ``ood_load`` split (above ``load_scale``).
        load_sigma_frac: per-bus load noise (normal, fraction of the bus load), on top of the scale.
        pv_output: range of each PV unit's output as a fraction of its rating (uniform).
        sop_capacity_kva: range of each VSC's capacity (kVA, uniform, VSCs independent).
        setpoint_frac: SOP set-points of the power-flow labels: ``|p_i|, |q_i|, |q_j|`` up to
            this fraction of the capacity (uniform, random signs); ``p_j`` from the DC balance.
        configurations: size of the pool of radial switch configurations (the case's own is 0).
        held_out: how many pool configurations are kept for the ``ood_topology`` split.
        fault_fraction: share of samples with one random closed branch opened (a fault:
            buses below it are de-energized; no dispatch labels for those).
        split_fractions: shares of ``train, val, test, ood_topology, ood_load`` (sum 1).
        dispatch: also label the optimal SOP dispatch (JAX interior point) of unfaulted samples.
        dispatch_tol: interior-point tolerance (p.u.).
        v_min_pu: lowest voltage a pool configuration may have at nominal load (checked by power flow).
        sop_mode_mix: ``(family, weight)`` pairs over :data:`VARIANTS` (weights >= 0, some > 0,
            normalised); each sample draws its family. ``(("pq", 1.0),)`` (default) draws nothing
            more, so such a dataset is the one made before the other families existed.
        vf_u_set_pu: range of the Vf-mode VSC's voltage set-point ``U_set`` (p.u., uniform).
        vf_pickup: range of the per-sample pickup probability of each outage-area bus in ``vf``
            samples (uniform; each bus then picked up, 1, or shed, 0, independently).
        vf_v_limits_pu: ``[v_min, v_max]`` of the exact kernel's compliance test in ``vf`` samples
            (a picked-up, energized bus counts as restored only within them; seed 002: 0.95, 1.05).
        restoration_labels: number of faulted samples (the first ones by index) also labelled
            with the optimal restoration plan of the MISOCP (0: none); see
            :mod:`sopjax.datasets.restoration`.
        restoration_switchable: the MISOCP's switches: ``"ties"`` (the branches the sample's
            configuration keeps open), ``"all"`` or ``"none"``.
        restoration_time_limit: seconds per MISOCP solve (SCIP).
    """

    samples: int
    chunk_size: int = 256
    seed: int = 0
    load_scale: tuple[float, float] = (0.6, 1.2)
    ood_load_scale: tuple[float, float] = (1.25, 1.4)
    load_sigma_frac: float = 0.1
    pv_output: tuple[float, float] = (0.0, 1.0)
    sop_capacity_kva: tuple[float, float] = (50.0, 500.0)
    setpoint_frac: float = 0.8
    configurations: int = 8
    held_out: int = 2
    fault_fraction: float = 0.1
    split_fractions: tuple[float, ...] = (0.7, 0.1, 0.1, 0.05, 0.05)
    dispatch: bool = True
    dispatch_tol: float = 1e-8
    v_min_pu: float = 0.85
    sop_mode_mix: tuple[tuple[str, float], ...] = (("pq", 1.0),)
    vf_u_set_pu: tuple[float, float] = (1.0, 1.05)
    vf_pickup: tuple[float, float] = (0.5, 1.0)
    vf_v_limits_pu: tuple[float, float] = (0.95, 1.05)
    restoration_labels: int = 0
    restoration_switchable: str = "ties"
    restoration_time_limit: float = 60.0

    def __post_init__(self):
        for name in ("samples", "chunk_size", "configurations"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise DatasetError(f"{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise DatasetError(f"seed must be an integer >= 0, got {self.seed!r}")
        object.__setattr__(self, "load_scale", _range("load_scale", self.load_scale))
        object.__setattr__(self, "ood_load_scale", _range("ood_load_scale", self.ood_load_scale))
        object.__setattr__(self, "pv_output", _range("pv_output", self.pv_output))
        object.__setattr__(self, "sop_capacity_kva", _range("sop_capacity_kva", self.sop_capacity_kva))
        if self.ood_load_scale[0] < self.load_scale[1]:
            raise DatasetError(
                f"ood_load_scale {list(self.ood_load_scale)} must lie above the training range "
                f"load_scale {list(self.load_scale)}"
            )
        for name, hi in (("load_sigma_frac", 1.0), ("setpoint_frac", 1.0), ("fault_fraction", 1.0)):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= hi):
                raise DatasetError(f"{name} must lie in [0, {hi}], got {v!r}")
        if not 0 <= self.held_out < self.configurations:
            raise DatasetError(
                f"held_out must be >= 0 and below configurations ({self.configurations}), got {self.held_out}"
            )
        fr = tuple(float(f) for f in self.split_fractions)
        if (
            len(fr) != len(SPLITS)
            or any(not math.isfinite(f) or f < 0 for f in fr)
            or abs(sum(fr) - 1) > 1e-9
        ):
            raise DatasetError(
                f"split_fractions must be {len(SPLITS)} shares >= 0 of {SPLITS} summing to 1, "
                f"got {list(self.split_fractions)}"
            )
        if fr[3] > 0 and self.held_out == 0:
            raise DatasetError("split ood_topology has a share but held_out = 0 configurations")
        object.__setattr__(self, "split_fractions", fr)
        if not (math.isfinite(self.dispatch_tol) and self.dispatch_tol > 0):
            raise DatasetError(f"dispatch_tol must be > 0, got {self.dispatch_tol!r}")
        object.__setattr__(self, "sop_mode_mix", _mode_mix(self.sop_mode_mix))
        for name in ("vf_u_set_pu", "vf_pickup", "vf_v_limits_pu"):
            object.__setattr__(self, name, _range(name, getattr(self, name)))
        if self.vf_pickup[1] > 1:
            raise DatasetError(f"vf_pickup must lie in [0, 1], got {list(self.vf_pickup)}")
        r = self.restoration_labels
        if isinstance(r, bool) or not isinstance(r, int) or r < 0:
            raise DatasetError(f"restoration_labels must be an integer >= 0, got {r!r}")
        if r > self.samples:
            raise DatasetError(
                f"restoration_labels ({r}) exceeds samples ({self.samples}): the MISOCP subset must be "
                "part of the dataset"
            )
        if self.restoration_switchable not in ("ties", "all", "none"):
            raise DatasetError(
                f"restoration_switchable must be 'ties', 'all' or 'none', got {self.restoration_switchable!r}"
            )
        t = self.restoration_time_limit
        if not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
            raise DatasetError(f"restoration_time_limit must be > 0 seconds, got {t!r}")

    @property
    def mode_weights(self) -> tuple[float, ...]:
        """Normalised weight of each family of :data:`VARIANTS`."""
        w = dict(self.sop_mode_mix)
        total = sum(w.values())
        return tuple(w.get(v, 0.0) / total for v in VARIANTS)

    @property
    def variants(self) -> bool:
        """True when some sample may be of another family than ``pq`` (the extra variables exist)."""
        return self.mode_weights != (1.0, 0.0, 0.0)

    @property
    def n_chunks(self) -> int:
        return -(-self.samples // self.chunk_size)

    def chunk_range(self, chunk: int) -> tuple[int, int]:
        """Global sample rows ``[start, stop)`` of ``chunk``."""
        if not 0 <= chunk < self.n_chunks:
            raise DatasetError(f"chunk {chunk} out of range 0..{self.n_chunks - 1}")
        a = chunk * self.chunk_size
        return a, min(a + self.chunk_size, self.samples)

    def to_json(self) -> str:
        """The spec as JSON (provenance attribute; ``samples`` excluded so that a store can grow)."""
        d = dataclasses.asdict(self)
        d.pop("samples")
        for k, default in _LATER_FIELDS.items():
            if getattr(self, k) == default:
                d.pop(k)
        return json.dumps(d, sort_keys=True)


def _mode_mix(mix) -> tuple[tuple[str, float], ...]:
    """Validate ``sop_mode_mix`` (a mapping or ``(name, weight)`` pairs); errors name the entry."""
    items = list(mix.items()) if isinstance(mix, dict) else list(mix)
    out: dict[str, float] = {}
    for item in items:
        try:
            name, w = item
        except (TypeError, ValueError):
            raise DatasetError(f"sop_mode_mix entries must be (mode, weight) pairs, got {item!r}") from None
        if name not in VARIANTS:
            raise DatasetError(f"sop_mode_mix.{name}: unknown SOP mode family; choose from {list(VARIANTS)}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise DatasetError(f"sop_mode_mix.{name} must be a weight >= 0, got {w!r}")
        if name in out:
            raise DatasetError(f"sop_mode_mix.{name} is given twice")
        out[name] = float(w)
    if sum(out.values()) <= 0:
        raise DatasetError(
            f"sop_mode_mix enables no mode: give at least one of {list(VARIANTS)} a weight > 0, got {out}"
        )
    return tuple(sorted(out.items(), key=lambda kv: VARIANTS.index(kv[0])))
