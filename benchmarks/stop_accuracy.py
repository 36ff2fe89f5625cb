"""mnist5k test accuracy of STOP-W, STOP-WT, STOP-WTL and BPTT: same conv net, epochs, seed and loss.

    python benchmarks/stop_accuracy.py [--arch c16-p2-c32-p2] [--steps 6] [--epochs 5] [--threads 1]
Last stdout line: JSON with ``accuracy`` {method: value}, ``seconds`` {method: training seconds} and
the learned leaks/thresholds per method. One torch thread by default: on a shared few-core machine
several threads per process slow training by an order of magnitude.
"""
from __future__ import annotations

import argparse
import json

import torch

from neuromap import data
from neuromap.frontends.stop import Trainer, build_model, fit

METHODS = ("stop-w", "stop-wt", "stop-wtl", "bptt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="c16-p2-c32-p2")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = data.load("mnist5k")
    accuracy, seconds, learned = {}, {}, {}
    for method in METHODS:
        model = build_model(args.arch, ds.sample_shape, ds.num_classes, seed=args.seed)
        trainer = Trainer(model, method, lr=args.lr, lr_theta=args.lr, lr_alpha=args.lr)
        result = fit(trainer, ds.x_train, ds.y_train, ds.x_test, ds.y_test, steps=args.steps,
                     epochs=args.epochs, batch_size=args.batch, seed=args.seed)
        accuracy[method], seconds[method] = result.test_accuracy, result.seconds
        learned[method] = [{"alpha": round(layer.neuron.alpha.item(), 4),
                            "theta_mean": round(layer.neuron.theta.mean().item(), 4)} for layer in model.layers]
        print(f"{method:9s} accuracy {result.test_accuracy:.4f}  {result.seconds:6.1f} s  {learned[method]}")
    print(json.dumps({"data": "mnist5k", "arch": args.arch, "steps": args.steps, "epochs": args.epochs,
                      "batch": args.batch, "lr": args.lr, "seed": args.seed, "accuracy": accuracy,
                      "seconds": seconds, "learned": learned,
                      "stop_wtl_minus_stop_w": accuracy["stop-wtl"] - accuracy["stop-w"],
                      "bptt_minus_stop_wtl": accuracy["bptt"] - accuracy["stop-wtl"]}, sort_keys=True))


if __name__ == "__main__":
    main()
