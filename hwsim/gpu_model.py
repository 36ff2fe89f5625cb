"""The GPU baseline's model: a roofline per layer, board power x time for the energy.

A ``Workload`` is what a GPU runs per sample: ``layers``, each with its FLOPs, its unique parameters
(weights and biases as stored: a convolution's kernel once, not once per output position), the values it
reads and writes, and the neuron state it reads and writes back; run ``passes`` times (1 for an ANN, T
steps for an SNN), each pass issuing ``kernels_per_pass`` kernels. For a batch of B samples in precision p
(e bytes per value; weights, activations and state all in p), on a profile (``mappings.gpu``):

    resident   W·e + B·e·max_l(in_l + out_l + state_l) <= L2           (W: all parameters of the network)
               then the weights come from DRAM once per batch, else once per layer and pass
    per layer and pass
        bytes_l = params_l·e (every pass; resident: the first only) + B·e·(in_l + out_l + 2·state_l)
        t_l     = max(B·flops_l / (peak_p·η_compute), bytes_l / (bandwidth·η_memory))
    launches   eager: passes·K·t_kernel;   cuda_graph: t_graph + passes·K·t_node       (K = kernels_per_pass)
    transfer   B·e·inputs·passes / host link                             (the inputs, host to device)
    host call  t_call                                                    (the host's fixed time per batch)
    latency    busy + launches + transfer + host call,  busy = Σ_passes Σ_l t_l   (each inference waits for it)
    energy     static  = P_idle·latency
               dynamic = (P_active - P_idle)·busy + (P_awake - P_idle)·(latency - busy),  total = static + dynamic
               (the board draws its active power while kernels run and its awake power in the gaps between
               them: launches, copies, the host's call, when a stream of batches holds its clocks up)

Per inference: energy / B; throughput B / latency. Bands: the time figures a profile gives a range
(``mappings.gpu.RANGED``) at their fast end (efficiencies high; launch and host times low) give
``latency_band_s`` low, at their slow end its high; the energy band pairs the fast end with the low idle,
awake and active powers (low) and the slow end with the high ones (high), so a low power is never paired
with a long time. A figure without a range is its value at both ends. Device memory bounds the batch: W·e +
B·e·(inputs·passes + Σ_l state_l + max_l(in_l + out_l)) <= memory. Every figure is a model ("model"),
never a bound: a measured board may lie on either side of it. A precision the profile has no peak for is
refused (``mappings.gpu.GpuProfile.peak_ops_per_s``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hwsim.errors import SimOptionError
from mappings.gpu import PRECISIONS, RANGED, GpuProfile

VALUE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
LAUNCH_MODES = ("eager", "cuda_graph")


@dataclass(frozen=True)
class LayerWork:
    """One layer's work per sample and pass: FLOPs, unique parameters, values read and written, state values
    read and written back (an SNN population's u and v)."""

    name: str
    flops: float
    params: int
    inputs: int
    outputs: int
    state: int = 0

    def traffic_values(self) -> int:
        """Values moved per sample and pass: inputs read, outputs written, state read and written."""
        return self.inputs + self.outputs + 2 * self.state

    def footprint_values(self) -> int:
        """Values held per sample while the layer runs."""
        return self.inputs + self.outputs + self.state


@dataclass(frozen=True)
class Workload:
    """A network as a GPU runs it (module docstring): ``network`` "ann" or "snn"."""

    network: str
    layers: tuple[LayerWork, ...]
    passes: int
    kernels_per_pass: int
    inputs: int

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def flops(self) -> float:
        """FLOPs per sample over all passes."""
        return self.passes * sum(layer.flops for layer in self.layers)

    def memory_bytes(self, batch: int, precision: str) -> float:
        e = VALUE_BYTES[precision]
        per_sample = (self.inputs * self.passes + sum(layer.state for layer in self.layers)
                      + max((layer.inputs + layer.outputs for layer in self.layers), default=0))
        return e * (self.params + batch * per_sample)


@dataclass(frozen=True)
class GpuPoint:
    """One (device, network, precision, batch) figure; energies per inference, latency of the batch."""

    device: str
    network: str
    precision: str
    batch: int
    launch: str
    energy_j: dict[str, float]
    energy_band_j: dict[str, float]
    latency_s: float
    latency_band_s: dict[str, float]
    latency_terms_s: dict[str, float]
    l2_resident: bool
    dram_bytes: float                 # per inference
    flops: float                      # per inference
    source: str = "model"

    @property
    def throughput_per_s(self) -> float:
        return self.batch / self.latency_s

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "network": self.network, "precision": self.precision, "batch": self.batch,
                "launch": self.launch, "energy_j": dict(self.energy_j), "energy_band_j": dict(self.energy_band_j),
                "latency_s": self.latency_s, "latency_band_s": dict(self.latency_band_s),
                "throughput_per_s": self.throughput_per_s,
                "latency_terms_s": dict(self.latency_terms_s), "l2_resident": self.l2_resident,
                "dram_bytes": self.dram_bytes, "flops": self.flops, "source": self.source}


