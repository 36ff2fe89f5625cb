"""Test accuracy of STOP-W, STOP-WT, STOP-WTL and BPTT: same network, epochs, seed, loss and optimizer.

    python benchmarks/stop_accuracy.py [--quick] [--arch vgg11] [--width 0.25] [--steps 6] [--epochs 5]
    python benchmarks/stop_accuracy.py --data cifar10:PATH [--quick]     # the CIFAR-10 recipe
Embedded data (default mnist5k): Adam, constant learning rate. ``--data cifar10:PATH`` (read by
``neuromap.data``) runs the CIFAR-10 recipe: the STOP paper names VGG-11 / ResNet-18 (arXiv 2411.11082v2
abstract) but its T, optimizer and schedule are not public, so the recipe is SLTT's and OTTT's CIFAR one
(SLTT's training script defaults: -T 6, -b 128, -epochs 300, -opt SGD, -lr 0.1, -momentum 0.9, CosALR with
T_max 300, loss_lambda 0.05; OTTT's train_cifar.py the same, docs/reference/algorithms.md §1.7): vgg11,
T = 6, batch 128, 300 epochs, SGD 0.1 with momentum 0.9, cosine schedule, lam = 0.05. Every network starts from the
same data-dependent initialisation (``SNN.calibrate_``: without it activity dies within a few layers).
``--quick``: width 1/16, T = 4, 2 epochs on 1,000 training images (embedded) or 1 epoch on 256 (CIFAR).
Last stdout line: JSON with ``accuracy`` {method: value}, ``seconds``, the learned leaks/thresholds and
``goals`` (STOP-WTL >= STOP-W; STOP-WTL within 1 point of BPTT) with whether they are met. One torch
thread by default: on a shared few-core machine several threads per process slow training down.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from neuromap import data
from neuromap.frontends.stop import Trainer, build_model, fit

METHODS = ("stop-w", "stop-wt", "stop-wtl", "bptt")
EMBEDDED = {"arch": "conv", "width": 1.0, "steps": 6, "epochs": 5, "batch": 64, "lr": 5e-3,
            "optimizer": "adam", "schedule": "constant"}
CIFAR10 = {"arch": "vgg11", "width": 1.0, "steps": 6, "epochs": 300, "batch": 128, "lr": 0.1,
           "optimizer": "sgd", "schedule": "cosine"}
QUICK = {"width": 0.0625, "steps": 4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist5k", help="mnist5k, digits, or cifar10:PATH (the CIFAR recipe)")
    for flag, kind in (("--arch", str), ("--width", float), ("--steps", int), ("--epochs", int), ("--batch", int),
                       ("--lr", float)):
        parser.add_argument(flag, type=kind, default=None, help="[the recipe's]")
    parser.add_argument("--train-samples", type=int, default=None, help="train on the first N images")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small width, few steps and images")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cifar = args.data.startswith("cifar10")
    recipe: dict[str, Any] = dict(CIFAR10 if cifar else EMBEDDED)
    if args.quick:
        recipe.update(QUICK, epochs=1 if cifar else 2)
    for key in ("arch", "width", "steps", "epochs", "batch", "lr"):
        if getattr(args, key) is not None:
            recipe[key] = getattr(args, key)
    limit = args.train_samples or ((256 if cifar else 1000) if args.quick else None)
    ds = data.load(args.data)
    x_train, y_train = ds.x_train[:limit], ds.y_train[:limit]
    accuracy, seconds, learned = {}, {}, {}
    for method in METHODS:
        model = build_model(recipe["arch"], ds.sample_shape, ds.num_classes, seed=args.seed,
                            width=recipe["width"]).to(args.device)
        model.calibrate_(torch.as_tensor(x_train[:256]).to(args.device), recipe["steps"])  # same init for all
        trainer = Trainer(model, method, lr=recipe["lr"], lr_theta=recipe["lr"], lr_alpha=recipe["lr"],
                          optimizer_name=recipe["optimizer"], amp=args.amp)
        result = fit(trainer, x_train, y_train, ds.x_test, ds.y_test, steps=recipe["steps"],
                     epochs=recipe["epochs"], batch_size=recipe["batch"], seed=args.seed,
                     schedule=recipe["schedule"])
        accuracy[method], seconds[method] = result.test_accuracy, result.seconds
        learned[method] = [{"alpha": round(layer.neuron.alpha.item(), 4),
                            "theta_mean": round(layer.neuron.theta.mean().item(), 4)} for layer in model.layers]
        print(f"{method:9s} accuracy {result.test_accuracy:.4f}  {result.seconds:6.1f} s")
    gap = accuracy["bptt"] - accuracy["stop-wtl"]
    wtl_over_w = accuracy["stop-wtl"] - accuracy["stop-w"]
    goals: dict[str, dict[str, Any]] = {
        "stop_wtl_minus_stop_w": {"goal": ">= 0", "value": wtl_over_w, "met": wtl_over_w >= 0},
        "abs_bptt_minus_stop_wtl": {"goal": "<= 0.01", "value": abs(gap), "met": abs(gap) <= 0.01}}
    print(json.dumps({"data": ds.name, "recipe": recipe, "train_samples": len(x_train), "seed": args.seed,
                      "quick": args.quick, "accuracy": accuracy, "seconds": seconds, "learned": learned,
                      "stop_wtl_minus_stop_w": wtl_over_w,
                      "bptt_minus_stop_wtl": gap, "goals": goals}, sort_keys=True))


if __name__ == "__main__":
    main()
