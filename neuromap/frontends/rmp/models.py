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
from typing import TypeVar

import torch
from torch import nn

from neuromap.errors import NeuromapError

ModuleT = TypeVar("ModuleT", bound=nn.Module)


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


def _dense_stack(width: int, hidden: Sequence[int], num_classes: int, act: Callable[[], nn.Module], *, bias: bool,
                 batchnorm: bool, dropout: float) -> list[nn.Module]:
    """Linear [+ BatchNorm1d] + activation [+ Dropout] per hidden size, then the output Linear."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers.append(nn.Linear(width, size, bias=bias))
        if batchnorm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(act())
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, num_classes, bias=bias))
    return layers


def mlp(input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (100,), *, bias: bool = True,
        batchnorm: bool = False, dropout: float = 0.0, activation: str = "relu", levels: int = 8) -> nn.Sequential:
    """Flatten -> [Linear -> (BN) -> act -> (Dropout)] * len(hidden) -> Linear."""
    act = _activation(activation, levels)
    width = math.prod(int(d) for d in input_shape)
    layers: list[nn.Module] = [nn.Flatten()] if len(tuple(input_shape)) > 1 else []
    return nn.Sequential(*layers, *_dense_stack(width, hidden, num_classes, act, bias=bias, batchnorm=batchnorm,
                                                dropout=dropout))


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
        hidden: int | Sequence[int] = 128, *, kernel: int = 3, bias: bool = True, batchnorm: bool = False,
        dropout: float = 0.0, classifier_dropout: float | None = None, activation: str = "relu",
        levels: int = 8) -> nn.Sequential:
    """VGG-style: ``cfg`` lists conv widths and "A" (2x2 average pooling), then a classifier with one hidden
    layer per entry of ``hidden`` (dropout ``classifier_dropout``, by default ``dropout``) and a Linear read-out."""
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
    layers.append(nn.Flatten())
    drop = dropout if classifier_dropout is None else classifier_dropout
    layers += _dense_stack(c * h * w, [hidden] if isinstance(hidden, int) else hidden, num_classes, act, bias=bias,
                           batchnorm=batchnorm, dropout=drop)
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


STEMS = ("conv", "sengupta", "imagenet")


def _stem(kind: str, c: int, width: int, *, bias: bool, batchnorm: bool, dropout: float,
          act: Callable[[], nn.Module]) -> list[nn.Module]:
    """The layers before the residual stages.

    conv      one 3x3 conv (He et al. 2016, CIFAR ResNets)
    sengupta  three 3x3 convs then 2x2 average pooling, the "pre-processing" layers of the RMP/Sengupta lineage
              (nitin-rathi/hybrid-snn-conversion self_models/resnet_spiking.py, ``pre_process``)
    imagenet  7x7 stride-2 conv then 3x3 stride-2 pooling (He et al. 2016, ImageNet ResNets), average pooling
              in place of max pooling (docs/reference/algorithms.md §2.3)
    """
    if kind == "conv":
        return _conv_block(c, width, 3, bias=bias, batchnorm=batchnorm, dropout=0.0, act=act)
    if kind == "sengupta":
        layers: list[nn.Module] = []
        for i in range(3):
            layers += _conv_block(c if i == 0 else width, width, 3, bias=bias, batchnorm=batchnorm,
                                  dropout=dropout if i < 2 else 0.0, act=act)
        return [*layers, nn.AvgPool2d(2)]
    if kind == "imagenet":
        layers = [nn.Conv2d(c, width, 7, 2, 3, bias=bias)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(width))
        return [*layers, act(), nn.AvgPool2d(3, 2, 1)]
    raise NeuromapError(f"resnet stem {kind!r} is not one of {', '.join(STEMS)}")


def he_init(model: ModuleT) -> ModuleT:
    """He et al. 2015 initialisation: conv weights N(0, 2/(k²·C_out)) (fan-out, as
    nitin-rathi/hybrid-snn-conversion ``self_models/vgg_spiking.py`` ``_initialize_weights2`` and torchvision's
    VGG do), Linear weights N(0, 2/fan_in), biases 0. Without it a bias-free, BN-free 16-layer plain net's
    signal vanishes at torch's default initialisation and it does not train. (Those sources' N(0, 0.01) for
    Linear layers suits their 4096-wide classifiers, not narrow ones.)"""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            nn.init.zeros_(m.bias)
    return model


def _out_size(m: nn.Module, n: int, axis: int) -> int:
    """The size along ``axis`` (0 rows, 1 columns) of what a conv or pooling layer makes of ``n``."""
    if not isinstance(m, (nn.Conv2d, nn.AvgPool2d)):
        return n
    k, st, pd = (_pair(v)[axis] for v in (m.kernel_size, m.stride, m.padding))
    return (n + 2 * pd - k) // st + 1


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class ResNet(nn.Module):
    """ResNet of basic blocks: a stem, stages of blocks (stage i has ``width``·2^i channels, stride 2 from the
    second stage on), then ``head``: "pool" (global average pooling, He et al. 2016) or "flatten" (the final
    feature map straight into the Linear read-out, as the RMP/Sengupta lineage does).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, blocks: Sequence[int] = (3, 3, 3),
                 width: int = 16, *, stem: str = "conv", head: str = "pool", bias: bool = False,
                 head_bias: bool = True, batchnorm: bool = True, dropout: float = 0.0, activation: str = "relu",
                 levels: int = 8) -> None:
        super().__init__()
        c, h, w = _check_shape(input_shape, "resnet")
        if head not in ("pool", "flatten"):
            raise NeuromapError(f"resnet head {head!r} is not one of 'pool', 'flatten'")
        if width < 1:
            raise NeuromapError(f"resnet: width must be >= 1, got {width}")
        act = _activation(activation, levels)
        stem_layers = _stem(stem, c, width, bias=bias, batchnorm=batchnorm, dropout=dropout, act=act)
        self.stem = nn.Sequential(*stem_layers)
        for m in stem_layers:       # follow the image size through the stem's strided layers
            h, w = _out_size(m, h, 0), _out_size(m, w, 1)
        if min(h, w) < 1:
            raise NeuromapError(f"resnet: the {stem!r} stem shrinks an input of {tuple(input_shape)} below 1x1")
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
        # global average pooling as a fixed kernel: exact in the IR
        self.pool = nn.AvgPool2d((h, w)) if head == "pool" else nn.Identity()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in * (1 if head == "pool" else h * w), num_classes, bias=head_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.stages(self.stem(x)))))


