"""Torch model -> LayerGraph: trace with torch.fx, fold batch norm, drop dropout, check every layer.

nn.Sequential and any module torch.fx can trace (no data-dependent control flow) are accepted. The
model is never run in training mode and its modules' training flags are restored afterwards.
"""
from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from neuromap.errors import UnsupportedError
from neuromap.frontends.rmp.ann import Layer, LayerGraph
from neuromap.frontends.rmp.models import QCFS

SUPPORTED = ("Linear, Conv2d, ReLU, QCFS, AvgPool2d, AdaptiveAvgPool2d (exact divisors), "
             "MaxPool2d (only with maxpool='avg'), Flatten, Dropout, Identity, BatchNorm1d/2d after Linear/Conv2d, "
             "residual additions (+)")
MAXPOOL_POLICIES = ("error", "avg")
RESERVED_NAMES = ("input", "readout", "output")     # names the IR builder gives its own nodes

_RELU_FUNCTIONS = {F.relu, torch.relu}
_ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
_IDENTITY_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)
_SHAPE_ONLY_METHODS = {"size", "dim"}


def fold_batchnorm(weight: np.ndarray, bias: np.ndarray | None, bn: nn.modules.batchnorm._BatchNorm
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) of a Linear/Conv2d followed by ``bn`` (eval mode) as one layer: exact (docs/reference/algorithms.md
    §2.9-2).

    W' = W·γ/√(σ²+ε) per output channel, b' = (b - μ)·γ/√(σ²+ε) + β.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedError("batch norm without running statistics (track_running_stats=False) cannot be "
                               "folded")
    mean = bn.running_mean.detach().double().numpy()
    var = bn.running_var.detach().double().numpy()
    gamma = bn.weight.detach().double().numpy() if bn.weight is not None else np.ones_like(mean)
    beta = bn.bias.detach().double().numpy() if bn.bias is not None else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.eps)
    b = np.zeros_like(mean) if bias is None else bias
    return weight * scale.reshape(-1, *([1] * (weight.ndim - 1))), (b - mean) * scale + beta


