"""The GPU reference for a network: modelled from its size (``estimate_gpu``), or measured (``measure_gpu``).

**Modelled.** A GPU runs the SNN densely: every step it multiplies every synapse, whatever the spikes,
and updates every neuron. Per sample and step, with S synapses (the projections' nonzero weights: for
a convolution, exactly its MACs), N neurons and I input values:

    MACs  = S + 3N            (3 MACs per neuron: current decay, voltage decay, reset; + 1 compare, an add)
    FLOPs = 2·MACs + N
    DRAM words (32-bit) per run of a batch of B samples:
        resident  (weights + the batch's u, v, s fit the L2 cache):  S + B·T·I
                   (weights read once, inputs x[t] every step, the state stays on chip)
        streaming (they do not):                                  T·(S + B·(I + 6N))
                   (weights re-read every step; u, v, s read and written every step)
    E per sample = T·(S + 3N)·E_MAC + T·N·E_add + DRAM words / B · E_DRAM        (Horowitz 45 nm, fp32)
    latency of the batch = T · (max(FLOPs·B / peak, DRAM bytes per step / bandwidth)
                                + kernels · launch overhead),   kernels = projections + populations
    power bound per sample = TDP · latency / B

The energy constants and the profile (peak fp32 throughput, bandwidth, L2, TDP, launch overhead) come
from ``mappings/gpus/*.toml``. The energy is the usual SNN-paper arithmetic + memory model, not the
board's energy; the TDP bound brackets it from above.

**Measured.** ``FloatSNN`` runs the same network in float32 torch, one step at a time, as a GPU user would
(dense or sparse matmuls, the fixed-point step without its integer truncation, wrap and clipping).
``measure_gpu`` times it on a device and, given an energy meter (``NvmlEnergyMeter``: the board's
total-energy counter, read through NVML), reads the energy used over the timed loop and the idle power
before it. Inputs are placed on the device before timing: host transfers are not counted.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from hwsim.errors import HwsimError, SimOptionError
from hwsim.models import FloatForm, model_named
from hwsim.netdesc import Population, QuantNetwork
from mappings.gpu import GpuProfile

NEURON_MACS = 3         # (1 - i_decay)·u + a, (1 - v_decay)·v + u (+ bias), v - θ·s
NEURON_ADDS = 1         # the threshold compare
STATE_WORDS = 3         # u, v, s per neuron
WORD_BYTES = 4          # fp32
DENSE_MAX_ELEMENTS = 1 << 24  # a projection's weights run as a dense matmul up to this size, as CSR beyond


class GpuMeasureError(HwsimError, RuntimeError):
    """The GPU measurement cannot run (no CUDA device, no NVML, no energy counter); says why."""


@dataclass(frozen=True)
class NetworkSize:
    """Per-sample sizes of a network that the GPU model uses."""

    synapses: int
    neurons: int
    inputs: int
    kernels_per_step: int

    @classmethod
    def of(cls, qnet: QuantNetwork) -> NetworkSize:
        return cls(synapses=int(sum(pr.weights.nnz for pr in qnet.projections)),
                   neurons=int(sum(p.size for p in qnet.populations)),
                   inputs=int(sum(i.size for i in qnet.inputs)),
                   kernels_per_step=len(qnet.projections) + len(qnet.populations))


@dataclass(frozen=True)
class GpuEstimate:
    """The modelled GPU cost of one inference (module docstring)."""

    gpu: str
    steps: int
    batch: int
    macs_per_sample: float
    flops_per_sample: float
    dram_words_per_sample: float
    resident: bool
    energy_terms_j: dict[str, float]
    latency_s: float
    latency_terms_s: dict[str, float]
    tdp_energy_bound_j: float

    @property
    def energy_j(self) -> float:
        return float(sum(self.energy_terms_j.values()))

    def to_dict(self) -> dict[str, Any]:
        return {"gpu": self.gpu, "steps": self.steps, "batch": self.batch, "macs_per_sample": self.macs_per_sample,
                "flops_per_sample": self.flops_per_sample, "dram_words_per_sample": self.dram_words_per_sample,
                "cache_resident": self.resident, "energy_uj_per_sample": self.energy_j * 1e6,
                "energy_terms_uj": {k: v * 1e6 for k, v in self.energy_terms_j.items()},
                "latency_ms_per_sample": self.latency_s * 1e3,
                "latency_terms_ms": {k: v * 1e3 for k, v in self.latency_terms_s.items()},
                "tdp_energy_bound_uj_per_sample": self.tdp_energy_bound_j * 1e6}


def estimate_gpu(size: NetworkSize | QuantNetwork, steps: int, profile: GpuProfile, *, batch: int = 1) -> GpuEstimate:
    """The modelled cost of ``steps`` steps of the network on ``profile``, running ``batch`` samples at
    once (1: a single inference, the latency a chip is compared with). Formula: the module docstring."""
    if steps < 1 or batch < 1:
        raise SimOptionError(f"steps and batch must be at least 1, got steps={steps}, batch={batch}",
                             field="steps" if steps < 1 else "batch", value=steps if steps < 1 else batch,
                             allowed=">= 1")
    n = size if isinstance(size, NetworkSize) else NetworkSize.of(size)
    s, neurons, inputs = n.synapses, n.neurons, n.inputs
    macs = steps * (s + NEURON_MACS * neurons)
    adds = steps * NEURON_ADDS * neurons
    working_set = WORD_BYTES * (s + batch * STATE_WORDS * neurons)
    resident = working_set <= profile.l2_cache_mb * 1e6
    if resident:
        words_per_run = s + batch * steps * inputs
    else:
        words_per_run = steps * (s + batch * (inputs + 2 * STATE_WORDS * neurons))
    words = words_per_run / batch
    energy_pj = {"macs": macs * profile.fp32_mac_pj, "adds": adds * profile.fp32_add_pj,
                 "dram": words * profile.dram_word_pj}
    flops_per_step = batch * (2 * (s + NEURON_MACS * neurons) + NEURON_ADDS * neurons)
    compute = flops_per_step / (profile.peak_fp32_tflops * 1e12)
    memory = words_per_run * WORD_BYTES / steps / (profile.memory_bandwidth_gb_s * 1e9)
    launch = n.kernels_per_step * profile.kernel_launch_us * 1e-6
    terms = {"compute": steps * compute if compute >= memory else 0.0,
             "memory": steps * memory if memory > compute else 0.0,
             "kernel_launch": steps * launch}
    latency = float(sum(terms.values()))
    return GpuEstimate(gpu=profile.name, steps=steps, batch=batch, macs_per_sample=float(macs),
                       flops_per_sample=float(2 * macs + adds), dram_words_per_sample=float(words), resident=resident,
                       energy_terms_j={k: v * 1e-12 for k, v in energy_pj.items()}, latency_s=latency,
                       latency_terms_s=terms, tdp_energy_bound_j=profile.tdp_w * latency / batch)


# ---------------------------------------------------------------------------------------------- float network
class FloatSNN:
    """The network in float32 torch: weights w·2^weight_exp, the fixed-point step of docs/architecture.md
    in floating point (no truncation toward zero, no 24-bit wrap or clipping), the neuron update being
    each population's model's float step (``hwsim.models``: ``FixedModel.float_form``). With no current memory
    (du = 4095), no leak (dv = 0) and magnitudes below 2^24 it equals hwsim exactly."""

    def __init__(self, qnet: QuantNetwork, device: torch.device | str) -> None:
        self.qnet = qnet
        self.device = torch.device(device)
        dev = self.device
        self.weights = {}
        for pr in qnet.projections:
            w = pr.weights.astype(np.float32) * np.float32(2.0 ** pr.weight_exp)
            if math.prod(w.shape) <= DENSE_MAX_ELEMENTS:
                self.weights[pr.name] = torch.as_tensor(w.toarray(), device=dev)
            else:
                w = w.tocsr()
                self.weights[pr.name] = torch.sparse_csr_tensor(
                    torch.as_tensor(w.indptr, dtype=torch.int64), torch.as_tensor(w.indices, dtype=torch.int64),
                    torch.as_tensor(w.data), size=w.shape, device=dev)

        self.activation_scale = float(1 << qnet.formats.activation_shift)
        self.forms = {p.name: _float_form(p) for p in qnet.populations}
        self.params = {p.name: self.forms[p.name].params(p, qnet.formats, dev) for p in qnet.populations}

    @torch.no_grad()
    def run(self, inputs: Mapping[str, torch.Tensor], steps: int) -> dict[str, torch.Tensor]:
        """Scores of the read-out populations for ``inputs`` ({port: (B, T >= steps, size) float tensor on the
        device}): spike counts, or the final v of an integrator. Every population's output at step t feeds
        its targets at step t + 1 (the one-step delay), so a recurrent projection (onto its own population
        or back to an earlier one, ``QuantNetwork.components``) reads the previous step's spikes as any other.
        An always-on port (a bias axon) takes no data: it spikes every step."""
        qnet = self.qnet
        batch = next(iter(inputs.values())).shape[0]
        dev = self.device
        inputs = {**inputs, **{i.name: torch.ones(batch, steps, i.size, device=dev)
                               for i in qnet.inputs if i.always_on}}
        state = {p.name: self.forms[p.name].state(p, batch, dev) for p in qnet.populations}
        counts = {name: torch.zeros(batch, qnet.population(name).size, device=dev) for name in qnet.outputs}
        previous = {name: torch.zeros(batch, x.shape[2], device=dev) for name, x in inputs.items()}
        previous.update({p.name: state[p.name].s for p in qnet.populations})
        for t in range(steps):
            outputs = {name: x[:, t] for name, x in inputs.items()}
            for p in qnet.populations:
                a = torch.zeros(batch, p.size, device=dev)
                for proj in qnet.incoming(p.name):
                    w = self.weights[proj.name]
                    a = a + (w @ previous[proj.src].T).T
                state[p.name], _ = self.forms[p.name].step(self.params[p.name], state[p.name],
                                                           a * self.activation_scale)
                s = state[p.name].s
                outputs[p.name] = s
                if p.name in counts:
                    counts[p.name] = counts[p.name] + s
            previous = outputs
        return {name: (state[name].v if qnet.population(name).kind == "integrator" else counts[name])
                for name in qnet.outputs}


def _float_form(p: Population) -> FloatForm:
    form = model_named(p.model).float_form
    if form is None:
        raise GpuMeasureError(f"population {p.name!r}: neuron model {p.model!r} has no float form to run on the GPU",
                              node=p.name, field="model", value=p.model)
    return form


# ---------------------------------------------------------------------------------------------- measurement
class EnergyMeter(Protocol):
    def energy_mj(self) -> float:
        """The device's cumulative energy counter, millijoules."""