LAYOUTS = ("he", "sengupta")


def resnet20(input_shape: Sequence[int], num_classes: int, width: int | None = None, *, layout: str = "he",
             **kwargs) -> ResNet:
    """ResNet-20 in one of two layouts (20 weighted layers on the longest path either way).

    ``layout="he"``: He et al. 2016's CIFAR net, 3 stages of 3 basic blocks, widths 16/32/64 (``width`` 16).
    ``layout="sengupta"``: the RMP-SNN / Sengupta et al. 2019 net: three 3x3 conv "pre-processing" layers and
    2x2 average pooling, 4 stages of 2 basic blocks at 64/128/256/512 (``width`` 64), the last feature map
    flattened into a bias-free Linear; bias-free, no batch norm, dropout 0.2 by default (the constrained form,
    docs/reference/algorithms.md §2.3, after nitin-rathi/hybrid-snn-conversion ``self_models/resnet_spiking.py``,
    ``cfg['resnet20'] = [2,2,2,2]``). ``width`` scales the channels (e.g. 8 for quick MNIST-size runs).

        model = resnet20((1, 28, 28), 10, width=8, layout="sengupta")                  # constrained
        model = resnet20((1, 28, 28), 10, width=8, layout="sengupta", batchnorm=True)  # BN, folded at convert
    """
    if layout == "he":
        return ResNet(input_shape, num_classes, (3, 3, 3), 16 if width is None else width, **kwargs)
    if layout == "sengupta":
        options = {"bias": False, "batchnorm": False, "dropout": 0.2, **kwargs}
        return he_init(ResNet(input_shape, num_classes, (2, 2, 2, 2), 64 if width is None else width,
                              stem="sengupta", head="flatten", head_bias=options["bias"], **options))
    raise NeuromapError(f"resnet20 layout {layout!r} is not one of {', '.join(LAYOUTS)}")


