"""Model zoo for conversion: ANNs built only from layers the RMP converter maps exactly.

Every model takes a per-sample ``input_shape`` ((C, H, W), e.g. (1, 8, 8) digits, (1, 28, 28) MNIST,
(3, 32, 32) CIFAR) and ``num_classes``, and the constrained-training knobs of the RMP/Sengupta recipe
(docs/reference/algorithms.md §2.3): ``bias`` (False = no bias terms), ``batchnorm`` (folded exactly at conversion),
``dropout`` (identity at conversion), average pooling only, ReLU everywhere and a linear read-out.
``activation="qcfs"`` swaps ReLU for QCFS's clip-floor-shift activation (docs/reference/algorithms.md §2.9-4), whose
trained clip level becomes the threshold and which converts well at few time steps.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from neuromap.errors import NeuromapError


class QCFS(nn.Module):
    """h(z) = λ·clip(floor(z·L/λ + 1/2)/L, 0, 1) with trainable λ (Bu et al., ICLR 2022).

    The floor passes gradients straight through. An IF neuron with soft reset, threshold λ and initial
    membrane λ/2 reproduces h at T = L steps (for inputs that arrive evenly).
    """

    def __init__(self, levels: int = 8, init_threshold: float = 4.0) -> None:
        super().__init__()
        if levels < 1:
            raise NeuromapError(f"QCFS.levels: must be >= 1, got {levels}")
        self.levels = int(levels)
        self.threshold = nn.Parameter(torch.tensor(float(init_threshold)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lam = self.threshold
        scaled = z * self.levels / lam + 0.5
        stepped = scaled + (torch.floor(scaled) - scaled).detach()   # straight-through floor
        return torch.clamp(stepped / self.levels, 0.0, 1.0) * lam

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


def _activation(kind: str, levels: int) -> Callable[[], nn.Module]:
    if kind == "relu":
        return nn.ReLU
    if kind == "qcfs":
        return lambda: QCFS(levels)
    raise NeuromapError(f"activation {kind!r} is not one of 'relu', 'qcfs'")


def _check_shape(input_shape: Sequence[int], what: str) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise NeuromapError(f"{what}: input_shape must be (C, H, W), got {shape}")
    return shape


def mlp(input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (100,), *, bias: bool = True,
        batchnorm: bool = False, dropout: float = 0.0, activation: str = "relu", levels: int = 8) -> nn.Sequential:
    """Flatten -> [Linear -> (BN) -> act -> (Dropout)] * len(hidden) -> Linear."""
    act = _activation(activation, levels)
    width = math.prod(int(d) for d in input_shape)
    layers: list[nn.Module] = [nn.Flatten()] if len(tuple(input_shape)) > 1 else []
    for h in hidden:
        layers.append(nn.Linear(width, h, bias=bias))
        if batchnorm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(act())
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes, bias=bias))
    return nn.Sequential(*layers)


def _conv_block(c_in: int, c_out: int, kernel: int, *, bias: bool, batchnorm: bool, dropout: float,
                act: Callable[[], nn.Module]) -> list[nn.Module]:
    block: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias)]
    if batchnorm:
        block.append(nn.BatchNorm2d(c_out))
    block.append(act())
    if dropout:
        block.append(nn.Dropout(dropout))
    return block


def lenet(input_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (16, 32), hidden: int = 128, *,
          bias: bool = True, batchnorm: bool = False, dropout: float = 0.0, activation: str = "relu",
          levels: int = 8) -> nn.Sequential:
    """LeNet-style CNN: [Conv5x5 -> act -> AvgPool2] per channel count -> Flatten -> Linear -> act -> Linear."""
    return vgg(input_shape, num_classes, cfg=[x for c in channels for x in (c, "A")], hidden=hidden, kernel=5,
               bias=bias, batchnorm=batchnorm, dropout=dropout, activation=activation, levels=levels)


def vgg(input_shape: Sequence[int], num_classes: int, cfg: Sequence[int | str] = (32, 32, "A", 64, 64, "A"),
        hidden: int = 128, *, kernel: int = 3, bias: bool = True, batchnorm: bool = False, dropout: float = 0.0,
        activation: str = "relu", levels: int = 8) -> nn.Sequential:
    """VGG-style: ``cfg`` lists conv widths and "A" (2x2 average pooling), then a 2-layer classifier."""
    c, h, w = _check_shape(input_shape, "vgg")
    act = _activation(activation, levels)
    layers: list[nn.Module] = []
    for item in cfg:
        if item == "A":
            if min(h, w) < 2:
                raise NeuromapError(f"vgg: cfg {list(cfg)} pools an input of {input_shape} below 1x1")
            layers.append(nn.AvgPool2d(2))
            h, w = h // 2, w // 2
        else:
            layers += _conv_block(c, int(item), kernel, bias=bias, batchnorm=batchnorm, dropout=dropout, act=act)
            c = int(item)
    layers += [nn.Flatten(), nn.Linear(c * h * w, hidden, bias=bias)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(hidden))
    layers.append(act())
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, num_classes, bias=bias))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """act(BN(conv3x3(act(BN(conv3x3(x))))) + shortcut(x)); shortcut = identity or BN(conv1x1, stride)."""

    def __init__(self, c_in: int, c_out: int, stride: int, *, bias: bool, batchnorm: bool, dropout: float,
                 act: Callable[[], nn.Module]) -> None:
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batchnorm else (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=bias)
        self.bn1 = norm(c_out)
        self.act1 = act()
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=bias)
        self.bn2 = norm(c_out)
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=bias), norm(c_out))
        self.act2 = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop(self.act1(self.bn1(self.conv1(x))))
        return self.act2(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet (He et al. 2016, 6n+2 layers): stem conv, three stages, global average pool, Linear."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, blocks: Sequence[int] = (3, 3, 3),
                 width: int = 16, *, bias: bool = False, batchnorm: bool = True, dropout: float = 0.0,
                 activation: str = "relu", levels: int = 8) -> None:
        super().__init__()
        c, h, w = _check_shape(input_shape, "resnet")
        act = _activation(activation, levels)
        self.stem = nn.Sequential(*_conv_block(c, width, 3, bias=bias, batchnorm=batchnorm, dropout=0.0, act=act))
        stages: list[nn.Module] = []
        c_in = width
        for i, n in enumerate(blocks):
            c_out, stride = width * 2 ** i, 1 if i == 0 else 2
            for j in range(n):
                stages.append(BasicBlock(c_in, c_out, stride if j == 0 else 1, bias=bias, batchnorm=batchnorm,
                                         dropout=dropout, act=act))
                c_in = c_out
            if i:
                h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AvgPool2d((h, w))      # global average pooling as a fixed kernel: exact in the IR
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, num_classes, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.stages(self.stem(x)))))


def resnet20(input_shape: Sequence[int], num_classes: int, width: int = 16, **kwargs) -> ResNet:
    """ResNet-20: 3 stages of 3 basic blocks (6·3 + 2 weighted layers), widths 16/32/64 by default."""
    return ResNet(input_shape, num_classes, (3, 3, 3), width, **kwargs)


ZOO: dict[str, Callable[..., nn.Module]] = {"mlp": mlp, "cnn": lenet, "vgg": vgg, "resnet20": resnet20}


def build_model(name: str, input_shape: Sequence[int], num_classes: int, **kwargs) -> nn.Module:
    """A zoo model by name (``mlp``, ``cnn`` (LeNet-style), ``vgg``, ``resnet20``)."""
    if name not in ZOO:
        raise NeuromapError(f"unknown model {name!r}: use one of {', '.join(ZOO)}")
    return ZOO[name](input_shape, num_classes, **kwargs)
