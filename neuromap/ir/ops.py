"""The stateless nodes (Affine, Linear, Conv2d, pooling, Flatten) as torch functions on a batch.

They belong to the IR, not to a simulator: the float reference runs them every step and lowering runs
them once to turn the biases on a chain into a constant current, so both must agree on what a node means.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from neuromap.errors import UnsupportedError
from neuromap.ir.nodes import Affine, Conv2d, Flatten, Linear, Node, Output, SumPool2d


def stateless_op(node: Node, device: str | torch.device | None = None,
                 dtype: torch.dtype = torch.float64) -> Callable[[torch.Tensor], torch.Tensor]:
    """The stateless node as a function on a batch (B, *input_shape); parameters converted once."""
    def t(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.asarray(a), dtype=dtype, device=device)

    if isinstance(node, Affine):
        w, b = t(node.weight), t(node.bias)
        return lambda x: F.linear(x, w, b)
    if isinstance(node, Linear):
        w = t(node.weight)
        return lambda x: F.linear(x, w)
    if isinstance(node, Conv2d):
        conv = node
        w, b = t(conv.weight), t(conv.bias)
        return lambda x: F.conv2d(x, w, b, conv.stride, conv.padding, conv.dilation, conv.groups)
    if isinstance(node, SumPool2d):  # AvgPool2d is a SumPool2d with scale 1/k
        pool = node
        factor = pool.kernel_size[0] * pool.kernel_size[1] * pool.scale
        return lambda x: F.avg_pool2d(x, pool.kernel_size, pool.stride, pool.padding,
                                      count_include_pad=True) * factor
    if isinstance(node, Flatten):
        return lambda x: x.reshape(x.shape[0], -1)
    if isinstance(node, Output):
        return lambda x: x
    raise UnsupportedError(f"node kind {node.kind} is not a stateless node")
