"""Convolutional geometry of a projection: the integer kernels a conv/pool chain applies, in order.

A ``ConvGeometry`` says what a projection computes on (C, H, W) tensors: ``stages`` applied one after the
other, each a 2-D convolution with an integer kernel (torch layout (C_out, C_in/groups, kH, kW)), stride,
padding, dilation and groups. Sum pooling is a depthwise stage whose kernel is constant per channel (its
quantized weight), an identity projection has no stages. ``matrix`` unrolls it into the (dst, src) CSR
weight matrix the event counters and Lava use; ``hwsim.netdesc.Projection`` checks that the two agree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from hwsim.errors import HwsimError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


class ConvGeometryError(HwsimError, ValueError):
    """A convolutional geometry that does not describe a valid convolution; the message names the field."""


def _pair(value: ArrayLike, what: str, lo: int) -> tuple[int, int]:
    arr = np.broadcast_to(np.asarray(value), (2,))
    if arr.dtype.kind not in "iu" or arr.min() < lo:
        raise ConvGeometryError(f"conv stage {what}: expected two integers >= {lo}, got {value!r}", field=what,
                                value=str(value), allowed=lo)
    return int(arr[0]), int(arr[1])


@dataclass(frozen=True, eq=False)
class ConvStage:
    """One convolution: integer ``kernel`` (C_out, C_in/groups, kH, kW) and torch's geometry arguments."""

    kernel: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    if TYPE_CHECKING:
        def __init__(self, kernel: ArrayLike, stride: ArrayLike = ..., padding: ArrayLike = ...,
                     dilation: ArrayLike = ..., groups: int = ...) -> None: ...

    def __post_init__(self) -> None:
        k = np.asarray(self.kernel)
        if k.ndim != 4 or k.dtype.kind not in "iu":
            raise ConvGeometryError(f"conv stage kernel: expected a 4-D integer array, got {k.ndim}-D {k.dtype}",
                                    field="kernel", value=str(k.dtype))
        k = k.astype(np.int64)
        k.setflags(write=False)
        object.__setattr__(self, "kernel", k)
        object.__setattr__(self, "stride", _pair(self.stride, "stride", 1))
        object.__setattr__(self, "padding", _pair(self.padding, "padding", 0))
        object.__setattr__(self, "dilation", _pair(self.dilation, "dilation", 1))
        if not isinstance(self.groups, int) or self.groups < 1 or k.shape[0] % self.groups:
            raise ConvGeometryError(f"conv stage groups = {self.groups!r}: must be a positive divisor of the "
                                    f"{k.shape[0]} output channels", field="groups", value=self.groups)

    def output_shape(self, in_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        cin, h, w = in_shape
        cout, cin_g, kh, kw = self.kernel.shape
        if cin_g * self.groups != cin:
            raise ConvGeometryError(f"conv stage kernel: {cin_g} input channels per group x {self.groups} groups, "
                                    f"but the input has {cin} channels", field="kernel", value=cin_g * self.groups,
                                    allowed=cin)
        ho = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        if ho < 1 or wo < 1:
            raise ConvGeometryError(f"conv stage kernel {kh}x{kw} does not fit the input {h}x{w}", field="kernel",
                                    value=(kh, kw), allowed=(h, w))
        return cout, ho, wo

    def abs_row_sum(self) -> int:
        """max over output channels of sum |kernel|: a bound on |output| / max|input| (every position)."""
        return int(np.abs(self.kernel).reshape(self.kernel.shape[0], -1).sum(axis=1).max(initial=0))

    def channel_constant(self) -> np.ndarray | None:
        """For a sum pool (depthwise, one value per channel's window), that value per channel; else None."""
        k = self.kernel
        if self.groups != k.shape[0] or k.shape[1] != 1:
            return None
        first = k[:, :, :1, :1]
        return first.reshape(-1) if (k == first).all() else None

    def matrix(self, in_shape: tuple[int, int, int]) -> sp.csr_matrix:
        """The stage as an (out size, in size) int64 CSR matrix on C-order flattened tensors, tap by tap
        (one kernel position at a time keeps the index arrays at the size of the output x C_in/groups)."""
        cin, h, w = in_shape
        cout, ho, wo = self.output_shape(in_shape)
        cin_g, kh, kw = self.kernel.shape[1:]
        cout_g = cout // self.groups
        co, ci, oy, ox = np.meshgrid(np.arange(cout), np.arange(cin_g), np.arange(ho), np.arange(wo), indexing="ij")
        rows_all = (co * ho + oy) * wo + ox
        cin_abs = (co // cout_g) * cin_g + ci
        rows, cols, vals = [], [], []
        for ky in range(kh):
            for kx in range(kw):
                iy = oy * self.stride[0] - self.padding[0] + ky * self.dilation[0]
                ix = ox * self.stride[1] - self.padding[1] + kx * self.dilation[1]
                value = self.kernel[co, ci, ky, kx]
                keep = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w) & (value != 0)
                rows.append(rows_all[keep])
                cols.append(((cin_abs * h + iy) * w + ix)[keep])
                vals.append(value[keep])
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(cout * ho * wo, cin * h * w))


@dataclass(frozen=True, eq=False)
class ConvGeometry:
    """``stages`` applied in order to a (C, H, W) = ``input_shape`` tensor; no stages: the identity."""

    input_shape: tuple[int, int, int]
    stages: tuple[ConvStage, ...] = ()

    if TYPE_CHECKING:
        def __init__(self, input_shape: ArrayLike, stages: tuple[ConvStage, ...] = ...) -> None: ...

    def __post_init__(self) -> None:
        shape = np.asarray(self.input_shape)
        if shape.shape != (3,) or shape.dtype.kind not in "iu" or shape.min() < 1:
            raise ConvGeometryError(f"conv geometry input_shape: expected (C, H, W) positive integers, got "
                                    f"{self.input_shape!r}", field="input_shape", value=str(self.input_shape))
        object.__setattr__(self, "input_shape", tuple(int(s) for s in shape))
        object.__setattr__(self, "stages", tuple(self.stages))
        self.output_shape  # noqa: B018  # validates every stage against the shape it receives

    @property
    def shapes(self) -> list[tuple[int, int, int]]:
        """The tensor shape before the first stage and after each."""
        shapes = [self.input_shape]
        for stage in self.stages:
            shapes.append(stage.output_shape(shapes[-1]))
        return shapes

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return self.shapes[-1]

    @property
    def in_size(self) -> int:
        return math.prod(self.input_shape)

    @property
    def out_size(self) -> int:
        return math.prod(self.output_shape)

    def stage_bounds(self, x_max: int) -> list[int]:
        """Per stage, a bound on every partial sum it forms, given |input| <= x_max: max|input of the stage|
        x its largest sum |kernel| over one output (the argument of hwsim.synapse's docstring, per stage)."""
        bounds, current = [], int(x_max)
        for stage in self.stages:
            current *= stage.abs_row_sum()
            bounds.append(current)
        return bounds

    def matrix(self) -> sp.csr_matrix:
        """The (out size, in size) int64 CSR matrix of the whole chain."""
        mats = [stage.matrix(shape) for stage, shape in zip(self.stages, self.shapes)]
        identity = sp.identity(self.in_size, dtype=np.int64, format="csr")
        product = sp.csr_matrix(reduce(lambda acc, m: m @ acc, mats, identity), dtype=np.int64)
        product.eliminate_zeros()
        product.sort_indices()
        return product
