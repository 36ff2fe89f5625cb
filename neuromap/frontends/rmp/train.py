"""Training and evaluating the ANN before conversion: a fixed-seed Adam loop over a neuromap data set."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from neuromap import data as nmdata
from neuromap.errors import NeuromapError
from neuromap.progress import bar


def _dataset(dataset: str | nmdata.Dataset) -> nmdata.Dataset:
    return nmdata.load(dataset) if isinstance(dataset, str) else dataset


@torch.no_grad()
def ann_accuracy(model: nn.Module, x, y, *, batch_size: int = 512) -> float:
    """Top-1 accuracy in percent of ``model`` (evaluated in eval mode; its training flag is restored)."""
    x, y = torch.as_tensor(np.asarray(x), dtype=torch.float32), torch.as_tensor(np.asarray(y))
    was_training = model.training
    model.eval()
    try:
        correct = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
                      for i in range(0, len(x), batch_size))
    finally:
        model.train(was_training)
    return 100.0 * correct / max(len(x), 1)


def train_ann(model: nn.Module, dataset: str | nmdata.Dataset, epochs: int = 10, *, lr: float = 1e-3,
              batch_size: int = 64, weight_decay: float = 0.0, seed: int = 0,
              max_samples: int | None = None) -> dict[str, Any]:
    """Train ``model`` in place with Adam and cross-entropy; the same seed gives the same weights.

    ``dataset``: a neuromap.data name (``digits``, ``mnist5k``, an .npz path) or a Dataset; samples must
    have the model's input shape. ``max_samples`` trains on the first N training samples (quick tests).
    Returns ``{"loss": [per-epoch mean loss], "train_accuracy", "test_accuracy"}`` (percent).
    """
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise NeuromapError(f"train_ann: need epochs >= 0, batch_size >= 1, lr > 0 "
                            f"(got {epochs}, {batch_size}, {lr})")
    ds = _dataset(dataset)
    x = torch.as_tensor(ds.x_train[:max_samples])
    y = torch.as_tensor(ds.y_train[:max_samples])
    torch.manual_seed(seed)   # also fixes dropout masks
    order = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    model.train()
    with bar(desc="ANN training", total=epochs, unit="epoch") as progress:
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=order)
            total = 0.0
            for i in range(0, len(x), batch_size):
                idx = perm[i:i + batch_size]
                if len(idx) < 2:   # batch norm cannot train on a single sample
                    continue
                opt.zero_grad()
                loss = loss_fn(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            losses.append(total / max(len(x), 1))
            progress.update(1)
            progress.set_postfix(loss=f"{losses[-1]:.4f}")
    model.eval()
    return {"loss": losses, "train_accuracy": ann_accuracy(model, x, y),
            "test_accuracy": ann_accuracy(model, ds.x_test, ds.y_test)}