def resnet34(input_shape: Sequence[int], num_classes: int, width: int = 64, **kwargs) -> ResNet:
    """ResNet-34 (He et al. 2016, the ImageNet net RMP-SNN converts): a 7x7 stride-2 stem and 3x3 stride-2
    average pooling, stages of 3/4/6/3 basic blocks at ``width``·(1, 2, 4, 8) channels, global average pooling,
    Linear. Constrained by default (no bias, no batch norm, dropout 0.2); ``batchnorm=True`` for the BN form.

        model = resnet34((3, 224, 224), 1000)                     # the paper's ImageNet configuration
        model = resnet34((1, 28, 28), 10, width=4, batchnorm=True)  # narrow, for MNIST-size inputs
    """
    options = {"bias": False, "batchnorm": False, "dropout": 0.2, **kwargs}
    return he_init(ResNet(input_shape, num_classes, (3, 4, 6, 3), width, stem="imagenet",
                          head_bias=options["bias"], **options))


VGG16_CFG: tuple[int | str, ...] = (64, 64, "A", 128, 128, "A", 256, 256, 256, "A", 512, 512, 512, "A", 512, 512, 512)


def vgg16(input_shape: Sequence[int], num_classes: int, width: float = 1.0, *, hidden: int | None = None,
          bias: bool = False, batchnorm: bool = False, dropout: float = 0.2, classifier_dropout: float = 0.5,
          activation: str = "relu", levels: int = 8) -> nn.Sequential:
    """VGG-16 as RMP-SNN / Sengupta et al. 2019 convert it (CIFAR form): 13 3x3 convs
    (64-64-A-128-128-A-256x3-A-512x3-A-512x3, A = 2x2 average pooling) and a 4096-4096-classes classifier,
    no bias, no batch norm, dropout 0.2 after each conv and 0.5 in the classifier (nitin-rathi/hybrid-snn-conversion
    ``self_models/vgg_spiking.py``, ``cfg['VGG16']``, ``_make_layers``). ``width`` multiplies every conv width and
    the hidden size (0.125: 8 to 64 channels, for quick runs); ``batchnorm=True, bias=True`` is the BN form,
    folded exactly at conversion. Inputs need at least 16x16 pixels (four poolings).

        model = vgg16((3, 32, 32), 10)                                   # the paper's CIFAR-10 network
        model = vgg16((1, 28, 28), 10, width=0.125, batchnorm=True, bias=True)
    """
    if not width > 0:
        raise NeuromapError(f"vgg16: width must be > 0, got {width}")
    cfg = [item if item == "A" else max(1, round(int(item) * width)) for item in VGG16_CFG]
    size = max(1, round(4096 * width)) if hidden is None else hidden
    return he_init(vgg(input_shape, num_classes, cfg=cfg, hidden=(size, size), bias=bias, batchnorm=batchnorm,
                       dropout=dropout, classifier_dropout=classifier_dropout, activation=activation,
                       levels=levels))


ZOO: dict[str, Callable[..., nn.Module]] = {"mlp": mlp, "cnn": lenet, "vgg": vgg, "vgg16": vgg16,
                                            "resnet20": resnet20, "resnet34": resnet34}


def build_model(name: str, input_shape: Sequence[int], num_classes: int, **kwargs) -> nn.Module:
    """A zoo model by name (``mlp``, ``cnn`` (LeNet-style), ``vgg``, ``vgg16``, ``resnet20``, ``resnet34``)."""
    if name not in ZOO:
        raise NeuromapError(f"unknown model {name!r}: use one of {', '.join(ZOO)}")
    return ZOO[name](input_shape, num_classes, **kwargs)
