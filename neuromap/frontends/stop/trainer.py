"""STOP training (docs/reference/algorithms.md §1.5-1.7) and the BPTT/STBP baseline, on the same SNN and the same loss.

STOP, per time step t:
  1. traces, forward in time, from the previous step's state (no autograd):
         w~[t] = alpha w~[t-1] + x[t]                 (per input of a layer: presynaptic, B x M; a projection
                                                       shortcut's input gets its own)
         b~[t] = alpha b~[t-1] + 1                    (bias: dU/db, one number per layer since alpha is shared)
         th~[t] = alpha (th~[t-1] - s[t-1])           (per neuron)
         al~[t] = alpha al~[t-1] + U[t-1] - theta s[t-1]
  2. forward every layer with the previous state, the parameters and the reset *detached*, so the
     autograd graph spans this one step only; the read-out gives the per-step loss E[t];
  3. back-propagate E[t] through the layers only (pooling, residual sums included): delta^l[t] = dE[t]/dU^l[t];
  4. accumulate dW += delta x w~ (conv: the weight gradient with the input replaced by its trace),
     db += sum delta b~, dtheta += sum delta (th~ - 1), dalpha += sum delta al~; the read-out's gradient
     comes from autograd.
After the sequence the accumulated gradients go to the optimizer (Adam), and theta/alpha are clamped.
Memory therefore holds one step's graph plus traces and state, whatever T is.

BPTT keeps the graph through all T steps and lets autograd differentiate the very same forward.

The gradient step is ``Trainer.train_batch``: ``gradients`` fills ``.grad``, then ``optimizer.step``.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from neuromap.atomic import atomic_path
from neuromap.errors import NeuromapError
from neuromap.frontends.stop.model import SNN, SpikingLayer
from neuromap.progress import bar, quiet

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
    if o.dtype in (torch.float16, torch.bfloat16):  # autocast's read-out: the loss is taken in float32
        o = o.float()
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
    skip_trace: torch.Tensor | None
    bias_trace: torch.Tensor | None
    theta_trace: torch.Tensor | None
    alpha_trace: torch.Tensor | None

    def tensors(self) -> list[torch.Tensor]:
        return [t for t in (self.u, self.s, self.w_trace, self.skip_trace, self.bias_trace, self.theta_trace,
                            self.alpha_trace) if t is not None]


@dataclass
class Trainer:
    """Trains ``model`` with ``method`` (one of METHODS) and Adam; one call of ``train_batch`` per mini-batch.

    ``lr`` is the weights' learning rate; thresholds and leaks get ``lr_theta`` / ``lr_alpha``.
    ``optimizer_name``: "adam", or "sgd" with ``momentum`` (the SLTT/OTTT CIFAR recipe's).
    ``detach_reset`` applies to BPTT only (STOP always detaches the reset; that is its approximation).
    ``amp``: the synaptic operations (conv, dense, shortcut, read-out) run in bfloat16 under
    ``torch.autocast`` on the model's device; membranes, thresholds, traces, the loss and the gradients
    stay float32 (a bfloat16 membrane, 8 bits of mantissa, would move spikes that sit near threshold, and
    a trace summed over T steps would lose its small terms). Spikes are 0/1, exact in bfloat16. float16
    is not offered: it would need a loss scaler, bfloat16 has float32's range.
    ``compile``: each spiking layer's membrane update (synapse + leak + reset) goes through
    ``torch.compile`` with ``compile_backend``, in place on the model.
    """

    model: SNN
    method: str = "stop-wtl"
    lr: float = 1e-3
    lr_theta: float = 1e-3
    lr_alpha: float = 1e-3
    mse_weight: float = 0.05
    detach_reset: bool = False
    amp: bool = False
    compile: bool = False
    compile_backend: str = "inductor"
    optimizer_name: str = "adam"
    momentum: float = 0.9
    # data-parallel training (distributed.py): which samples of a batch this rank takes, and the gradient
    # all-reduce between the accumulation over the steps and the one optimiser step
    parallel: DataParallel | None = None
    optimizer: torch.optim.Optimizer = field(init=False)
    batch_accuracy: float = field(init=False, default=float("nan"))  # of the last ``gradients`` call

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
        param_groups = [{"params": groups[k], "lr": lrs[k], "initial_lr": lrs[k]} for k in self.learn if groups[k]]
        if self.optimizer_name == "adam":
            self.optimizer = torch.optim.Adam(param_groups)
        elif self.optimizer_name == "sgd":
            self.optimizer = torch.optim.SGD(param_groups, lr=self.lr, momentum=self.momentum)
        else:
            raise NeuromapError(f"optimizer {self.optimizer_name!r} is not one of adam, sgd", field="optimizer")
        if self.compile:
            for layer in self.model.layers:
                layer.potential = torch.compile(layer.potential, backend=self.compile_backend)  # type: ignore[method-assign]

    @property
    def device(self) -> torch.device:
        return self.model.readout.weight.device

    def _autocast(self) -> AbstractContextManager:
        if not self.amp:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

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

    def _record_accuracy(self, scores: torch.Tensor, y: torch.Tensor) -> None:
        self.batch_accuracy = float((scores.argmax(dim=1) == y).float().mean()) if len(y) else float("nan")

    # ------------------------------------------------------------------ BPTT
    def _bptt_grads(self, x, y, steps, probe) -> float:
        steps = self.model.sequence_length(x, steps)
        ref = self.model.readout.weight
        loss = ref.new_zeros(())
        scores = ref.new_zeros((x.shape[0], self.model.num_classes))
        with self._autocast():
            for o, state in self.model.unroll(x, steps, detach_reset=self.detach_reset):
                loss = loss + step_loss(o, y, steps, self.mse_weight)
                scores += o.detach()
                if probe is not None:
                    probe([t for pair in state for t in pair])
        loss.backward()
        self._record_accuracy(scores, y)
        return float(loss.detach())

    # ------------------------------------------------------------------ STOP
    def _stop_grads(self, x, y, steps, probe) -> float:
        model, learn = self.model, self.learn
        steps = model.sequence_length(x, steps)
        layers = model.layers
        index = {id(layer): i for i, layer in enumerate(layers)}
        batch = x.shape[0]
        ref = model.readout.weight
        states: list[_LayerState] = []
        for layer in layers:
            zeros = ref.new_zeros((batch, *layer.out_shape))
            states.append(_LayerState(
                u=zeros, s=zeros, w_trace=ref.new_zeros((batch, *layer.in_shape)),
                skip_trace=ref.new_zeros((batch, *layer.skip_shape))
                if layer.shortcut is not None and layer.skip_shape is not None else None,
                bias_trace=ref.new_zeros(()) if layer.bias is not None else None,
                theta_trace=zeros if "theta" in learn else None,
                alpha_trace=zeros if "alpha" in learn else None))
        grads = {id(p): torch.zeros_like(p) for kind in learn for p in model.param_groups()[kind]}
        readout_grad = grads.pop(id(model.readout.weight))
        total, scores = 0.0, ref.new_zeros((batch, model.num_classes))
        us: list[torch.Tensor] = [ref] * len(layers)

        def fire(layer: SpikingLayer, h: torch.Tensor, skip_input: torch.Tensor | None) -> torch.Tensor:
            i = index[id(layer)]
            st, n = states[i], layer.neuron
            alpha = n.alpha.detach()
            with torch.no_grad():
                th_full = n.theta_full(n.theta.detach())
                st.w_trace = alpha * st.w_trace + h
                if st.skip_trace is not None and skip_input is not None:
                    st.skip_trace = alpha * st.skip_trace + skip_input
                if st.bias_trace is not None:
                    st.bias_trace = alpha * st.bias_trace + 1.0
                if st.theta_trace is not None:
                    st.theta_trace = alpha * (st.theta_trace - st.s)
                if st.alpha_trace is not None:
                    st.alpha_trace = alpha * st.alpha_trace + (st.u - th_full * st.s)
            u = layer.potential(h, skip_input, st.u, st.s, detach=True)
            if not u.requires_grad:  # first layer: its input carries no graph; make U a leaf for delta
                u.requires_grad_()
            s = layer.fire(u, detach=True)
            us[i] = u
            st.u, st.s = u.detach(), s.detach()
            return s

        for t in range(steps):
            with self._autocast():
                o = model.step(model.frame(x, t), fire)
                loss = step_loss(o, y, steps, self.mse_weight)
            scores += o.detach()
            if probe is not None:
                probe([tensor for st in states for tensor in st.tensors()])
            *deltas, d_readout = torch.autograd.grad(loss, [*us, model.readout.weight])
            total += float(loss.detach())
            with torch.no_grad():
                readout_grad += d_readout
                for layer, st, delta in zip(layers, states, deltas):
                    n = layer.neuron
                    grads[id(layer.op.weight)] += layer.weight_grad(st.w_trace, delta)
                    if st.skip_trace is not None and layer.shortcut is not None:
                        grads[id(layer.shortcut.weight)] += layer.shortcut_grad(st.skip_trace, delta)
                    if st.bias_trace is not None:
                        grads[id(layer.bias)] += n.reduce_to_theta(delta) * st.bias_trace
                    if st.theta_trace is not None:
                        grads[id(n.theta)] += n.reduce_to_theta(delta * (st.theta_trace - 1.0))
                    if st.alpha_trace is not None:
                        grads[id(n.alpha)] += (delta * st.alpha_trace).sum()
        for kind in learn:
            for p in model.param_groups()[kind]:
                p.grad = readout_grad if p is model.readout.weight else grads[id(p)]
        self._record_accuracy(scores, y)
        return total


# ---------------------------------------------------------------------------------------------- loops
def evaluate(model: SNN, x: torch.Tensor, y: torch.Tensor, steps: int | None,
             encode: Callable[[torch.Tensor], torch.Tensor] | None = None, batch_size: int = 256) -> float:
    """Test accuracy: argmax of the summed read-out, batch by batch (``encode`` turns images into inputs),
    on the model's device."""
    model.eval()
    ref = model.readout.weight
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            xb = (encode(xb) if encode else xb).to(device=ref.device, dtype=ref.dtype)
            predicted = model.scores(xb, steps).argmax(dim=1).cpu()
            correct += int((predicted == y[i:i + batch_size]).sum())
    return correct / max(1, x.shape[0])


@dataclass
class FitResult:
    """Per-batch losses (the resumed run's earlier epochs included), test accuracy, training seconds of
    this call, and on CUDA the allocator's peak (``torch.cuda.max_memory_allocated``) during it."""

    losses: list[float]
    test_accuracy: float
    seconds: float
    start_epoch: int = 0
    peak_memory_bytes: int | None = None


CHECKPOINT_NAME = "stop-checkpoint.pt"
SCHEDULES = ("constant", "cosine")


def _checkpoint_path(folder: str | Path) -> Path:
    return Path(folder) / CHECKPOINT_NAME


def save_checkpoint(folder: str | Path, trainer: Trainer, epoch: int, generator: torch.Generator,
                    losses: list[float]) -> Path:
    """Write model, optimizer, RNG states and the number of finished epochs to ``folder`` (atomically)."""
    path = _checkpoint_path(folder)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NeuromapError(f"checkpoint folder {folder}: {exc.strerror or exc}", path=str(folder)) from None
    state = {"format": 1, "method": trainer.method, "arch": trainer.model.arch, "epoch": epoch,
             "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
             "shuffle_rng": generator.get_state(), "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
             "losses": list(losses)}
    with atomic_path(path) as temporary:
        torch.save(state, temporary)
    return path


def load_checkpoint(folder: str | Path, trainer: Trainer, generator: torch.Generator) -> tuple[int, list[float]]:
    """Restore what ``save_checkpoint`` wrote into ``trainer`` and ``generator``; (finished epochs, losses)."""
    path = _checkpoint_path(folder)
    if not path.is_file():
        raise NeuromapError(f"--resume: no checkpoint {path} (written by a run with --checkpoint {folder})",
                            path=str(path), flag="--resume")
    try:
        state = torch.load(path, map_location=trainer.device, weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike for a damaged file
        raise NeuromapError(f"checkpoint {path} cannot be read: {exc}", path=str(path)) from None
    for key, have in (("method", trainer.method), ("arch", trainer.model.arch)):
        if state.get(key) != have:
            raise NeuromapError(f"checkpoint {path} was written for {key} {state.get(key)!r}, this run has "
                                f"{have!r}", path=str(path), field=key)
    try:
        trainer.model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise NeuromapError(f"checkpoint {path} does not fit the model: {str(exc).splitlines()[0]}",
                            path=str(path), field="model") from None
    trainer.optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["shuffle_rng"].cpu())
    torch.set_rng_state(state["torch_rng"].cpu())
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    return int(state["epoch"]), list(state["losses"])


def fit(trainer: Trainer, x_train: np.ndarray | torch.Tensor, y_train: np.ndarray | torch.Tensor,
        x_test: np.ndarray | torch.Tensor, y_test: np.ndarray | torch.Tensor, *, steps: int | None,
        epochs: int, batch_size: int = 64, seed: int = 0,
        encode: Callable[[torch.Tensor], torch.Tensor] | None = None, progress: bool = True,
        checkpoint: str | Path | None = None, resume: bool = False, schedule: str = "constant") -> FitResult:
    """Train for ``epochs`` over shuffled mini-batches (fixed seed), then report the test accuracy.

    Batches go to the model's device. A bar per epoch shows the running loss and batch accuracy
    (``neuromap.progress``: only on a terminal, never under ``--quiet`` or ``progress=False``). With
    ``checkpoint`` a folder receives the state after every epoch; ``resume`` continues from it, and the
    result equals the uninterrupted run's (same shuffles, same parameters). ``schedule`` "cosine" anneals
    every learning rate to 0 over ``epochs`` (torch's CosineAnnealingLR in closed form, set per epoch, so a
    resumed run needs no scheduler state).

        fit(Trainer(model, "stop-wtl"), x, y, x_test, y_test, steps=6, epochs=10, checkpoint="ckpt")
    """
    if epochs < 1 or batch_size < 1:
        raise NeuromapError(f"epochs and batch size must be >= 1, got {epochs} and {batch_size}")
    if schedule not in SCHEDULES:
        raise NeuromapError(f"schedule {schedule!r} is not one of {', '.join(SCHEDULES)}", field="schedule")
    if resume and checkpoint is None:
        raise NeuromapError("--resume needs --checkpoint DIR, the folder the interrupted run wrote",
                            flag="--resume")
    x_train, y_train = torch.as_tensor(x_train), torch.as_tensor(y_train)
    ref = trainer.model.readout.weight
    cuda = ref.device.type == "cuda"
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    start_epoch = 0
    if resume:
        assert checkpoint is not None
        start_epoch, losses = load_checkpoint(checkpoint, trainer, gen)
    if cuda:
        torch.cuda.reset_peak_memory_stats(ref.device)
    start = time.perf_counter()
    batches = math.ceil(x_train.shape[0] / batch_size)
    for epoch in range(start_epoch, epochs):
        order = torch.randperm(x_train.shape[0], generator=gen)
        if schedule == "cosine":
            for group in trainer.optimizer.param_groups:
                group["lr"] = group["initial_lr"] * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        with quiet() if not progress else nullcontext(), \
                bar(total=batches, desc=f"{trainer.method} epoch {epoch + 1}/{epochs}", unit="batch") as epoch_bar:
            for i in range(0, x_train.shape[0], batch_size):
                idx = order[i:i + batch_size]
                if trainer.parallel is not None:
                    idx = trainer.parallel.shard(idx)
                xb = x_train[idx]
                xb = (encode(xb) if encode else xb).to(device=ref.device, dtype=ref.dtype)
                losses.append(trainer.train_batch(xb, y_train[idx].to(ref.device), steps))
                epoch_bar.update(1)
                epoch_bar.set_postfix(loss=f"{losses[-1]:.4f}", acc=f"{trainer.batch_accuracy:.3f}")
        if checkpoint is not None:
            save_checkpoint(checkpoint, trainer, epoch + 1, gen, losses)
    seconds = time.perf_counter() - start
    peak = int(torch.cuda.max_memory_allocated(ref.device)) if cuda else None
    acc = evaluate(trainer.model, torch.as_tensor(x_test), torch.as_tensor(y_test), steps, encode)
    return FitResult(losses, acc, seconds, start_epoch, peak)