class NvmlEnergyMeter:
    """The total-energy counter of the NVIDIA GPU behind a torch CUDA device (nvmlDeviceGetTotalEnergyConsumption,
    Volta and newer), found by its UUID so that CUDA_VISIBLE_DEVICES cannot point it at another board."""

    def __init__(self, device: torch.device | str) -> None:
        device = torch.device(device)
        if device.type != "cuda" or not torch.cuda.is_available():
            raise GpuMeasureError(f"NVML reads NVIDIA GPUs; device {device} is not a visible CUDA device")
        try:
            import pynvml
        except ImportError:
            raise GpuMeasureError("measuring GPU energy needs the NVML bindings: pip install nvidia-ml-py "
                                  "(or neuromap[gpu])") from None
        self._nvml = pynvml
        try:
            pynvml.nvmlInit()
            uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
            if uuid is None:
                raise GpuMeasureError("this torch build does not report CUDA device UUIDs, so the NVML device "
                                      f"behind {device} cannot be identified")
            uuid = str(uuid).lower().removeprefix("gpu-")
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                found = pynvml.nvmlDeviceGetUUID(handle)
                found = (found.decode() if isinstance(found, bytes) else found).lower().removeprefix("gpu-")
                if found == uuid:
                    self._handle = handle
                    break
            else:
                raise GpuMeasureError(f"NVML lists no GPU with the UUID of {device} ({uuid})")
            name = pynvml.nvmlDeviceGetName(self._handle)
            self.name = name.decode() if isinstance(name, bytes) else name
            self.energy_mj()  # fails here, not mid-measurement, where the board has no energy counter
        except pynvml.NVMLError as exc:
            raise GpuMeasureError(f"NVML: {exc}") from None

    def energy_mj(self) -> float:
        return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))


