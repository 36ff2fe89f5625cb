"""The convolutional geometry of a quantized projection (``hwsim.conv.ConvGeometry``), so that hwsim runs a
conv or pool chain with dense convolution kernels instead of its unrolled matrix.

A projection has one when it is a single chain from a (C, H, W) source through convolutions and pools
(and Flattens at its end, which do not move a value on C-order flattened tensors):
* ``node`` form (one weighted node, ``QuantProjection.weights`` its integer kernel): that Conv2d, and every
  pool as a plain window sum (the quantizer folded the pools' scales into the kernel);
* ``matrix`` form with no weighted node (an identity or one pool, whose quantized weight is one value per
  destination channel, as the quantizer scales per channel): a depthwise stage with that value per channel.
Anything else (Linear/Affine, several chains, two weighted nodes) has none and runs as a matrix.
``hwsim.netdesc.Projection`` checks that the geometry unrolls to the projection's weights.
"""
from __future__ import annotations

import numpy as np

from hwsim.conv import ConvGeometry, ConvStage
from neuromap.ir import Conv2d, Flatten, Graph, SumPool2d
from neuromap.passes.quantize import QuantProjection


def _pool_stage(node: SumPool2d, per_channel: np.ndarray) -> ConvStage:
    kh, kw = node.kernel_size
    kernel = np.broadcast_to(per_channel.reshape(-1, 1, 1, 1), (per_channel.size, 1, kh, kw))
    return ConvStage(kernel, node.stride, node.padding, groups=per_channel.size)


def _channel_values(pr: QuantProjection, channels: int) -> np.ndarray:
    """The weight of each destination channel of a matrix-form identity or pool: its first row's value."""
    m = pr.matrix
    assert m is not None  # matrix form
    per_channel = m.shape[0] // channels
    first_rows = np.arange(channels) * per_channel
    has_entry = np.diff(m.indptr)[first_rows] > 0
    values = np.zeros(channels, np.int64)
    values[has_entry] = m.data[m.indptr[first_rows[has_entry]]]
    return values


def conv_geometry(pr: QuantProjection, graph: Graph) -> ConvGeometry | None:
    """The projection's geometry, or None where it is not a conv/pool chain (see the module docstring)."""
    src_shape = tuple(graph.nodes[pr.src].output_shape)
    if len(pr.paths) != 1 or len(src_shape) != 3:
        return None
    path = list(pr.paths[0])
    while path and isinstance(graph.nodes[path[-1]], Flatten):
        path.pop()
    nodes = [graph.nodes[n] for n in path]
    if not all(isinstance(n, (Conv2d, SumPool2d)) for n in nodes):
        return None
    channels = src_shape[0]
    if pr.node is None:  # an identity or one pool, quantized per destination channel
        if len(nodes) > 1:
            return None
        values = _channel_values(pr, channels)
        if not nodes:
            return ConvGeometry(src_shape, (ConvStage(values.reshape(-1, 1, 1, 1), groups=channels),))
        node = nodes[0]
        assert isinstance(node, SumPool2d)  # the only unweighted kind left
        return ConvGeometry(src_shape, (_pool_stage(node, values),))
    stages = []
    for name, node in zip(path, nodes):
        if isinstance(node, Conv2d):
            assert name == pr.node and pr.weights is not None  # node form: its one weighted node
            stages.append(ConvStage(pr.weights, node.stride, node.padding, node.dilation, node.groups))
            channels = node.weight.shape[0]
        else:
            assert isinstance(node, SumPool2d)
            stages.append(_pool_stage(node, np.ones(channels, np.int64)))
    return ConvGeometry(src_shape, tuple(stages))