def model_point(work: Workload, profile: GpuProfile, precision: str, batch: int, *,
                launch: str = "cuda_graph") -> GpuPoint:
    """The modelled cost of ``batch`` samples of ``work`` on ``profile`` in ``precision`` (module docstring)."""
    if batch < 1:
        raise SimOptionError(f"batch must be at least 1, got {batch}", field="batch", value=batch, allowed=">= 1")
    if precision not in PRECISIONS:
        raise SimOptionError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}", field="precision",
                             value=precision, allowed=PRECISIONS)
    if launch not in LAUNCH_MODES:
        raise SimOptionError(f"launch mode {launch!r} is not one of {', '.join(LAUNCH_MODES)}", field="launch",
                             value=launch, allowed=LAUNCH_MODES)
    fast, slow = (_time_end(profile, end) for end in ("fast", "slow"))
    typical = _timing(work, profile, precision, batch, launch)
    low, high = _timing(work, fast, precision, batch, launch), _timing(work, slow, precision, batch, launch)

    def energy(t: _Timing, idle_w: float, awake_w: float, active_w: float) -> dict[str, float]:
        static = idle_w * t.latency / batch
        dynamic = ((active_w - idle_w) * t.busy + (awake_w - idle_w) * (t.latency - t.busy)) / batch
        return {"dynamic": dynamic, "static": static, "total": static + dynamic}

    idle, awake, active = profile.idle_power_w, profile.awake_power_w, profile.active_power_w
    return GpuPoint(device=profile.name, network=work.network, precision=precision, batch=batch, launch=launch,
                    energy_j=energy(typical, idle.typical, awake.typical, active.typical),
                    energy_band_j={"low": energy(low, idle.low, awake.low, active.low)["total"],
                                   "high": energy(high, idle.high, awake.high, active.high)["total"]},
                    latency_s=typical.latency, latency_band_s={"low": low.latency, "high": high.latency},
                    latency_terms_s=typical.terms, l2_resident=typical.resident, dram_bytes=typical.dram / batch,
                    flops=work.flops)


@dataclass(frozen=True)
class _Timing:
    """One batch's times (module docstring): the latency terms, their sum, the kernels' busy part."""

    terms: dict[str, float]
    busy: float
    latency: float
    resident: bool
    dram: float


def _time_end(profile: GpuProfile, end: str) -> GpuProfile:
    """``profile`` with each ranged time figure at its ``end``: "fast" (efficiencies high, times low) or "slow"."""
    def at(key: str) -> float:
        low, high = profile.time_range(key)
        return high if (end == "fast") == key.endswith("_efficiency") else low
    ends: dict[str, Any] = {key: at(key) for key in RANGED}
    return dataclasses.replace(profile, **ends)


def _timing(work: Workload, profile: GpuProfile, precision: str, batch: int, launch: str) -> _Timing:
    e = VALUE_BYTES[precision]
    ops_per_s = profile.peak_ops_per_s(precision) * profile.compute_efficiency
    bytes_per_s = profile.memory_bandwidth_gb_s * 1e9 * profile.bandwidth_efficiency
    working_set = e * (work.params + batch * max((la.footprint_values() for la in work.layers), default=0))
    resident = working_set <= profile.l2_cache_mb * 1e6
    compute_bound = memory_bound = dram = 0.0
    for layer in work.layers:
        compute = batch * layer.flops / ops_per_s
        activations = batch * e * layer.traffic_values()
        weight_passes = 1 if resident else work.passes
        for weights_read, passes in ((True, weight_passes), (False, work.passes - weight_passes)):
            traffic = activations + (layer.params * e if weights_read else 0)
            memory = traffic / bytes_per_s
            if compute >= memory:
                compute_bound += passes * compute
            else:
                memory_bound += passes * memory
            dram += passes * traffic
    kernels = work.passes * work.kernels_per_pass
    launches = (kernels * profile.kernel_launch_us if launch == "eager"
                else profile.graph_launch_us + kernels * profile.graph_kernel_us) * 1e-6
    transfer = batch * e * work.inputs * work.passes / (profile.host_link_gb_s * 1e9)
    host_call = profile.host_call_us * 1e-6
    busy = compute_bound + memory_bound
    return _Timing(terms={"compute_bound": compute_bound, "memory_bound": memory_bound, "launch": launches,
                          "host_transfer": transfer, "host_call": host_call},
                   busy=busy, latency=busy + launches + transfer + host_call, resident=resident, dram=dram)


def batch_sweep(work: Workload, profile: GpuProfile, precision: str) -> list[int]:
    """1, 2, 4, ... up to the largest power of two whose batch fits the device memory (module docstring)."""
    capacity = profile.memory_gb * 1e9
    if work.memory_bytes(1, precision) > capacity:
        raise SimOptionError(f"{work.network} network: {work.memory_bytes(1, precision) / 1e9:.3g} GB at batch 1 in "
                             f"{precision} does not fit {profile.name}'s {profile.memory_gb:g} GB", field="memory_gb",
                             value=work.memory_bytes(1, precision), allowed=capacity)
    batches = [1]
    while work.memory_bytes(2 * batches[-1], precision) <= capacity:
        batches.append(2 * batches[-1])
    return batches
