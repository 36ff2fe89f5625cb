"""GPU profiles: the conventional reference a neuromorphic estimate is compared with.

A profile file (``mappings/gpus/*.toml``, or a user's file by path) has ``[gpu]`` (name, description),
``[compute]`` (dense peaks per precision, the achievable fraction of them, memory bandwidth and its
achievable fraction, L2 and device memory, the host link, TDP, launch overheads: eager per kernel, in a CUDA
graph per graph and per kernel node, and the host's fixed time per batch) and ``[power]`` (idle, awake and
active board power, each a plain number or ``{ typical, low, high, source }`` where sources disagree,
low <= typical <= high). The time figures of ``[compute]`` (the two efficiencies, the launch and host times,
``RANGED``) may be given the same way, a source named: the model then gives a latency band
(``hwsim.gpu_model``). The FP32 peak is required; a device that cannot run FP16, BF16 or INT8 faster than
FP32 (no tensor cores, no packed half or dp4a units) leaves that peak out, and asking for that precision is
refused, naming the profile and the key. Every other field is required and checked on load; unknown fields
are rejected, as for chip targets (``mappings.target``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mappings.errors import TargetError
from mappings.target import check_head, check_table, read_toml

GPUS_DIR = Path(__file__).with_name("gpus")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class PowerFigure:
    """A board power in W: the typical value and the range the sources span."""

    typical: float
    low: float
    high: float
    source: str


@dataclass(frozen=True)
class TimeRange:
    """The range the sources give one of a profile's time figures (RANGED): low <= the profile's value <= high."""

    low: float
    high: float
    source: str


@dataclass(frozen=True)
class GpuProfile:
    """One GPU. Dense peaks in TFLOP/s (int8: TOP/s; fp32 on the CUDA cores, fp16/bf16/int8 on the fastest
    units that run them: tensor cores where the device has them; None where it has no such precision), the
    fractions of peak a well-shaped kernel reaches, bandwidths in GB/s, L2 in MB (10^6 bytes), device memory
    in GB (10^9 bytes), TDP in W, launch and host overheads in microseconds; board powers in W. ``time_ranges``:
    the range of each time figure the file gives one for (RANGED)."""

    name: str
    description: str
    peak_fp32_tflops: float
    peak_fp16_tflops: float | None
    peak_bf16_tflops: float | None
    peak_int8_tops: float | None
    compute_efficiency: float
    memory_bandwidth_gb_s: float
    bandwidth_efficiency: float
    l2_cache_mb: float
    memory_gb: float
    host_link_gb_s: float
    tdp_w: float
    kernel_launch_us: float
    graph_launch_us: float
    graph_kernel_us: float
    host_call_us: float
    idle_power_w: PowerFigure
    awake_power_w: PowerFigure
    active_power_w: PowerFigure
    source: str
    time_ranges: dict[str, TimeRange] = dataclasses.field(default_factory=dict)   # by key; absent: no range

    def __post_init__(self) -> None:
        # a range that no longer holds its value (a figure replaced in code, its range kept) would give a band
        # beside the estimate: refused, naming the key
        for key, ranged in self.time_ranges.items():
            if not ranged.low <= getattr(self, key) <= ranged.high:
                raise TargetError(f"{self.source or self.name}: [compute] {key}: {getattr(self, key)!r} lies outside "
                                  f"its range [{ranged.low!r}, {ranged.high!r}]", path=self.source,
                                  field=f"[compute] {key}", value=getattr(self, key),
                                  allowed=(ranged.low, ranged.high))

    def time_range(self, key: str) -> tuple[float, float]:
        """The (low, high) the sources give the time figure ``key`` (one of RANGED); (value, value) without a range."""
        value = getattr(self, key)
        ranged = self.time_ranges.get(key)
        return (value, value) if ranged is None else (ranged.low, ranged.high)

    def has_precision(self, precision: str) -> bool:
        """Whether the profile gives a peak for ``precision`` (one of PRECISIONS)."""
        return getattr(self, PEAK_KEYS[precision]) is not None

    def peak_ops_per_s(self, precision: str) -> float:
        """The dense peak of ``precision`` (one of PRECISIONS) in operations per second; a precision the
        profile leaves out is refused, naming the profile and the key."""
        key = PEAK_KEYS[precision]
        peak = getattr(self, key)
        if peak is None:
            raise TargetError(f"{self.source or self.name}: [compute] {key}: absent, so {self.name} has no "
                              f"{precision} peak; use a precision it gives ({', '.join(self.precisions())})",
                              path=self.source, field=f"[compute] {key}", value=precision,
                              allowed=self.precisions())
        return peak * 1e12

    def precisions(self) -> tuple[str, ...]:
        """The precisions the profile gives a peak for, in PRECISIONS order (fp32 always)."""
        return tuple(p for p in PRECISIONS if self.has_precision(p))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PEAK_KEYS = {"fp32": "peak_fp32_tflops", "fp16": "peak_fp16_tflops", "bf16": "peak_bf16_tflops",
             "int8": "peak_int8_tops"}
_OPTIONAL = ("peak_fp16_tflops", "peak_bf16_tflops", "peak_int8_tops")  # absent: the device has no such precision
_FIELDS = {
    "compute": ("peak_fp32_tflops", *_OPTIONAL, "compute_efficiency", "memory_bandwidth_gb_s", "bandwidth_efficiency",
                "l2_cache_mb", "memory_gb", "host_link_gb_s", "tdp_w", "kernel_launch_us", "graph_launch_us",
                "graph_kernel_us", "host_call_us"),
}
_POWER = ("idle_power_w", "awake_power_w", "active_power_w")
# the [compute] figures that set a latency and that sources give as a range: the achievable fractions, the
# launch and host times
RANGED = ("compute_efficiency", "bandwidth_efficiency", "kernel_launch_us", "graph_launch_us", "graph_kernel_us",
          "host_call_us")
_MAY_BE_ZERO = {"kernel_launch_us", "graph_launch_us", "graph_kernel_us", "host_call_us"}
_FRACTIONS = {"compute_efficiency", "bandwidth_efficiency"}
# Far above any GPU built (an H200: 67 TFLOP/s FP32, 4.8 TB/s, 50 MB L2, 141 GB, 700 W): beyond them a typo,
# and estimates of inf
_MAXIMA = {"peak_fp32_tflops": (1e6, "TFLOP/s"), "peak_fp16_tflops": (1e7, "TFLOP/s"),
           "peak_bf16_tflops": (1e7, "TFLOP/s"), "peak_int8_tops": (1e7, "TOP/s"),
           "memory_bandwidth_gb_s": (1e7, "GB/s"), "l2_cache_mb": (1e6, "MB"), "memory_gb": (1e6, "GB"),
           "host_link_gb_s": (1e6, "GB/s"), "tdp_w": (1e5, "W"), "kernel_launch_us": (1e6, "us per kernel"),
           "graph_launch_us": (1e6, "us per graph"), "graph_kernel_us": (1e6, "us per kernel in a graph"),
           "host_call_us": (1e6, "us per batch")}
_POWER_MAX = (1e5, "W")
_RULE = (float, lambda x: x > 0, "> 0")
_RULE_ZERO_OK = (float, lambda x: x >= 0, ">= 0")
_RULE_FRACTION = (float, lambda x: 0 < x <= 1, "in (0, 1]")


def _rule(name: str) -> tuple:
    return _RULE_FRACTION if name in _FRACTIONS else _RULE_ZERO_OK if name in _MAY_BE_ZERO else _RULE


def _power(raw: Any, name: str, where: str) -> PowerFigure:
    """A plain number (no range) or ``{ typical, low, high, source }``, every value > 0 and low <= typical <= high."""
    field = f"[power] {name}"
    if not isinstance(raw, dict):
        value = check_table({"power": {name: raw}}, "power", where, {name: _RULE}, {name: _POWER_MAX})[name]
        return PowerFigure(value, value, value, "")
    rules = {k: _RULE for k in ("typical", "low", "high")} | {"source": (str, None, "")}
    figure = check_table({field: raw}, field, where, rules, {k: _POWER_MAX for k in ("typical", "low", "high")})
    if not figure["low"] <= figure["typical"] <= figure["high"]:
        raise TargetError(f"{where}: {field}: needs low <= typical <= high, got {figure['low']!r}, "
                          f"{figure['typical']!r}, {figure['high']!r}", path=where, field=field,
                          value=(figure["low"], figure["typical"], figure["high"]), allowed="low <= typical <= high")
    return PowerFigure(**figure)


def _time_range(raw: dict, name: str, where: str) -> tuple[float, TimeRange]:
    """``{ typical, low, high, source }`` for the [compute] time figure ``name``: each value under the key's
    rule and maximum, low <= typical <= high, a source named."""
    field = f"[compute] {name}"
    rules = {k: _rule(name) for k in ("typical", "low", "high")} | {"source": (str, bool, "named")}
    figure = check_table({field: raw}, field, where, rules, {k: _MAXIMA[name] for k in ("typical", "low", "high")
                                                             if name in _MAXIMA})
    if not figure["low"] <= figure["typical"] <= figure["high"]:
        raise TargetError(f"{where}: {field}: needs low <= typical <= high, got {figure['low']!r}, "
                          f"{figure['typical']!r}, {figure['high']!r}", path=where, field=field,
                          value=(figure["low"], figure["typical"], figure["high"]), allowed="low <= typical <= high")
    return figure["typical"], TimeRange(figure["low"], figure["high"], figure["source"])


def parse_gpu(doc: dict, where: str) -> GpuProfile:
    """A GpuProfile from a parsed TOML document; ``where`` names the file in messages."""
    head = check_head(doc, "gpu", [*_FIELDS, "power"], where)
    compute = doc.get("compute")
    present = set(compute) if isinstance(compute, dict) else set()
    ranges: dict[str, TimeRange] = {}
    if isinstance(compute, dict):
        typicals = {}
        for name in RANGED:
            if isinstance(compute.get(name), dict):
                typicals[name], ranges[name] = _time_range(compute[name], name, where)
        doc = doc | {"compute": compute | typicals}
    values: dict[str, Any] = dict.fromkeys(_OPTIONAL)
    values |= {k: v for table, names in _FIELDS.items()
               for k, v in check_table(doc, table, where, {n: _rule(n) for n in names
                                                           if n not in _OPTIONAL or n in present},
                                       _MAXIMA).items()}
    raw_power = check_table(doc, "power", where, {n: (object, None, "") for n in _POWER})
    values |= {n: _power(raw_power[n], n, where) for n in _POWER}
    _ordered(values["idle_power_w"], values["awake_power_w"], "awake_power_w", "idle_power_w", where, strict=False)
    _ordered(values["awake_power_w"], values["active_power_w"], "active_power_w", "awake_power_w", where,
             strict=True)
    return GpuProfile(name=head["name"], description=head["description"], source=where, time_ranges=ranges, **values)


def _ordered(lower: PowerFigure, upper: PowerFigure, name: str, other: str, where: str, *, strict: bool) -> None:
    """``upper`` exceeds ``lower`` (``strict``) or is at least it, at low, typical and high."""
    pairs = ((lower.low, upper.low), (lower.typical, upper.typical), (lower.high, upper.high))
    if all(a < b if strict else a <= b for a, b in pairs):
        return
    verb = "exceed" if strict else "be at least"
    raise TargetError(f"{where}: [power] {name}: must {verb} {other} at low, typical and high, got "
                      f"{upper.low!r}, {upper.typical!r}, {upper.high!r} against {lower.low!r}, {lower.typical!r}, "
                      f"{lower.high!r}", path=where, field=f"[power] {name}",
                      value=(upper.low, upper.typical, upper.high), allowed=f"{'>' if strict else '>='} {other}")


def available_gpus() -> list[str]:
    """Names of the GPU profiles shipped with neuromap."""
    return sorted(p.stem for p in GPUS_DIR.glob("*.toml"))


def load_gpu(name_or_path: str | Path) -> GpuProfile:
    """A shipped GPU profile by name ("h100", "a100", ...) or a user's TOML file by path."""
    doc, path = read_toml(name_or_path, GPUS_DIR, "GPU profile")
    return parse_gpu(doc, str(path))
