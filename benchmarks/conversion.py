"""RMP-SNN conversion on mnist5k: accuracy versus time steps, soft (RMP) versus hard reset, CNN and MLP.

Trains the zoo's LeNet-style CNN and an MLP (fixed seed), converts each with max-activation threshold
balancing (threshold="ann_max", alpha 1, 512 training samples for calibration, direct input), and
simulates the test split (1,000 images) with neuromap.backends.torch_sim in float32 for T up to 256.
T counts every simulated step, including the latency (the read-out first sees the input at step L + 1).

Targets (issue 3): soft reset within 0.5 point of the ANN at some T <= 64; hard reset needs at least
twice the time steps of soft reset to come within 1 point (null = not within 1 point at any T <= 256).
The last stdout line is one JSON object: the CNN's figures at the top level, the MLP's under "mlp".

    python benchmarks/conversion.py
"""
from __future__ import annotations

import json
import time

import torch

from neuromap import data as nmdata
from neuromap.frontends import rmp

STEPS = (8, 16, 32, 64, 128, 256)
CALIBRATION_SAMPLES = 512
MODELS = {"cnn": (dict(), 8), "mlp": (dict(hidden=(256,)), 15)}     # zoo kwargs, training epochs


def evaluate(name: str, kwargs: dict, epochs: int, ds: nmdata.Dataset) -> dict:
    start = time.perf_counter()
    torch.manual_seed(0)
    model = rmp.build_model(name, ds.sample_shape, ds.num_classes, **kwargs)
    history = rmp.train_ann(model, ds, epochs=epochs, seed=0)
    trained = time.perf_counter()
    ann = rmp.ann_accuracy(model, ds.x_test, ds.y_test)
    sweep = rmp.reset_sweep(model, ds.x_train[:CALIBRATION_SAMPLES], ds.x_test, ds.y_test, STEPS, reference=ann,
                            threshold="ann_max", alpha=1.0, dtype=torch.float32)
    soft, hard = sweep["steps_to_within_1pt"]["soft"], sweep["steps_to_within_1pt"]["hard"]
    within_half = [t for t, acc in sweep["snn_accuracy"]["soft"].items() if acc >= ann - 0.5]
    result = {"ann_accuracy": ann, "ann_train_loss": history["loss"][-1], **sweep,
              "soft_within_0.5pt_at": min(within_half) if within_half else None,
              "hard_over_soft_steps": hard / soft if hard and soft else None,
              "train_seconds": round(trained - start, 1), "seconds": round(time.perf_counter() - start, 1)}
    print(f"{name}: ANN {ann:.2f}%, latency {sweep['latency']}; "
          + "; ".join(f"{r}: " + ", ".join(f"{t}:{a:.1f}" for t, a in c.items())
                      for r, c in sweep["snn_accuracy"].items()), flush=True)
    return result


def main() -> None:
    start = time.perf_counter()
    ds = nmdata.load("mnist5k")
    results = {name: evaluate(name, kwargs, epochs, ds) for name, (kwargs, epochs) in MODELS.items()}
    cnn = results["cnn"]
    print(json.dumps({"dataset": ds.name, "test_samples": len(ds.x_test), "model": "cnn",
                      "threshold": "ann_max", "encoding": "direct", **cnn, "mlp": results["mlp"],
                      "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
