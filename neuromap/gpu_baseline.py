"""The GPU baseline of a compiled network: the workloads a reviewer compares a chip with, and their points.

Two networks (``hwsim.gpu_model`` prices them):

* **ann**: the network as an ANN, one pass, no T. For an RMP conversion it is the source ANN (the
  converter keeps its layers and scales the weights after a population by its threshold θ); for a NIR or
  STOP network the equivalent ANN with the same layers. Each spiking population is its rate, ReLU(z)/θ
  clipped at one spike a step (an IF's rate; the rate a leak lowers is not modelled), each integrator the
  identity. A recurrent network has no one-pass ANN: it gets SNN points only (a warning
  says so).
* **snn**: the SNN run for T steps, densely (every weight every step, whatever the spikes), as
  ``hwsim.gpu.FloatSNN`` runs it.

Per layer (``LayerWork``): Affine/Linear 2·out·in FLOPs (+ out for a bias), Conv2d 2·C_out·H'·W'·C_in/g·k_h·k_w
(+ the bias), pooling out·k_h·k_w; parameters are the stored weight and bias arrays (a conv kernel once).
A spiking population costs SPIKING_FLOPS per neuron and step and keeps u and v (state 2) in the SNN, one
FLOP (the clipped ReLU) in the ANN. Flatten, Input and Output are views. Kernels per pass are counted, not
guessed: the ops the implementation dispatches (torch's dispatcher, views and allocations excluded) for a
batch of one on the CPU, each of which launches a kernel on a GPU: ``FloatSNN``'s per step (two steps less
one), the ANN's per forward pass.

Precisions: fp32 for both and the best reduced precision each can use: the ANN any of fp16, bf16 and
int8 (a post-training-quantized ANN), the SNN fp16 or bf16 (int8 cannot hold a membrane potential); of
those the device has a peak for, the one with its highest dense peak, the first listed on ties. A device
with none of them (a Kepler board: fp32 only) gets fp32 points only, with a warning.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hwsim.gpu import EnergyMeter, FloatSNN, GpuMeasurement, measure_run
from hwsim.gpu_model import LayerWork, Workload, batch_sweep, model_point
from hwsim.netdesc import QuantNetwork
from mappings.gpu import GpuProfile
from neuromap.errors import NeuromapWarning
from neuromap.ir.graph import Graph
from neuromap.ir.nodes import Affine, Conv2d, Flatten, Input, Linear, Node, Output, SumPool2d
from neuromap.ir.ops import stateless_op
from neuromap.neurons import model_for

SPIKING_FLOPS = 7    # per neuron and step: 3 multiply-adds (current decay, leak, reset) and the threshold compare
TENSOR_PRECISIONS = {"ann": ("int8", "fp16", "bf16"), "snn": ("fp16", "bf16")}
_NO_KERNEL = {"empty", "empty_like", "empty_strided", "detach", "lift_fresh", "alias"}


class _KernelCounter(TorchDispatchMode):
    """Counts the ops that reach torch's dispatcher and compute (on a GPU: one kernel launch each)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func.overloadpacket.__name__ not in _NO_KERNEL:
            self.count += 1
        return func(*args, **(kwargs or {}))


def count_kernels(run: Callable[[], Any]) -> int:
    """The kernels ``run()`` launches (module docstring)."""
    with torch.no_grad(), _KernelCounter() as counter:
        run()
    return counter.count


def snn_kernels_per_step(qnet: QuantNetwork) -> int:
    """The kernels ``FloatSNN`` launches per step: a two-step run's count less a one-step run's."""
    net = FloatSNN(qnet, "cpu")
    x = {port.name: torch.zeros(1, 2, port.size) for port in qnet.inputs}
    return count_kernels(lambda: net.run(x, 2)) - count_kernels(lambda: net.run(x, 1))


