"""The GPU side of a network that hwsim does not model: the float network a GPU user runs, and its measurement.

The GPU baseline's model (roofline time, board energy) is ``hwsim.gpu_model``; this module runs things.

``FloatSNN`` runs the network in float32 torch, one step at a time, as a GPU user would (dense or sparse
matmuls, the fixed-point step without its integer truncation, wrap and clipping). ``measure_run`` times any
batch run (the SNN, an ANN, a captured CUDA graph) on a device and, given an energy meter
(``NvmlEnergyMeter``: the board's total-energy counter, read through NVML), reads the energy used over the
timed loop and the idle power before it; ``measure_gpu`` does it for ``FloatSNN``. Inputs are placed on
the device before timing: host transfers are not counted.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from hwsim.errors import HwsimError
from hwsim.models import FloatForm, model_named
from hwsim.netdesc import Population, QuantNetwork

DENSE_MAX_ELEMENTS = 1 << 24  # a projection's weights run as a dense matmul up to this size, as CSR beyond


class GpuMeasureError(HwsimError, RuntimeError):
    """The GPU measurement cannot run (no CUDA device, no NVML, no energy counter); says why."""


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
                # scipy's CSR is valid by construction (so no invariant checks), and torch's one-time notice
                # that sparse CSR is "in beta" says nothing about this network: neither reaches the user
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
                    self.weights[pr.name] = torch.sparse_csr_tensor(
                        torch.as_tensor(w.indptr, dtype=torch.int64), torch.as_tensor(w.indices, dtype=torch.int64),
                        torch.as_tensor(w.data), size=w.shape, device=dev, check_invariants=False)

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


def measure_run(run: Callable[[], Any], batch: int, steps: int, *, device: torch.device | str,
                meter: EnergyMeter | None, min_seconds: float = 2.0, min_repeats: int = 3,
                idle_seconds: float = 1.0) -> GpuMeasurement:
    """Time ``run`` (one batch of ``batch`` inferences) for at least ``min_seconds`` and ``min_repeats`` runs,
    after one warm-up run; with a ``meter``, read its counter over an idle pause of ``idle_seconds`` and over
    the timed loop. ``meter=None`` measures time only (energies None)."""
    device = torch.device(device)
    run()
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
        run()
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
                          energy_above_idle_j_per_sample=above)


def measure_gpu(qnet: QuantNetwork, inputs: Mapping[str, np.ndarray], steps: int, *, device: torch.device | str,
                meter: EnergyMeter | None, min_seconds: float = 2.0, min_repeats: int = 3,
                idle_seconds: float = 1.0) -> tuple[GpuMeasurement, dict[str, np.ndarray]]:
    """``measure_run`` of ``FloatSNN`` on ``inputs`` ({port: (B, T, size)}). Returns the measurement and the
    read-out scores (B, n) per output, to check against hwsim's."""
    device = torch.device(device)
    net = FloatSNN(qnet, device)
    data = {name: torch.as_tensor(np.asarray(x, dtype=np.float32), device=device) for name, x in inputs.items()}
    batch = next(iter(data.values())).shape[0]
    scores = {k: v.cpu().numpy() for k, v in net.run(data, steps).items()}
    run = measure_run(lambda: net.run(data, steps), batch, steps, device=device, meter=meter,
                      min_seconds=min_seconds, min_repeats=min_repeats, idle_seconds=idle_seconds)
    return run, scores
