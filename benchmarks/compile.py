"""Compiler benchmark: an MLP 784-1000-1000-10, a VGG-11-style SNN and a ResNet-20-style SNN on 32x32x3.

The graphs are built directly with random weights (He-style scale) and IF neurons; each is compiled for
``--target`` (default loihi2) and reported with its size, cores, the lower bound on cores, the compile
time (wall clock, and CPU time of this process, which a busy shared machine disturbs less) and the
traffic x hops of the sequential and the optimised placement. Goals: VGG-11 compiles in
<= 5 s; the MLP needs <= 1.10x the lower bound; optimised <= 0.8x sequential traffic x hops for the conv
nets. Last stdout line: one JSON object.

``--sweep`` adds a scale sweep: ``scaled_convnet`` (three 3x3 conv + IF layers of 16, 32, 64 channels,
the last two of stride 2, on a 3 x s x s input: 28 s^2 neurons, ~ 9 x 28 x 27 s^2 synapses) sized to
``--sweep-neurons`` (default 10^4, 10^5, 10^6, 3 x 10^6, 10^7) for ``--sweep-target`` (default
``hala_point``: 1,152 Loihi 2 chips, ``hala_point()`` below; the 8-chip loihi2 target holds ~10^6 neurons),
each compiled in a fresh child process that reports its compile wall time and CPU time and the growth of
its peak resident memory during the compile (VmHWM, Linux). The growth exponents b of time ~ n^b and memory
~ n^b are least-squares fits in log-log over the measured sizes; ``extrapolated_to_1e9`` applies the fits
to 10^9 neurons (Hala Point's size): an extrapolation, not a measurement (this machine cannot hold it, and
with loihi2.toml's conservative 1,024 neurons a core, 1,152 chips hold 151 M neurons).
``--resnet50`` compiles ResNet-50 on 3x224x224 (9.4 M neurons) for the Hala Point-sized target (goal: <= 60 s).
``--quick``: the sweep at 10^4, 3 x 10^4 and 10^5 neurons only, without the networks.

Usage: python benchmarks/compile.py [--target loihi2] [--seed 0] [--sweep] [--resnet50] [--quick]
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import time
import warnings
from dataclasses import replace

import numpy as np

from mappings import System, Target, load_target
from neuromap.errors import NeuromapError
from neuromap.ir import IF, Affine, AvgPool2d, Conv2d, Flatten, Graph, Input, Node, Output, sequential

HALA_POINT_CHIPS = 1152


def _conv(rng, cin: int, cout: int, hw: int, k: int = 3, stride: int = 1) -> Conv2d:
    w = rng.normal(0.0, np.sqrt(2.0 / (k * k * cin)), (cout, cin, k, k))
    return Conv2d(input_shape_chw=(cin, hw, hw), weight=w, bias=np.zeros(cout), stride=(stride, stride),
                  padding=(k // 2, k // 2))


def _fc(rng, n_in: int, n_out: int) -> Affine:
    return Affine(weight=rng.normal(0.0, np.sqrt(2.0 / n_in), (n_out, n_in)), bias=np.zeros(n_out))


def _if(shape) -> IF:
    return IF(shape=shape, threshold=np.ones(()))


def mlp(seed: int = 0, sizes=(784, 1000, 1000, 10)) -> Graph:
    rng = np.random.default_rng(seed)
    layers: list[tuple[str, Node]] = [("input", Input(shape=(sizes[0],)))]
    for i, (a, b) in enumerate(itertools.pairwise(sizes), start=1):
        layers += [(f"fc{i}", _fc(rng, a, b)), (f"if{i}", _if((b,)))]
    return sequential([*layers, ("output", Output(shape=(sizes[-1],)))])


def vgg11(seed: int = 0) -> Graph:
    """VGG-11 on 3x32x32: 8 conv layers; each 2x2 average pool feeds its own IF layer (spiking pooling)."""
    rng = np.random.default_rng(seed)
    layers: list[tuple[str, Node]] = [("input", Input(shape=(3, 32, 32)))]
    c, hw, i = 3, 32, 0
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if isinstance(v, str):  # "M": pool
            layers += [(f"pool{i}", AvgPool2d(input_shape_chw=(c, hw, hw), kernel_size=(2, 2)))]
            hw //= 2
            layers += [(f"pool{i}_if", _if((c, hw, hw)))]
            continue
        i += 1
        layers += [(f"conv{i}", _conv(rng, c, v, hw)), (f"if{i}", _if((v, hw, hw)))]
        c = v
    layers += [("flatten", Flatten(input_shape_any=(c, hw, hw)))]
    n = c * hw * hw
    for j, (a, b) in enumerate(((n, 512), (512, 512), (512, 10)), start=1):
        layers += [(f"fc{j}", _fc(rng, a, b)), (f"fc{j}_if", _if((b,)))]
    return sequential([*layers, ("output", Output(shape=(10,)))])


def resnet20(seed: int = 0) -> Graph:
    """ResNet-20 on 3x32x32: a stem conv, 3 stages x 3 basic blocks (16, 32, 64 channels), identity
    shortcuts within a stage and 1x1 stride-2 convolutions between stages, global average pool, FC."""
    rng = np.random.default_rng(seed)
    nodes = {"input": Input(shape=(3, 32, 32)), "stem": _conv(rng, 3, 16, 32), "stem_if": _if((16, 32, 32))}
    edges = [("input", "stem"), ("stem", "stem_if")]
    prev, c, hw = "stem_if", 16, 32
    for stage, width in enumerate((16, 32, 64), start=1):
        for block in range(1, 4):
            name = f"s{stage}b{block}"
            stride = 2 if (width != c) else 1
            out_hw = hw // stride
            nodes[f"{name}_conv1"] = _conv(rng, c, width, hw, stride=stride)
            nodes[f"{name}_if1"] = _if((width, out_hw, out_hw))
            nodes[f"{name}_conv2"] = _conv(rng, width, width, out_hw)
            nodes[f"{name}_if2"] = _if((width, out_hw, out_hw))
            edges += [(prev, f"{name}_conv1"), (f"{name}_conv1", f"{name}_if1"), (f"{name}_if1", f"{name}_conv2"),
                      (f"{name}_conv2", f"{name}_if2")]
            if stride == 1:
                edges.append((prev, f"{name}_if2"))  # identity shortcut
            else:
                nodes[f"{name}_short"] = _conv(rng, c, width, hw, k=1, stride=2)
                edges += [(prev, f"{name}_short"), (f"{name}_short", f"{name}_if2")]
            prev, c, hw = f"{name}_if2", width, out_hw
    nodes["gap"] = AvgPool2d(input_shape_chw=(c, hw, hw), kernel_size=(hw, hw))
    nodes["flatten"] = Flatten(input_shape_any=(c, 1, 1))
    nodes["fc"] = _fc(rng, c, 10)
    nodes["fc_if"] = _if((10,))
    nodes["output"] = Output(shape=(10,))
    edges += [(prev, "gap"), ("gap", "flatten"), ("flatten", "fc"), ("fc", "fc_if"), ("fc_if", "output")]
    return Graph(nodes, edges)


def resnet50(seed: int = 0, side: int = 224) -> Graph:
    """ResNet-50 on 3x224x224 (torchvision's v1.5 layout, random weights): a 7x7 stride-2 stem, a 3x3 stride-2
    pool (an average pool, the IR's spiking pooling, feeding its own IF layer), 3 + 4 + 6 + 3 bottleneck blocks
    (1x1, 3x3 with the stage's stride, 1x1 to 4x the width; a 1x1 projection shortcut in each stage's first
    block, identity shortcuts after), global average pool (feeding an IF layer), FC 1000. About 9.4 M neurons
    at ``side`` 224 (a multiple of 32)."""
    rng = np.random.default_rng(seed)
    half, quarter = side // 2, side // 4
    nodes: dict[str, Node] = {"input": Input(shape=(3, side, side)), "stem": _conv(rng, 3, 64, side, k=7, stride=2),
                              "stem_if": _if((64, half, half)),
                              "pool": AvgPool2d(input_shape_chw=(64, half, half), kernel_size=(3, 3), stride=(2, 2),
                                                padding=(1, 1)),
                              "pool_if": _if((64, quarter, quarter))}
    edges = [("input", "stem"), ("stem", "stem_if"), ("stem_if", "pool"), ("pool", "pool_if")]
    prev, c, hw = "pool_if", 64, quarter
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        for block in range(1, blocks + 1):
            name, out = f"s{stage}b{block}", 4 * width
            stride = 2 if stage > 1 and block == 1 else 1
            out_hw = hw // stride
            nodes |= {f"{name}_conv1": _conv(rng, c, width, hw, k=1), f"{name}_if1": _if((width, hw, hw)),
                      f"{name}_conv2": _conv(rng, width, width, hw, stride=stride),
                      f"{name}_if2": _if((width, out_hw, out_hw)),
                      f"{name}_conv3": _conv(rng, width, out, out_hw, k=1), f"{name}_if3": _if((out, out_hw, out_hw))}
            edges += [(prev, f"{name}_conv1"), (f"{name}_conv1", f"{name}_if1"), (f"{name}_if1", f"{name}_conv2"),
                      (f"{name}_conv2", f"{name}_if2"), (f"{name}_if2", f"{name}_conv3"),
                      (f"{name}_conv3", f"{name}_if3")]
            if block == 1:
                nodes[f"{name}_short"] = _conv(rng, c, out, hw, k=1, stride=stride)
                edges += [(prev, f"{name}_short"), (f"{name}_short", f"{name}_if3")]
            else:
                edges.append((prev, f"{name}_if3"))  # identity shortcut
            prev, c, hw = f"{name}_if3", out, out_hw
    # the global pool feeds its own IF layer: pooled into the FC's projection, each FC neuron would read all
    # 100,352 neurons of the last block, which no core's input axons hold
    nodes |= {"gap": AvgPool2d(input_shape_chw=(c, hw, hw), kernel_size=(hw, hw)), "gap_if": _if((c, 1, 1)),
              "flatten": Flatten(input_shape_any=(c, 1, 1)), "fc": _fc(rng, c, 1000), "fc_if": _if((1000,)),
              "output": Output(shape=(1000,))}
    edges += [(prev, "gap"), ("gap", "gap_if"), ("gap_if", "flatten"), ("flatten", "fc"), ("fc", "fc_if"),
              ("fc_if", "output")]
    return Graph(nodes, edges)


def hala_point(base: str = "loihi2") -> Target:
    """``base`` (Loihi 2) scaled to a Hala Point-sized system: 1,152 chips. Intel's announcement (April 17,
    2024, "Intel Builds World's Largest Neuromorphic System") gives 1,152 Loihi 2 chips in a 6U chassis,
    140,544 cores, 1.15 billion neurons and 128 billion synapses, but no board or fabric topology; the chips sit
    here on an assumed 48 x 24 grid of the base's 2-D mesh, every core limit is the base's (1,024 neurons a core
    in loihi2.toml: 151 M neurons in all, so a 10^9-neuron network does not fit this conservative model)."""
    loaded = load_target(base)
    return replace(loaded, name=f"hala_point_{loaded.name}",
                   description=f"{HALA_POINT_CHIPS} x {loaded.name} chips on a 48 x 24 grid (benchmarks/compile.py)",
                   system=System(max_chips=HALA_POINT_CHIPS, chip_cols=48, chip_rows=24))


def _target(name: str) -> str | Target:
    """A target by name or path, or the benchmark's own "hala_point" (1,152 Loihi 2 chips)."""
    return hala_point() if name == "hala_point" else name


def scaled_convnet(neurons: int, seed: int = 0) -> Graph:
    """Three conv + IF layers (16, 32, 64 channels; strides 1, 2, 2) on 3 x s x s with 28 s^2 ~ ``neurons``."""
    rng = np.random.default_rng(seed)
    side = max(4, 4 * round(math.sqrt(neurons / 28) / 4))  # a multiple of 4: both strides divide it
    layers: list[tuple[str, Node]] = [("input", Input(shape=(3, side, side)))]
    c, hw = 3, side
    for i, (width, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
        layers += [(f"conv{i}", _conv(rng, c, width, hw, stride=stride)), (f"if{i}", _if((width, hw // stride,
                                                                                          hw // stride)))]
        c, hw = width, hw // stride
    return sequential([*layers, ("output", Output(shape=(c, hw, hw)))])


def _status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in KiB (Linux). Not ru_maxrss: Linux keeps
    that across exec, so a spawned child would report its parent's peak."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:"))


def _compile_child(neurons: int, target: str, seed: int, queue) -> None:
    """In a fresh process: compile one scaled network, report time and peak-memory growth (KiB -> MiB)."""
    import neuromap

    neuromap.compile(mlp(seed, (4, 4, 2)), _target(target))  # imports and first calls outside the measurement
    graph = scaled_convnet(neurons, seed)
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:  # "5": the peak (VmHWM) restarts from the current RSS
        clear.write("5")
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mapping = neuromap.compile(graph, _target(target), seed=seed)
    except NeuromapError as exc:  # e.g. more cores than the target has: reported, the sweep stops
        queue.put({"neurons_asked": neurons, "error": str(exc)})
        return
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = _status_kib("VmHWM")
    r = mapping.resources
    queue.put({"neurons": r["neurons"], "synapses": r["synapses"], "cores": r["cores"], "chips": r["chips"],
               "seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3),
               "peak_rss_mib": round(peak / 1024, 1),
               "rss_growth_mib": round((peak - before) / 1024, 1)})


def _exponent(xs: list[float], ys: list[float]) -> float:
    """b of y = a x^b, least squares in log-log."""
    lx, ly = np.log(xs), np.log(np.maximum(ys, 1e-9))
    return float(np.polyfit(lx, ly, 1)[0])


def sweep(sizes: list[int], target: str, seed: int) -> dict:
    ctx = multiprocessing.get_context("spawn")  # a forked child of a process that imported torch can deadlock
    rows = []
    for n in sizes:
        queue = ctx.Queue()
        child = ctx.Process(target=_compile_child, args=(n, target, seed, queue))
        child.start()
        row = queue.get()
        child.join()
        print(f"sweep {n:.0e}: {json.dumps(row)}", flush=True)
        if "error" in row:
            failed = row
            break
        rows.append(row)
    else:
        failed = None
    measured = [r["neurons"] for r in rows]
    fits = {"time": _exponent(measured, [r["seconds"] for r in rows]),
            "cpu_time": _exponent(measured, [r["cpu_seconds"] for r in rows]),
            "memory": _exponent(measured, [max(r["rss_growth_mib"], 0.1) for r in rows])}

    def at(key: str, exponent: float, target_n: float) -> float:
        return rows[-1][key] * (target_n / measured[-1]) ** exponent

    return {"network": "scaled_convnet", "target": target, "sizes": rows, "not_compiled": failed,
            "growth_exponent": {k: round(v, 3) for k, v in fits.items()},
            "extrapolated_to_1e9": {"note": "extrapolation of the fitted power laws from the largest measured size, "
                                            "not a measurement",
                                    "seconds": round(at("seconds", fits["time"], 1e9), 1),
                                    "cpu_seconds": round(at("cpu_seconds", fits["cpu_time"], 1e9), 1),
                                    "rss_growth_gib": round(at("rss_growth_mib", fits["memory"], 1e9) / 1024, 1)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="loihi2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", action="store_true", help="also the compile scale sweep (see the docstring)")
    parser.add_argument("--sweep-neurons", type=float, nargs="+", default=[1e4, 1e5, 1e6, 3e6, 1e7])
    parser.add_argument("--sweep-target", default="hala_point",
                        help="target of the sweep: a name, a TOML path or hala_point (1,152 Loihi 2 chips)")
    parser.add_argument("--resnet50", action="store_true",
                        help="also compile ResNet-50 on 3x224x224 for the Hala Point-sized target")
    parser.add_argument("--quick", action="store_true", help="only the sweep, at 10^4, 3 x 10^4 and 10^5 neurons")
    args = parser.parse_args()
    results: dict = {}
    if not args.quick:
        results["networks"] = networks(args)
    if args.resnet50 and not args.quick:
        results["resnet50_224"] = compile_resnet50(args.seed)
    if args.sweep or args.quick:
        sizes = [10_000, 30_000, 100_000] if args.quick else [int(n) for n in args.sweep_neurons]
        results["sweep"] = sweep(sizes, args.sweep_target, args.seed)
    print(json.dumps({"benchmark": "compile", "target": args.target, "seed": args.seed, **results}))


def compile_resnet50(seed: int) -> dict:
    import neuromap

    target = hala_point()
    neuromap.compile(mlp(seed, (4, 4, 2)), target)  # imports and first calls outside the timing
    graph = resnet50(seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mapping = neuromap.compile(graph, target, seed=seed)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    r = mapping.resources
    row = {"target": target.name, "neurons": r["neurons"], "synapses": r["synapses"], "cores": r["cores"],
           "chips": r["chips"], "lower_bound_cores": r["lower_bound_cores"], "seconds": round(seconds, 3),
           "cpu_seconds": round(cpu_seconds, 3), "traffic_ratio": round(r["traffic_hops"] / max(
               r["traffic_hops_sequential"], 1e-12), 4)}
    print(f"resnet50_224: {json.dumps(row)}", flush=True)
    return row


def networks(args) -> dict:
    import neuromap
    from neuromap.mapping import compile as compile_graph

    # warm up imports (torch, networkx) outside the timing
    compile_graph(mlp(args.seed, (4, 4, 2)), _target(args.target))
    results = {}
    for name, build in (("mlp_784_1000_1000_10", mlp), ("vgg11_cifar", vgg11), ("resnet20_cifar", resnet20)):
        graph = build(args.seed)
        start, cpu_start = time.perf_counter(), time.process_time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mapping = neuromap.compile(graph, _target(args.target), seed=args.seed)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        r = mapping.resources
        results[name] = {"neurons": r["neurons"], "synapses": r["synapses"], "cores": r["cores"], "chips": r["chips"],
                         "lower_bound_cores": r["lower_bound_cores"], "binding_constraint": r["binding_constraint"],
                         "seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3),
                         "traffic_hops_sequential": r["traffic_hops_sequential"],
                         "traffic_hops_optimised": r["traffic_hops"],
                         "traffic_ratio": round(r["traffic_hops"] / max(r["traffic_hops_sequential"], 1e-12), 4),
                         "cores_over_lower_bound": round(r["cores"] / r["lower_bound_cores"], 4),
                         "quantization_warnings": len(caught)}
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    return results


if __name__ == "__main__":
    main()
