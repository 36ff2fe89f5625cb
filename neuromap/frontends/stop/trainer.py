"""STOP training (algorithms.md §1.5-1.7) and the BPTT/STBP baseline, on the same SNN and the same loss.

STOP, per time step t:
  1. traces, forward in time, from the previous step's state (no autograd):
         w~[t] = alpha w~[t-1] + x[t]                 (per layer input: presynaptic, B x M)
         th~[t] = alpha (th~[t-1] - s[t-1])           (per neuron)
         al~[t] = alpha al~[t-1] + U[t-1] - theta s[t-1]
  2. forward every layer with the previous state, the parameters and the reset *detached*, so the
     autograd graph spans this one step only; the read-out gives the per-step loss E[t];
  3. back-propagate E[t] through the layers only: delta^l[t] = dE[t]/dU^l[t];
  4. accumulate dW += delta x w~ (conv: the weight gradient with the input replaced by its trace),
     dtheta += sum delta (th~ - 1), dalpha += sum delta al~; the read-out's gradient comes from autograd.
After the sequence the accumulated gradients go to the optimizer (Adam), and theta/alpha are clamped.
Memory therefore holds one step's graph plus traces and state, whatever T is.

BPTT keeps the graph through all T steps and lets autograd differentiate the very same forward.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from neuromap.errors import NeuromapError
from neuromap.frontends.stop.model import SNN, SpikingLayer

if TYPE_CHECKING:
    from neuromap.frontends.stop.distributed import DataParallel

# What each method learns; the read-out weights are learned by all of them.
METHODS: dict[str, tuple[str, ...]] = {
    "bptt": ("weight", "theta", "alpha"),
    "stop-w": ("weight",),
    "stop-wt": ("weight", "theta"),
    "stop-wtl": ("weight", "theta", "alpha"),
}

# A probe is called once per step at the moment the step's autograd graph is complete (before its
# backward), with the tensors the trainer itself holds (state, traces); benchmarks use it for memory.
Probe = Callable[[Sequence[torch.Tensor]], None]


def step_loss(o: torch.Tensor, y: torch.Tensor, steps: int, mse_weight: float) -> torch.Tensor:
    """Per-step loss E[t] = ((1 - lam) CE(o[t], y) + lam MSE(o[t], onehot(y))) / T (OTTT/SLTT, §1.8)."""
    ce = F.cross_entropy(o, y)
    if mse_weight == 0:
        return ce / steps
    mse = F.mse_loss(o, F.one_hot(y, o.shape[1]).to(o.dtype))
    return ((1 - mse_weight) * ce + mse_weight * mse) / steps


@dataclass
class _LayerState:
    u: torch.Tensor      # U[t-1], membrane before reset
    s: torch.Tensor      # s[t-1]
    w_trace: torch.Tensor
    theta_trace: torch.Tensor | None
    alpha_trace: torch.Tensor | None

    def tensors(self) -> list[torch.Tensor]:
        return [t for t in (self.u, self.s, self.w_trace, self.theta_trace, self.alpha_trace) if t is not None]


@dataclass
class Trainer:
    """Trains ``model`` with ``method`` (one of METHODS) and Adam; one call of ``train_batch`` per mini-batch.

    ``lr`` is the weights' learning rate; thresholds and leaks get ``lr_theta`` / ``lr_alpha``.
    ``detach_reset`` applies to BPTT only (STOP always detaches the reset; that is its approximation).
    """

    model: SNN
    method: str = "stop-wtl"
    lr: float = 1e-3
    lr_theta: float = 1e-3
    lr_alpha: float = 1e-3
    mse_weight: float = 0.05
    detach_reset: bool = False
    # data-parallel training (distributed.py): which samples of a batch this rank takes, and the gradient
    # all-reduce between the accumulation over the steps and the one optimiser step
    parallel: DataParallel | None = None
    optimizer: torch.optim.Optimizer = field(init=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise NeuromapError(f"training method {self.method!r} is not one of {', '.join(METHODS)}")
        self.learn = METHODS[self.method]
        groups = self.model.param_groups()
        lrs = {"weight": self.lr, "theta": self.lr_theta, "alpha": self.lr_alpha}
        for kind in self.learn:  # Adam checks only its default lr, not a parameter group's
            if not (math.isfinite(lrs[kind]) and lrs[kind] > 0):
                raise NeuromapError(f"{kind} learning rate must be finite and > 0, got {lrs[kind]:g}")
        for kind, params in groups.items():
            for p in params:
                p.requires_grad_(kind in self.learn)
        self.optimizer = torch.optim.Adam(
            [{"params": groups[k], "lr": lrs[k]} for k in self.learn if groups[k]])

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, steps: int | None = None,
                    probe: Probe | None = None) -> float:
        """One update on a mini-batch; returns the summed loss sum_t E[t]."""
        loss = (self.gradients(x, y, steps, probe) if self.parallel is None
                else self.parallel.gradients(self, x, y, steps, probe))
        self.optimizer.step()
        self.model.clamp_()
        return loss

    def gradients(self, x: torch.Tensor, y: torch.Tensor, steps: int | None = None,
                  probe: Probe | None = None) -> float:
        """Set ``.grad`` of the learned parameters for one mini-batch (no update); returns sum_t E[t]."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        if self.method == "bptt":
            return self._bptt_grads(x, y, steps, probe)
        return self._stop_grads(x, y, steps, probe)

    # ------------------------------------------------------------------ BPTT
    def _bptt_grads(self, x, y, steps, probe) -> float:
        steps = self.model.sequence_length(x, steps)
        loss = torch.zeros(())
        for o, state in self.model.unroll(x, steps, detach_reset=self.detach_reset):
            loss = loss + step_loss(o, y, steps, self.mse_weight)
            if probe is not None:
                probe([t for pair in state for t in pair])
        loss.backward()
        return float(loss.detach())

    # ------------------------------------------------------------------ STOP
    def _stop_grads(self, x, y, steps, probe) -> float:
        model, learn = self.model, self.learn
        steps = model.sequence_length(x, steps)
        layers = model.layers
        batch = x.shape[0]
        ref = model.readout.weight
        states: list[_LayerState] = []
        for layer in layers:
            zeros = ref.new_zeros((batch, *layer.out_shape))
            states.append(_LayerState(u=zeros, s=zeros, w_trace=ref.new_zeros((batch, *layer.in_shape)),
                                      theta_trace=zeros if "theta" in learn else None,
                                      alpha_trace=zeros if "alpha" in learn else None))
        grads = {id(p): torch.zeros_like(p) for kind in learn for p in model.param_groups()[kind]}
        readout_grad = grads.pop(id(model.readout.weight))
        total = 0.0
        for t in range(steps):
            h, us, li = model.frame(x, t), [], 0
            for block in model.blocks:
                if not isinstance(block, SpikingLayer):
                    h = block(h)
                    continue
                st, n = states[li], block.neuron
                alpha, theta = n.alpha.detach(), n.theta.detach()
                with torch.no_grad():
                    th_full = n.theta_full(theta)
                    st.w_trace = alpha * st.w_trace + h
                    if st.theta_trace is not None:
                        st.theta_trace = alpha * (st.theta_trace - st.s)
                    if st.alpha_trace is not None:
                        st.alpha_trace = alpha * st.alpha_trace + (st.u - th_full * st.s)
                u = block.potential(h, st.u, st.s, block.op.weight.detach(), alpha, theta)
                if not u.requires_grad:  # first layer: its input carries no graph; make U a leaf for delta
                    u.requires_grad_()
                h = block.fire(u, theta)
                us.append(u)
                st.u, st.s = u.detach(), h.detach()
                li += 1
            loss = step_loss(model.readout(h), y, steps, self.mse_weight)
            if probe is not None:
                probe([tensor for st in states for tensor in st.tensors()])
            *deltas, d_readout = torch.autograd.grad(loss, [*us, model.readout.weight])
            total += float(loss.detach())
            with torch.no_grad():
                readout_grad += d_readout
                for layer, st, delta in zip(layers, states, deltas):
                    n = layer.neuron
                    grads[id(layer.op.weight)] += layer.weight_grad(st.w_trace, delta)
                    if st.theta_trace is not None:
                        grads[id(n.theta)] += n.reduce_to_theta(delta * (st.theta_trace - 1.0))
                    if st.alpha_trace is not None:
                        grads[id(n.alpha)] += (delta * st.alpha_trace).sum()
        for kind in learn:
            for p in model.param_groups()[kind]:
                p.grad = readout_grad if p is model.readout.weight else grads[id(p)]
        return total