def _array(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().double().numpy().copy()


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _name(node: fx.Node, kind: str) -> str:
    """fx's unique node name, prefixed with the kind where fx made it a bare index (nn.Sequential)."""
    bare = node.name.lstrip("_")
    return f"{kind}{node.name}" if not bare or bare[0].isdigit() else node.name


class _Tracer:
    def __init__(self, gm: fx.GraphModule, maxpool: str) -> None:
        self.gm = gm
        self.maxpool = maxpool
        self.modules = dict(gm.named_modules())
        self.layers: dict[str, Layer] = {}
        self.alias: dict[fx.Node, str] = {}       # fx node -> layer name holding its value
        self.users: dict[fx.Node, int] = {n: len(n.users) for n in gm.graph.nodes}

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def shape(node: fx.Node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        if meta is None:
            raise UnsupportedError(f"{node.name!r} ({node.op} {node.target}): carries no tensor, so it has no shape")
        return tuple(int(d) for d in meta.shape[1:])

    @staticmethod
    def is_tensor(arg: Any) -> bool:
        return isinstance(arg, fx.Node) and hasattr(arg.meta.get("tensor_meta"), "shape")

    def tensor_inputs(self, node: fx.Node) -> list[fx.Node]:
        return [a for a in node.all_input_nodes if self.is_tensor(a)]

    def add(self, node: fx.Node, kind: str, inputs: list[fx.Node], origin: str, **params: Any) -> None:
        name = _name(node, kind)
        while name in self.layers or name in RESERVED_NAMES:
            name += "_"
        self.layers[name] = Layer(name, kind, tuple(self.alias[i] for i in inputs), self.shape(node), params, origin)
        self.alias[node] = name

    def unsupported(self, what: str, why: str = "is not supported") -> UnsupportedError:
        return UnsupportedError(f"layer {what} {why} by the RMP converter; supported: {SUPPORTED}")

    # ---------------------------------------------------------------- nodes
    def run(self) -> LayerGraph:
        output = None
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if any(layer.kind == "input" for layer in self.layers.values()):
                    raise UnsupportedError(f"model input {node.name!r}: only models with one input tensor are "
                                           f"supported")
                self.layers["input"] = Layer("input", "input", (), self.shape(node), {}, "model input")
                self.alias[node] = "input"
            elif node.op == "output":
                arg = node.args[0]
                if not self.is_tensor(arg):
                    raise UnsupportedError("model output: must be a single tensor (not a tuple or dict)")
                output = self.alias[arg]
            elif not self.is_tensor(node):
                if node.target in _SHAPE_ONLY_METHODS or node.target in (getattr, operator.getitem):
                    continue           # shape arithmetic for view/reshape; checked where it is used
                raise self.unsupported(f"{node.name!r} ({node.op} {node.target})",
                                       "does not produce a tensor and is not supported")
            elif node.op == "call_module":
                self.module(node, self.modules[node.target])
            elif node.op in ("call_function", "call_method"):
                self.function(node)
            else:
                raise self.unsupported(f"{node.name!r} ({node.op} {node.target})",
                                       "uses a tensor outside a module and is not supported")
        assert output is not None, "a traced fx graph always ends in its output node"
        return LayerGraph(self.layers, output)

    def module(self, node: fx.Node, mod: nn.Module) -> None:
        origin = f"module {node.target!r} ({type(mod).__name__})"
        ins = self.tensor_inputs(node)
        if isinstance(mod, _IDENTITY_MODULES):
            self.alias[node] = self.alias[ins[0]]
        elif isinstance(mod, nn.Linear):
            self.add(node, "linear", ins, origin, weight=_array(mod.weight), bias=_array(mod.bias))
        elif isinstance(mod, nn.Conv2d):
            self.add(node, "conv", ins, origin, **self.conv_params(mod, node))
        elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            self.batchnorm(node, mod, ins[0], origin)
        elif isinstance(mod, nn.ReLU):
            self.add(node, "relu", ins, origin, clip=None)
        elif isinstance(mod, QCFS):
            self.add(node, "relu", ins, origin, clip=(float(mod.threshold.detach()), mod.levels))
        elif isinstance(mod, nn.AvgPool2d):
            self.avgpool(node, ins[0], origin, mod.kernel_size, mod.stride, mod.padding,
                         ceil_mode=mod.ceil_mode, count_include_pad=mod.count_include_pad,
                         divisor_override=mod.divisor_override)
        elif isinstance(mod, nn.AdaptiveAvgPool2d):
            self.adaptive_avgpool(node, ins[0], origin)
        elif isinstance(mod, nn.MaxPool2d):
            self.maxpool_layer(node, mod, ins[0], origin)
        elif isinstance(mod, nn.Flatten):
            if mod.start_dim != 1 or mod.end_dim != -1:
                raise self.unsupported(origin, f"with start_dim={mod.start_dim}, end_dim={mod.end_dim} "
                                               f"is not supported (only Flatten(1, -1))")
            self.flatten(node, ins[0], origin)
        else:
            raise self.unsupported(origin)

    def function(self, node: fx.Node) -> None:
        target, ins = node.target, self.tensor_inputs(node)
        origin = f"{node.op} {getattr(target, '__name__', target)!s} ({node.name!r})"
        if target in _RELU_FUNCTIONS or target in ("relu", "relu_"):
            self.add(node, "relu", ins, origin, clip=None)
        elif target in _ADD_FUNCTIONS or target in ("add", "add_"):
            extra = [a for a in list(node.args) + list(node.kwargs.values()) if not self.is_tensor(a)]
            if len(ins) != 2 or extra:
                raise self.unsupported(origin, "adds a constant or scaled term; only tensor + tensor "
                                               "(residual addition) is supported")
            self.add(node, "add", ins, origin)
        elif target in (torch.flatten, "flatten", "view", "reshape"):
            if self.shape(node) != (int(np.prod(self.shape(ins[0]))),):
                raise self.unsupported(origin, f"reshapes to {self.shape(node)} per sample; only flattening "
                                               f"each sample to 1-D is supported")
            self.flatten(node, ins[0], origin)
        elif target in ("contiguous",):
            self.alias[node] = self.alias[ins[0]]
        else:
            raise self.unsupported(origin)

    # ---------------------------------------------------------------- layer kinds
    def conv_params(self, mod: nn.Conv2d, node: fx.Node) -> dict[str, Any]:
        origin = f"module {node.target!r} (Conv2d)"
        if mod.padding_mode != "zeros":
            raise self.unsupported(origin, f"with padding_mode={mod.padding_mode!r} is not supported "
                                           f"(only 'zeros')")
        padding = mod.padding
        if isinstance(padding, str):   # 'valid' / 'same': torch resolved it; read the symmetric amount back
            if padding == "valid":
                padding = (0, 0)
            else:
                total = [mod.dilation[i] * (mod.kernel_size[i] - 1) for i in range(2)]
                if any(t % 2 for t in total):
                    raise self.unsupported(origin, "with padding='same' and an even kernel pads asymmetrically, "
                                                   "which is not supported")
                padding = tuple(t // 2 for t in total)
        return dict(weight=_array(mod.weight), bias=_array(mod.bias), stride=_pair(mod.stride),
                    padding=_pair(padding), dilation=_pair(mod.dilation), groups=int(mod.groups))

    def batchnorm(self, node: fx.Node, bn: nn.modules.batchnorm._BatchNorm, src: fx.Node, origin: str) -> None:
        prev = self.layers.get(self.alias[src])
        if prev is None or prev.kind not in ("linear", "conv") or src.op != "call_module" \
                or not isinstance(self.modules[src.target], (nn.Linear, nn.Conv2d)):
            raise UnsupportedError(f"{origin}: batch norm can only be folded when it directly follows a "
                                   f"Linear or Conv2d (it follows {prev.origin if prev else src.name!r})")
        if self.users[src] != 1:
            raise UnsupportedError(f"{origin}: the layer before it ({prev.origin}) also feeds other layers, so "
                                   f"the batch norm cannot be folded into it")
        if bn.running_mean is None or bn.running_var is None:
            raise UnsupportedError(f"{origin}: batch norm without running statistics (track_running_stats=False) "
                                   f"cannot be folded")
        weight, bias = fold_batchnorm(prev.params["weight"], prev.params["bias"], bn)
        folded = dict(prev.params, weight=weight, bias=bias)
        self.layers[prev.name] = Layer(prev.name, prev.kind, prev.inputs, prev.shape, folded,
                                       f"{prev.origin} + {origin} folded")
        self.alias[node] = prev.name

    def avgpool(self, node: fx.Node, src: fx.Node, origin: str, kernel, stride, padding, *, ceil_mode=False,
                count_include_pad=True, divisor_override=None) -> None:
        if ceil_mode or not count_include_pad or divisor_override is not None:
            raise self.unsupported(origin, "with ceil_mode=True, count_include_pad=False or divisor_override "
                                           "is not supported")
        kernel = _pair(kernel)
        self.add(node, "avgpool", [src], origin, kernel_size=kernel,
                 stride=_pair(kernel if stride is None else stride), padding=_pair(padding))

    def adaptive_avgpool(self, node: fx.Node, src: fx.Node, origin: str) -> None:
        (_, h, w), (_, oh, ow) = self.shape(src), self.shape(node)
        if h % oh or w % ow:
            raise self.unsupported(origin, f"maps {h}x{w} to {oh}x{ow}, which is not a whole-kernel average "
                                           f"pooling, and is not supported")
        self.avgpool(node, src, origin, (h // oh, w // ow), (h // oh, w // ow), 0)

    def maxpool_layer(self, node: fx.Node, mod: nn.MaxPool2d, src: fx.Node, origin: str) -> None:
        if self.maxpool != "avg":
            raise UnsupportedError(f"{origin}: max pooling is not spike-compatible (the max of spike trains is "
                                   f"not the max of rates); retrain with AvgPool2d, or pass maxpool='avg' to "
                                   f"convert it as average pooling (this changes the network)")
        if _pair(mod.dilation) != (1, 1) or mod.ceil_mode or mod.return_indices:
            raise self.unsupported(origin, "with dilation, ceil_mode or return_indices cannot be replaced by "
                                           "average pooling and")
        self.avgpool(node, src, f"{origin} as AvgPool2d", mod.kernel_size, mod.stride, mod.padding)

    def flatten(self, node: fx.Node, src: fx.Node, origin: str) -> None:
        if len(self.shape(src)) == 1:
            self.alias[node] = self.alias[src]
        else:
            self.add(node, "flatten", [src], origin)


class _Leaves(fx.Tracer):
    """torch.fx's tracer, keeping QCFS activations whole (they become populations, not arithmetic)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, QCFS) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module, sample: torch.Tensor, *, maxpool: str = "error") -> LayerGraph:
    """The LayerGraph of ``model`` for inputs shaped like ``sample`` (B, *shape); batch norm folded."""
    if maxpool not in MAXPOOL_POLICIES:
        raise UnsupportedError(f"maxpool={maxpool!r} is not one of {MAXPOOL_POLICIES}")
    if not isinstance(model, nn.Module):
        raise UnsupportedError(f"convert: expected a torch.nn.Module, got {type(model).__name__}")
    flags = {m: m.training for m in model.modules()}
    try:
        try:
            gm = fx.GraphModule(model, _Leaves().trace(model))
        except Exception as exc:   # fx raises many types; its message says which construct failed
            raise UnsupportedError(f"model {type(model).__name__} cannot be traced with torch.fx "
                                   f"({str(exc).splitlines()[0]}); write it as nn.Sequential or avoid "
                                   f"data-dependent control flow in forward()") from None
        gm.eval()
        with torch.no_grad():
            try:
                ShapeProp(gm).propagate(sample.to(torch.float32))
            except RuntimeError as exc:
                cause = exc.__cause__ or exc          # ShapeProp wraps the layer's own error
                raise UnsupportedError(f"model {type(model).__name__} does not run on inputs of shape "
                                       f"{tuple(sample.shape[1:])} ({str(cause).splitlines()[0]})") from None
        return _Tracer(gm, maxpool).run()
    finally:
        for m, flag in flags.items():
            m.training = flag
