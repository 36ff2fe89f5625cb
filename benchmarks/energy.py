"""Energy benchmark: an MLP 784-512-10 on mnist5k, per inference on the chip against a GPU.

The ReLU MLP is trained with Adam (``rmp.train_ann``), converted to soft-reset IF neurons (RMP,
ann_max thresholds), compiled for ``--target`` and run through hwsim on the held-out images (graded
direct input, ``--steps`` steps) to count events; ``hwsim.estimate`` turns the counts into the chip's
energy and latency per inference. The GPU side is modelled for every shipped GPU profile
(``neuromap.gpu_baseline``: the ANN and the SNN, fp32 and the best tensor-core precision) at batch 1
(single-inference latency) and at ``--batch`` (throughput, a power of two), and measured on
the CUDA device (float32 torch run, NVML energy counter) when torch sees one; ``--no-measure`` skips it.
``--quick``: one epoch, 50 held-out images, 16 steps, batch 64 (a CI-sized run of every stage; its figures are
those of a barely trained network).

Usage: python benchmarks/energy.py [--target loihi2] [--steps 32] [--limit 1000] [--gpu h100] [--batch 256] [--quick]
Last stdout line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from hwsim.gpu import NvmlEnergyMeter, measure_gpu
from mappings.gpu import available_gpus, load_gpu
from neuromap import data
from neuromap.api import encoded_inputs, estimate
from neuromap.cli.estimate import format_table
from neuromap.frontends import rmp
from neuromap.gpu_baseline import gpu_points
from neuromap.mapping import compile as compile_graph


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="loihi2")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--limit", type=int, default=1000, help="held-out images run through hwsim")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--gpu", default="h100", help="the GPU profile of the headline ratio")
    ap.add_argument("--batch", type=int, default=256, help="GPU batch for the throughput figures")
    ap.add_argument("--no-measure", action="store_true", help="skip the CUDA measurement even with a GPU")
    ap.add_argument("--quick", action="store_true", help="1 epoch, 50 images, 16 steps, batch 64")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.limit, args.steps, args.batch = 1, 50, 16, 64

    t0 = time.perf_counter()
    ds = data.load("mnist5k").flat()
    model = rmp.build_model("mlp", (784,), 10, hidden=(512,))
    trained = rmp.train_ann(model, ds, epochs=args.epochs)
    graph = rmp.convert(model.eval(), ds.x_train[:500], threshold="ann_max")
    mapping = compile_graph(graph, args.target)
    t_build = time.perf_counter() - t0

    measure = torch.cuda.is_available() and not args.no_measure
    t0 = time.perf_counter()
    result = estimate(mapping, "mnist5k", steps=args.steps, limit=args.limit, gpu=args.gpu,
                      measure_gpu=measure).to_dict()
    t_estimate = time.perf_counter() - t0
    print(format_table([result]))

    qnet = mapping.netdesc()
    chip_j = result["chip"]["energy_j"]["total"]
    chip_s = result["chip"]["latency_s"]
    models = {f"{p['device']}_{p['network']}_{p['precision']}_b{p['batch']}": {
        "energy_uj_per_sample": p["energy_j"]["total"] * 1e6, "latency_ms_per_sample": p["latency_s"] * 1e3,
        "energy_ratio_gpu_over_chip": p["energy_j"]["total"] / chip_j,
        "latency_ratio_gpu_over_chip": p["latency_s"] / chip_s}
        for p in gpu_points(mapping, args.steps, [load_gpu(name) for name in available_gpus()])
        if p["batch"] in (1, args.batch)}
    throughput_measured = None
    if measure:
        x = data.load("mnist5k").x_test[:args.batch]
        inputs = encoded_inputs(mapping, x, args.steps, seed=0)
        device = torch.device("cuda")
        run, _ = measure_gpu(qnet, inputs, args.steps, device=device, meter=NvmlEnergyMeter(device))
        throughput_measured = run.to_dict()
        assert run.energy_j_per_sample is not None and run.energy_above_idle_j_per_sample is not None, \
            "measure_gpu reports energies whenever it has a meter"
        print(f"GPU measured at batch {run.batch}: {run.energy_j_per_sample * 1e6:.3f} uJ per inference "
              f"({run.energy_above_idle_j_per_sample * 1e6:.3f} above idle), {run.latency_s * 1e3:.3f} ms per batch")
    print(json.dumps({
        "benchmark": "energy", "quick": args.quick, "epochs": args.epochs, "network": "mlp 784-512-10",
        "data": "mnist5k", "target": result["target"],
        "constant_set": result["chip"]["constant_set"], "basis": result["chip"]["basis"], "steps": args.steps,
        "samples": result["samples"], "ann_test_accuracy": trained["test_accuracy"],
        "hwsim_accuracy": result["accuracy"], "cores": mapping.resources["cores"],
        "chip": result["chip"], "chips_by_set": result["chips_by_set"], "gpu": result["gpu"],
        "ratios": result["ratios"],
        "gpu_models": models, "gpu_measured": result["gpu_measured"],
        "gpu_measured_batch": throughput_measured,
        "events_per_sample": result["events_per_sample"],
        "seconds_build": round(t_build, 2), "seconds_estimate": round(t_estimate, 2),
    }, sort_keys=True))


if __name__ == "__main__":
    main()