# ---------------------------------------------------------------------------------------------- loops
def evaluate(model: SNN, x: torch.Tensor, y: torch.Tensor, steps: int | None,
             encode: Callable[[torch.Tensor], torch.Tensor] | None = None, batch_size: int = 256) -> float:
    """Test accuracy: argmax of the summed read-out, batch by batch (``encode`` turns images into inputs)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            xb = (encode(xb) if encode else xb).to(model.readout.weight.dtype)
            correct += int((model.scores(xb, steps).argmax(dim=1) == y[i:i + batch_size]).sum())
    return correct / max(1, x.shape[0])


@dataclass
class FitResult:
    losses: list[float]
    test_accuracy: float
    seconds: float


def fit(trainer: Trainer, x_train: np.ndarray | torch.Tensor, y_train: np.ndarray | torch.Tensor,
        x_test: np.ndarray | torch.Tensor, y_test: np.ndarray | torch.Tensor, *, steps: int | None,
        epochs: int, batch_size: int = 64, seed: int = 0,
        encode: Callable[[torch.Tensor], torch.Tensor] | None = None, progress: bool = False) -> FitResult:
    """Train for ``epochs`` over shuffled mini-batches (fixed seed), then report the test accuracy."""
    if epochs < 1 or batch_size < 1:
        raise NeuromapError(f"epochs and batch size must be >= 1, got {epochs} and {batch_size}")
    x_train, y_train = torch.as_tensor(x_train), torch.as_tensor(y_train)
    dtype = trainer.model.readout.weight.dtype
    gen = torch.Generator().manual_seed(seed)
    losses = []
    start = time.perf_counter()
    schedule = [(epoch, i) for epoch in range(epochs) for i in range(0, x_train.shape[0], batch_size)]
    for _, i in tqdm(schedule, desc=trainer.method, leave=False, disable=not progress):
        if i == 0:  # a new epoch, a new shuffle
            order = torch.randperm(x_train.shape[0], generator=gen)
        idx = order[i:i + batch_size]
        if trainer.parallel is not None:
            idx = trainer.parallel.shard(idx)
        xb = x_train[idx]
        xb = (encode(xb) if encode else xb).to(dtype)
        losses.append(trainer.train_batch(xb, y_train[idx], steps))
    seconds = time.perf_counter() - start
    acc = evaluate(trainer.model, torch.as_tensor(x_test), torch.as_tensor(y_test), steps, encode)
    return FitResult(losses, acc, seconds)