def ann_forward(graph: Graph, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> Callable[[torch.Tensor], torch.Tensor]:
    """The graph as a one-pass ANN on a batch of its single input (module docstring); returns its output."""
    ops = {name: stateless_op(node, device, dtype) for name, node in graph.nodes.items() if node.is_synapse
           or isinstance(node, Flatten)}
    thresholds = {name: torch.tensor(np.array(node.threshold), dtype=dtype, device=device)  # type: ignore[attr-defined]
                  for name, node in graph.nodes.items() if node.is_neuron and model_for(node).spiking}

    def forward(x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {}
        for name in graph.order:
            node = graph.nodes[name]
            if type(node) is Input:  # an Output is an Input subclass
                values[name] = x
                continue
            ins = [values[p] for p in graph.predecessors(name)]
            total = ins[0] if len(ins) == 1 else torch.stack(ins).sum(0)
            if name in ops:
                values[name] = ops[name](total)
            elif name in thresholds:  # its rate: ReLU(z) / θ, at most one spike a step
                values[name] = (total / thresholds[name]).clamp(0, 1)
            else:  # an integrator read-out, an Output: the value itself
                values[name] = total
        return values[graph.outputs[0]]

    return forward


def _synapse_work(name: str, node: Node) -> LayerWork:
    inputs, outputs = math.prod(node.input_shape), math.prod(node.output_shape)
    if isinstance(node, (Affine, Linear)):
        bias = node.bias.size if isinstance(node, Affine) else 0
        return LayerWork(name, 2.0 * node.weight.size + bias, node.weight.size + bias, inputs, outputs)
    if isinstance(node, Conv2d):
        per_output = node.weight.size // node.weight.shape[0]   # C_in/g · k_h · k_w
        return LayerWork(name, 2.0 * outputs * per_output + outputs, node.weight.size + node.bias.size, inputs,
                         outputs)
    assert isinstance(node, SumPool2d), f"{name}: a synaptic node kind the GPU baseline does not know"
    return LayerWork(name, float(outputs * node.kernel_size[0] * node.kernel_size[1]), 0, inputs, outputs)


def layers(graph: Graph, network: str) -> tuple[LayerWork, ...]:
    """The per-sample, per-pass work of every layer of ``graph`` as ``network`` ("ann" or "snn") runs it."""
    work = []
    for name in graph.order:
        node = graph.nodes[name]
        if node.is_synapse:
            work.append(_synapse_work(name, node))
        elif node.is_neuron:
            size = math.prod(node.output_shape)
            spiking = model_for(node).spiking
            if network == "snn":
                work.append(LayerWork(name, float(SPIKING_FLOPS * size), 0, size, size, state=2 * size))
            elif spiking:
                work.append(LayerWork(name, float(size), 0, size, size))
        elif not isinstance(node, (Input, Output, Flatten)):
            raise AssertionError(f"{name}: a node kind the GPU baseline does not know ({node.kind})")
    return tuple(work)


def _inputs(graph: Graph) -> int:
    return sum(math.prod(graph.nodes[name].output_shape) for name in graph.inputs)


def ann_workload(graph: Graph) -> Workload:
    x = torch.zeros(1, *graph.nodes[graph.inputs[0]].output_shape)
    forward = ann_forward(graph)
    return Workload("ann", layers(graph, "ann"), 1, count_kernels(lambda: forward(x)), _inputs(graph))


def snn_workload(graph: Graph, qnet: QuantNetwork, steps: int) -> Workload:
    return Workload("snn", layers(graph, "snn"), steps, snn_kernels_per_step(qnet), _inputs(graph))


def workloads(mapping, steps: int) -> list[Workload]:
    """The ANN (none for a recurrent network, with a warning) and the SNN of ``steps`` steps of a Mapping."""
    graph = mapping.graph
    found = [snn_workload(graph, mapping.netdesc(), steps)]
    if graph.recurrent_edges:
        warnings.warn(NeuromapWarning(f"the network is recurrent ({len(graph.recurrent_edges)} recurrent edges): "
                                      "it has no one-pass ANN, so the GPU baseline gives SNN points only",
                                      field="recurrent_edges"), stacklevel=2)
        return found
    return [ann_workload(graph), *found]


def best_tensor_precision(network: str, profile: GpuProfile) -> str | None:
    """The reduced precision ``network`` runs fastest in on ``profile`` (module docstring); None if the
    profile has none of them."""
    options = [p for p in TENSOR_PRECISIONS[network] if profile.has_precision(p)]
    if not options:
        return None
    return max(options, key=lambda p: (profile.peak_ops_per_s(p), -options.index(p)))


def model_points(works: Sequence[Workload], profiles: Sequence[GpuProfile], *,
                 launch: str = "cuda_graph") -> list[dict[str, Any]]:
    """Every (device, network, precision, batch) model point: fp32 and the best tensor precision, the batch
    sweep of ``hwsim.gpu_model.batch_sweep``."""
    points = []
    for profile in profiles:
        for work in works:
            best = best_tensor_precision(work.network, profile)
            if best is None:
                warnings.warn(NeuromapWarning(
                    f"{profile.name} has no peak for {', '.join(TENSOR_PRECISIONS[work.network])} ({profile.source}): "
                    f"its {work.network} points are fp32 only", field="precision", value=work.network,
                    path=profile.source), stacklevel=2)
            for precision in ("fp32",) if best is None else ("fp32", best):
                points += [model_point(work, profile, precision, b, launch=launch).to_dict()
                           for b in batch_sweep(work, profile, precision)]
    return points


@dataclass(frozen=True)
class GpuRun:
    """What a measurement needs: the device, its energy meter, a batch of inputs for each network (the SNN's
    encoded frames {port: (B, T, size)}, the ANN's float samples (B, *input shape))."""

    device: torch.device
    meter: EnergyMeter
    snn_inputs: dict[str, np.ndarray]
    ann_inputs: np.ndarray
    min_seconds: float = 2.0
    idle_seconds: float = 1.0


def _captured(run: Callable[[], Any], device: torch.device) -> tuple[Callable[[], Any], str]:
    """``run`` replayed from a CUDA graph where the device and its ops allow capture, else ``run`` itself;
    with the launch mode it got."""
    if device.type != "cuda":
        return run, "eager"
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        run()  # capture needs a warm-up on a side stream (cuBLAS workspaces, lazy inits)
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            run()
    except RuntimeError:  # an op that cannot be captured (a sparse matmul): the point says "eager"
        return run, "eager"
    return graph.replay, "cuda_graph"


def _measured_point(m: GpuMeasurement, network: str, launch: str) -> dict[str, Any]:
    assert m.energy_j_per_sample is not None and m.idle_power_w is not None, "a meter was given"
    static = m.idle_power_w * m.latency_s / m.batch
    return {"device": m.device, "network": network, "precision": "fp32", "batch": m.batch, "launch": launch,
            "energy_j": {"dynamic": m.energy_j_per_sample - static, "static": static, "total": m.energy_j_per_sample},
            "latency_s": m.latency_s, "throughput_per_s": m.batch / m.latency_s, "idle_power_w": m.idle_power_w,
            "source": "measured"}


def measured_points(mapping, steps: int, run: GpuRun) -> list[dict[str, Any]]:
    """Both networks (the ANN unless the network is recurrent) measured in fp32 on ``run.device``: NVML
    energy over a timed loop after a warm-up, idle power read before it, CUDA graphs where possible."""
    device = run.device
    points = []
    if not mapping.graph.recurrent_edges:
        forward = ann_forward(mapping.graph, device)
        x = torch.as_tensor(np.asarray(run.ann_inputs, dtype=np.float32), device=device)
        replay, launch = _captured(lambda: forward(x), device)
        m = measure_run(replay, len(x), 1, device=device, meter=run.meter, min_seconds=run.min_seconds,
                        idle_seconds=run.idle_seconds)
        points.append(_measured_point(m, "ann", launch))
    net = FloatSNN(mapping.netdesc(), device)
    frames = {k: torch.as_tensor(np.asarray(v, dtype=np.float32), device=device) for k, v in run.snn_inputs.items()}
    replay, launch = _captured(lambda: net.run(frames, steps), device)
    m = measure_run(replay, next(iter(frames.values())).shape[0], steps, device=device, meter=run.meter,
                    min_seconds=run.min_seconds, idle_seconds=run.idle_seconds)
    return [*points, _measured_point(m, "snn", launch)]


def gpu_points(mapping, steps: int, profiles: Sequence[GpuProfile], *, measure: GpuRun | None = None,
               launch: str = "cuda_graph") -> list[dict[str, Any]]:
    """The ``gpu`` list of ``neuromap estimate --json``: the model's points for every profile (source "model")
    and, with ``measure``, the measured ones (source "measured")."""
    points = model_points(workloads(mapping, steps), profiles, launch=launch)
    return points if measure is None else points + measured_points(mapping, steps, measure)
