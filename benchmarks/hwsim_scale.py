"""hwsim on deep conv nets next to a plain float32 torch forward of the same layers on the same frames.

Networks (``benchmarks/compile.py``'s builders, random He-initialised weights, IF neurons): VGG-11 and
ResNet-20 on 3x32x32, compiled for ``--target`` (default loihi2) with graded direct input (each sample's
random frame repeated for all T steps). For each batch size B, the same run times:
* ``hwsim`` — ``hwsim.sim.simulate`` on the Mapping's QuantNetwork, B samples x T steps, nothing recorded,
  with event counts (``events``) and without (``no_events``); sample-steps/s = B * T / wall time;
* ``float32`` — the float graph's layers (conv, pool, linear; a ReLU where a population sits, the residual
  sums of the DAG) in float32 torch on the same B * T frames as one batch: frames/s.
``ratio`` = hwsim sample-steps/s / float32 frames/s (goal: >= 0.5 on the CPU), in wall time and in this
process's CPU time (``ratio_cpu_time``: less disturbed on a shared machine). Each figure is the best of
``--repeats`` runs after one warm-up; the network's plan (``hwsim.sim``) is built by the warm-up, once.
``--quick``: B = 2 and 8, T = 8, one repeat.

``--samples N`` (e.g. 10000: the CIFAR-10 test set's size, at T = ``--steps``) times a whole test set of N
random 3x32x32 samples instead, on the first of ``--networks``: hwsim in ``simulate`` calls of ``--block``
samples (each sizes its own chunks to the device's memory), the float32 forward on the same N * T frames in
batches of ``--float-batch``; the plan is built by a warm-up call outside the timing. It reports both wall
times, hwsim's sample-steps/s and the ratio to the float32 forward (goal with ``--device cuda``: 10,000
samples at T = 32 in <= 60 s on one H100/H200-class GPU). Last stdout line: JSON.

Usage: python benchmarks/hwsim_scale.py [--device cpu|cuda] [--quick] [--batches 4 64] [--steps 32]
       python benchmarks/hwsim_scale.py --samples 10000 [--device cuda] [--block 1000]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compile import resnet20, vgg11  # the benchmark networks, shared with the compile benchmark

from hwsim.sim import simulate
from neuromap.ir import Graph, Input
from neuromap.ir.ops import stateless_op


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def float_forward(graph: Graph, device: torch.device):
    """The graph's synaptic layers as one float32 function of a (N, *input shape) batch: each population a
    ReLU, edges into a node summed (the float work of one time step of every sample, without state)."""
    ops = {name: (stateless_op(node, device, torch.float32) if not node.is_neuron and type(node) is not Input
                  else None) for name, node in graph.nodes.items()}

    def run(x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {}
        for name in graph.order:
            node = graph.nodes[name]
            preds = graph.predecessors(name)
            inp = x if type(node) is Input else sum(values[p] for p in preds[1:]) + values[preds[0]]
            op = ops[name]
            values[name] = torch.relu(inp) if node.is_neuron else (inp if op is None else op(inp))
        return values[graph.outputs[0]]

    return run


def timed(fn, repeats: int) -> tuple[float, float]:
    """Best wall time and best CPU time of this process (all threads) over ``repeats`` runs after one
    warm-up: a loaded machine only ever slows a run, and disturbs its CPU time less than its wall time."""
    fn()
    wall = cpu = float("inf")
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - cpu_start)
    return wall, cpu


def measure(name: str, graph: Graph, args, device: torch.device) -> dict:
    import neuromap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantization notes on random weights are not what is measured
        mapping = neuromap.compile(graph, args.target, seed=args.seed)
    qnet = mapping.netdesc()
    forward = float_forward(graph, device)
    port = next(iter(mapping.inputs))
    shape = graph.nodes[port].output_shape
    rng = np.random.default_rng(args.seed)
    out: dict = {"neurons": sum(p.size for p in qnet.populations),
                 "synapses": sum(pr.weights.nnz for pr in qnet.projections),
                 "conv_projections": sum(pr.conv is not None for pr in qnet.projections),
                 "projections": len(qnet.projections), "steps": args.steps, "batches": {}}
    for batch in args.batches:
        frames = rng.random((batch, *shape)).astype(np.float32)
        sequence = np.repeat(frames[:, None], args.steps, axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inputs = mapping.encode_inputs(sequence)
        flat = torch.from_numpy(sequence.reshape(-1, *shape)).to(device)
        with torch.no_grad():
            t_float = timed(lambda flat=flat: forward(flat), args.repeats)
        t_events = timed(lambda inputs=inputs: simulate(qnet, inputs, args.steps, record=False, device=device),
                         args.repeats)
        t_plain = timed(lambda inputs=inputs: simulate(qnet, inputs, args.steps, record=False, device=device,
                                                       events=False), args.repeats)
        frames_total = batch * args.steps
        row = {"float32_frames_per_s": round(frames_total / t_float[0], 1),
               "hwsim_sample_steps_per_s": round(frames_total / t_events[0], 1),
               "hwsim_no_events_sample_steps_per_s": round(frames_total / t_plain[0], 1),
               "ratio": round(t_float[0] / t_events[0], 3), "ratio_no_events": round(t_float[0] / t_plain[0], 3),
               "ratio_cpu_time": round(t_float[1] / t_events[1], 3),
               "ratio_cpu_time_no_events": round(t_float[1] / t_plain[1], 3)}
        log(f"[{name}] batch {batch}: {json.dumps(row)}")
        out["batches"][str(batch)] = row
    return out


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def test_set(name: str, graph: Graph, args, device: torch.device) -> dict:
    """N samples x T steps through hwsim (blocks of ``args.block`` samples) and through the float32 forward
    (batches of ``args.float_batch`` frames), each timed once over the whole set, wall clock."""
    import neuromap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mapping = neuromap.compile(graph, args.target, seed=args.seed)
    qnet = mapping.netdesc()
    forward = float_forward(graph, device)
    shape = graph.nodes[next(iter(mapping.inputs))].output_shape
    rng = np.random.default_rng(args.seed)
    frames = rng.random((args.samples, *shape)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoded = mapping.encode_inputs(frames)  # one frame per sample, held for every step
    port = next(iter(encoded))

    def block(lo: int, hi: int) -> dict[str, np.ndarray]:  # (b, T, size) views: no copy per step
        return {port: np.broadcast_to(encoded[port][lo:hi, None], (hi - lo, args.steps, *encoded[port].shape[1:]))}

    simulate(qnet, block(0, min(2, args.samples)), args.steps, record=False, device=device)  # builds the plan
    _synchronize(device)
    start = time.perf_counter()
    for lo in range(0, args.samples, args.block):
        simulate(qnet, block(lo, min(lo + args.block, args.samples)), args.steps, record=False, device=device)
    _synchronize(device)
    t_hwsim = time.perf_counter() - start
    flat = torch.from_numpy(frames).to(device)
    with torch.no_grad():
        forward(flat[:2])
        _synchronize(device)
        start = time.perf_counter()
        per_batch = max(1, args.float_batch // args.steps)  # samples whose T frames fill one float batch
        for lo in range(0, args.samples, per_batch):
            part = flat[lo:lo + per_batch]
            forward(part.repeat_interleave(args.steps, dim=0))  # each sample's frame T times, as hwsim sees it
        _synchronize(device)
        t_float = time.perf_counter() - start
    frames_total = args.samples * args.steps
    row = {"network": name, "samples": args.samples, "steps": args.steps, "block": args.block,
           "hwsim_seconds": round(t_hwsim, 2), "float32_seconds": round(t_float, 2),
           "hwsim_sample_steps_per_s": round(frames_total / t_hwsim, 1),
           "float32_frames_per_s": round(frames_total / t_float, 1), "ratio": round(t_float / t_hwsim, 3),
           "neurons": sum(p.size for p in qnet.populations)}
    log(f"[{name}] test set: {json.dumps(row)}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--target", default="loihi2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 64])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--networks", nargs="+", default=["vgg11", "resnet20"], choices=["vgg11", "resnet20"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true", help="batches 2 and 8, 8 steps, one repeat")
    parser.add_argument("--samples", type=int, default=None,
                        help="time a whole test set of this many samples (10000: CIFAR-10's) instead of --batches")
    parser.add_argument("--block", type=int, default=1000, help="--samples: samples per simulate call")
    parser.add_argument("--float-batch", type=int, default=4096, help="--samples: frames per float32 forward")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.steps, args.repeats = [2, 8], 8, 1
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    builders = {"vgg11": vgg11, "resnet20": resnet20}
    common = {"benchmark": "hwsim_scale", "device": str(device), "torch_threads": torch.get_num_threads(),
              "target": args.target}
    if args.samples is not None:
        name = args.networks[0]
        print(json.dumps({**common, "test_set": test_set(name, builders[name](args.seed), args, device)}))
        return
    results = {name: measure(name, builders[name](args.seed), args, device) for name in args.networks}
    print(json.dumps({**common, "quick": args.quick, "networks": results}))


if __name__ == "__main__":
    main()
