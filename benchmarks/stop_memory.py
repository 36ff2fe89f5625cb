"""Peak training memory of BPTT, STOP-W and STOP-WTL on the same conv net and MLP, for T in 4, 8, 16, 32.

What is measured, for one mini-batch's gradient computation (the optimizer step is the same for all):
* CUDA (``--device cuda``): ``torch.cuda.max_memory_allocated`` during the computation minus what was
  allocated before it (parameters, optimizer state, the batch), after one warm-up batch.
* CPU: the bytes of every tensor autograd holds for backward (``torch.autograd.graph.saved_tensors_hooks``,
  counted once per storage while the graph holds it) plus the trainer's own state and traces, sampled at
  the end of each step's forward; parameters (and the equally sized gradients) are excluded for all methods.
Static images with direct encoding, so the input itself does not grow with T.

    python benchmarks/stop_memory.py [--device cuda] [--batch 32]
Last stdout line: JSON with ``peak_bytes`` {method: {T: bytes}} (conv net), ``mlp`` {"peak_bytes": ...},
``ratio_bptt_over_stop_w_T16``, ``ratio_bptt_over_stop_wtl_T16`` and the flatness ratios T=32 / T=4.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import torch

from neuromap import data
from neuromap.frontends.stop import Trainer, build_model

METHODS = ("bptt", "stop-w", "stop-wtl")
STEPS = (4, 8, 16, 32)
NETS = {"conv": "c16-p2-c32-p2", "mlp": "fc256-fc128"}


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


def peak_bytes(arch: str, method: str, steps: int, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> int:
    model = build_model(arch, tuple(x.shape[1:]), 10, seed=0).to(device)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("stop_memory: --device cuda asked but torch sees no CUDA device")
    ds = data.load("mnist5k")
    x = torch.as_tensor(ds.x_train[:args.batch]).to(device)
    y = torch.as_tensor(ds.y_train[:args.batch]).to(device)
    results = {}
    for net, arch in NETS.items():
        results[net] = {m: {t: peak_bytes(arch, m, t, x, y, device) for t in STEPS} for m in METHODS}
        for m in METHODS:
            print(f"{net:5s} {m:9s} " + "  ".join(f"T={t}: {results[net][m][t] / 2**20:8.2f} MiB" for t in STEPS))
    conv = results["conv"]
    out = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "measure": "cuda max_memory_allocated above baseline" if device.type == "cuda"
                   else "saved-for-backward tensors + trainer state/traces (saved_tensors_hooks)",
        "batch": args.batch, "conv_arch": NETS["conv"], "mlp_arch": NETS["mlp"],
        "peak_bytes": conv,
        "mlp": {"peak_bytes": results["mlp"],
                "ratio_bptt_over_stop_w_T16": results["mlp"]["bptt"][16] / results["mlp"]["stop-w"][16],
                "ratio_bptt_over_stop_wtl_T16": results["mlp"]["bptt"][16] / results["mlp"]["stop-wtl"][16]},
        "ratio_bptt_over_stop_w_T16": conv["bptt"][16] / conv["stop-w"][16],
        "ratio_bptt_over_stop_wtl_T16": conv["bptt"][16] / conv["stop-wtl"][16],
        "stop_w_T32_over_T4": conv["stop-w"][32] / conv["stop-w"][4],
        "stop_wtl_T32_over_T4": conv["stop-wtl"][32] / conv["stop-wtl"][4],
        "bptt_T32_over_T4": conv["bptt"][32] / conv["bptt"][4],
    }
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
