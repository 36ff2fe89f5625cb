"""Report benchmark: how long ``neuromap report`` takes on the digits MLP, and how big its page is.

The MLP (64-100-10 ReLU, ``rmp.build_model("mlp")``) is trained on digits with Adam and converted to soft-reset
IF neurons (RMP, ann_max thresholds), compiled for loihi2 and reported on ``--limit`` test images over
``--steps`` steps (float SNN, hwsim, the estimate against the h100 profile), with a sweep over T. The goal:
a few seconds for ``--quick`` (50 images, 16 steps) on one free CPU core (``report_cpu_s``: the CPU time
the process used, which a busy machine does not inflate as it does ``report_s``).

Usage: python benchmarks/report.py [--quick] [--limit 200] [--steps 32] [--out out/bench_report.html]
Last stdout line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from neuromap import data
from neuromap.frontends import rmp
from neuromap.mapping import compile as compile_graph
from neuromap.reporting import report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50 images, 16 steps, 2 training epochs")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--out", default="out/bench_report.html")
    args = ap.parse_args()
    limit, steps, epochs = (50, 16, 2) if args.quick else (args.limit, args.steps, args.epochs)

    t0 = time.perf_counter()
    ds = data.load("digits")
    torch.manual_seed(0)   # as neuromap convert --seed 0: the same net every run
    model = rmp.build_model("mlp", ds.sample_shape, ds.num_classes)
    rmp.train_ann(model, ds, epochs=epochs, seed=0)
    mapping = compile_graph(rmp.convert(model.eval(), ds.x_train[:256]), "loihi2")
    t_build = time.perf_counter() - t0

    t0, cpu0 = time.perf_counter(), time.process_time()
    result = report(mapping, args.out, limit=limit, steps=steps, sweep=(steps // 4, steps // 2, steps))
    t_report, cpu_report = time.perf_counter() - t0, time.process_time() - cpu0
    print(json.dumps({"benchmark": "report", "limit": limit, "steps": steps, "build_s": round(t_build, 2),
                      "report_s": round(t_report, 2),
                      "report_cpu_s": round(cpu_report, 2), "figures": len(result.figures),
                      "page_bytes": result.page.stat().st_size, "hwsim_accuracy": result.numbers["accuracy"]["hwsim"],
                      "page": str(result.page)}))


if __name__ == "__main__":
    main()