@dataclass(frozen=True)
class GpuMeasurement:
    device: str
    batch: int
    steps: int
    repeats: int
    seconds: float
    latency_s: float                  # one run of the batch: the latency of each of its inferences
    energy_j_per_sample: float | None  # board energy over the timed loop, per sample
    idle_power_w: float | None
    energy_above_idle_j_per_sample: float | None

    def to_dict(self) -> dict[str, Any]:
        def uj(x: float | None) -> float | None:
            return None if x is None else x * 1e6
        return {"device": self.device, "batch": self.batch, "steps": self.steps, "repeats": self.repeats,
                "seconds": self.seconds, "latency_ms_per_sample": self.latency_s * 1e3,
                "time_ms_per_sample": self.latency_s / self.batch * 1e3,
                "energy_uj_per_sample": uj(self.energy_j_per_sample), "idle_power_w": self.idle_power_w,
                "energy_above_idle_uj_per_sample": uj(self.energy_above_idle_j_per_sample)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_gpu(qnet: QuantNetwork, inputs: Mapping[str, np.ndarray], steps: int, *, device: torch.device | str,
                meter: EnergyMeter | None, min_seconds: float = 2.0, min_repeats: int = 3,
                idle_seconds: float = 1.0) -> tuple[GpuMeasurement, dict[str, np.ndarray]]:
    """Time ``FloatSNN`` on ``inputs`` ({port: (B, T, size)}) for at least ``min_seconds`` and ``min_repeats``
    runs, after one warm-up run; with a ``meter``, read its counter over an idle pause of ``idle_seconds``
    and over the timed loop. ``meter=None`` measures time only (energies None). Returns the measurement
    and the read-out scores of the warm-up run (B, n) per output, to check against hwsim's."""
    device = torch.device(device)
    net = FloatSNN(qnet, device)
    data = {name: torch.as_tensor(np.asarray(x, dtype=np.float32), device=device) for name, x in inputs.items()}
    batch = next(iter(data.values())).shape[0]
    scores = {k: v.cpu().numpy() for k, v in net.run(data, steps).items()}
    _sync(device)
    idle_w = e0 = 0.0  # read from the meter; without one, energies and idle power are reported as None
    if meter is not None:
        e_idle, t_idle = meter.energy_mj(), time.perf_counter()
        time.sleep(idle_seconds)
        idle_w = (meter.energy_mj() - e_idle) * 1e-3 / (time.perf_counter() - t_idle)
        e0 = meter.energy_mj()
    t0 = time.perf_counter()
    repeats = 0
    while repeats < min_repeats or time.perf_counter() - t0 < min_seconds:
        net.run(data, steps)
        _sync(device)
        repeats += 1
    seconds = time.perf_counter() - t0
    energy = above = None
    if meter is not None:
        total_j = (meter.energy_mj() - e0) * 1e-3
        energy = total_j / (repeats * batch)
        above = (total_j - idle_w * seconds) / (repeats * batch)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    return GpuMeasurement(device=name, batch=batch, steps=steps, repeats=repeats, seconds=seconds,
                          latency_s=seconds / repeats, energy_j_per_sample=energy,
                          idle_power_w=idle_w if meter is not None else None,
                          energy_above_idle_j_per_sample=above), scores
