"""Peak training memory of BPTT, STOP-W and STOP-WTL on a VGG-11-class and a ResNet-18-class STOP network,
for T in 4, 8, 16, 32, against the STOP paper's claims (BPTT / STOP-W >= 4x and BPTT / STOP-WTL >= 1.2x at
T = 16; STOP memory flat in T: T32 / T4 <= 1.2).

What is measured, for one mini-batch's gradient computation (the optimizer step is the same for all):
* CUDA (``--device cuda``): ``torch.cuda.max_memory_allocated`` during the computation minus what was
  allocated before it (parameters, optimizer state, the batch), after one warm-up batch.
* CPU: the bytes of every tensor autograd holds for backward (``torch.autograd.graph.saved_tensors_hooks``,
  counted once per storage while the graph holds it) plus the trainer's own state and traces, sampled at
  the end of each step's forward; parameters (and the equally sized gradients) are excluded for all methods.
Static images with direct encoding, so the input itself does not grow with T: mnist5k images, or with
``--shape 3x32x32`` generated CIFAR-shaped ones.

    python benchmarks/stop_memory.py [--quick] [--device cuda] [--batch 32] [--width 1] [--shape 3x32x32]
``--quick``: width 1/16, batch 4, T in 4 and 16 (flatness then T16 / T4), what a shared CPU runs in minutes.
Last stdout line: JSON with, per network, ``peak_bytes`` {method: {T: bytes}}, the ratios at T = 16, the
flatness ratios T = 32 / T = 4, and ``goals`` {name: {goal, value, met}}.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import torch

from neuromap import data
from neuromap.frontends.stop import Trainer, build_model

METHODS = ("bptt", "stop-w", "stop-wtl")
STEPS = (4, 8, 16, 32)
QUICK_STEPS = (4, 16)
NETS = ("vgg11", "resnet18")


class SavedTensorMeter:
    """Live bytes held for backward, one count per storage, plus tensors handed to ``probe``; keeps the peak."""

    def __init__(self, exclude: list[torch.Tensor]) -> None:
        self.exclude = {p.untyped_storage().data_ptr() for p in exclude}
        self.live: dict[int, list[int]] = {}   # storage pointer -> [bytes, references]
        self.peak = 0

    def _pack(self, tensor: torch.Tensor):
        key = tensor.untyped_storage().data_ptr()
        if key in self.exclude:
            return tensor
        entry = self.live.setdefault(key, [tensor.untyped_storage().nbytes(), 0])
        entry[1] += 1
        return _Held(self, key, tensor)

    @staticmethod
    def _unpack(held):
        return held.tensor if isinstance(held, _Held) else held

    def release(self, key: int) -> None:
        entry = self.live[key]
        entry[1] -= 1
        if entry[1] == 0:
            del self.live[key]

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def probe(self, held: Sequence[torch.Tensor]) -> None:
        extra = {}
        for t in held:
            key = t.untyped_storage().data_ptr()
            if key not in self.live and key not in self.exclude:
                extra[key] = t.untyped_storage().nbytes()
        self.peak = max(self.peak, sum(b for b, _ in self.live.values()) + sum(extra.values()))


class _Held:
    """What autograd stores instead of the tensor while the hooks are active; releases its count when freed."""

    def __init__(self, meter: SavedTensorMeter, key: int, tensor: torch.Tensor) -> None:
        self.meter, self.key, self.tensor = meter, key, tensor

    def __del__(self) -> None:
        self.meter.release(self.key)


def peak_bytes(arch: str, width: float, method: str, steps: int, x: torch.Tensor, y: torch.Tensor,
               device: torch.device) -> int:
    model = build_model(arch, tuple(x.shape[1:]), 10, seed=0, width=width).to(device)
    trainer = Trainer(model, method)
    if device.type == "cuda":
        trainer.gradients(x, y, steps)            # warm-up: kernels, workspaces, .grad buffers
        torch.cuda.synchronize(device)
        trainer.optimizer.zero_grad(set_to_none=True)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        trainer.gradients(x, y, steps)
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    meter = SavedTensorMeter(list(model.parameters()))
    with meter.hooks():
        trainer.gradients(x, y, steps, probe=meter.probe)
    return meter.peak


def summary(peaks: dict[str, dict[int, int]], steps: Sequence[int]) -> dict:
    """Ratios at T = 16, flatness T_max / T_min, and the paper's goals with whether they are met."""
    lo, hi = min(steps), max(steps)
    mid = 16 if 16 in steps else steps[len(steps) // 2]
    out: dict[str, Any] = {
        f"ratio_bptt_over_stop_w_T{mid}": peaks["bptt"][mid] / peaks["stop-w"][mid],
        f"ratio_bptt_over_stop_wtl_T{mid}": peaks["bptt"][mid] / peaks["stop-wtl"][mid],
        **{f"{m.replace('-', '_')}_T{hi}_over_T{lo}": peaks[m][hi] / peaks[m][lo] for m in METHODS},
    }
    goals = {f"ratio_bptt_over_stop_w_T{mid}": (">= 4", 4.0, True),
             f"ratio_bptt_over_stop_wtl_T{mid}": (">= 1.2", 1.2, True),
             f"stop_w_T{hi}_over_T{lo}": ("<= 1.2", 1.2, False),
             f"stop_wtl_T{hi}_over_T{lo}": ("<= 1.2", 1.2, False)}
    out["goals"] = {k: {"goal": g, "value": out[k], "met": bool(out[k] >= bound if at_least else out[k] <= bound)}
                    for k, (g, bound, at_least) in goals.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=None, help="mini-batch size [32; quick: 4]")
    parser.add_argument("--width", type=float, default=None, help="width multiplier [1; quick: 0.0625]")
    parser.add_argument("--shape", default=None, help="generated images of this shape, e.g. 3x32x32 (CIFAR)")
    parser.add_argument("--quick", action="store_true", help="small width and batch, T in 4 and 16")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("stop_memory: --device cuda asked but torch sees no CUDA device")
    batch = args.batch or (4 if args.quick else 32)
    width = args.width or (0.0625 if args.quick else 1.0)
    steps = QUICK_STEPS if args.quick else STEPS
    if args.shape:
        shape = tuple(int(v) for v in args.shape.split("x"))
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(batch, *shape, generator=gen).to(device)
        y = torch.randint(0, 10, (batch,), generator=gen).to(device)
        source = f"generated {args.shape}"
    else:
        ds = data.load("mnist5k")
        x = torch.as_tensor(ds.x_train[:batch]).to(device)
        y = torch.as_tensor(ds.y_train[:batch]).to(device)
        source = "mnist5k"
    results = {}
    for net in NETS:
        peaks = {m: {t: peak_bytes(net, width, m, t, x, y, device) for t in steps} for m in METHODS}
        for m in METHODS:
            print(f"{net:8s} {m:9s} " + "  ".join(f"T={t}: {peaks[m][t] / 2**20:8.2f} MiB" for t in steps))
        results[net] = {"peak_bytes": peaks, **summary(peaks, steps)}
    out = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "measure": "cuda max_memory_allocated above baseline" if device.type == "cuda"
                   else "saved-for-backward tensors + trainer state/traces (saved_tensors_hooks)",
        "data": source, "batch": batch, "width": width, "steps": list(steps), "quick": args.quick,
        "networks": results,
        "all_goals_met": all(g["met"] for r in results.values() for g in r["goals"].values()),
    }
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
