"""Node types of the network graph (the first IR level of docs/architecture.md).

Aligned with NIR's node set so that import/export is lossless where NIR can express it. Every node is
a small frozen dataclass; parameters are numpy arrays and are checked when the node is built: shapes,
NaN/inf, legal ranges. A node knows its per-sample ``input_shape`` and ``output_shape`` (no batch axis).

Neuron populations (LIF, IF, LI, ...) are neuron models, one module each in ``neuromap.neurons``; they
build on ``Node`` and the parameter checks here (``param_array``, ``check_in_range``, ...).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from neuromap.errors import GraphError

RESETS = ("subtract", "zero")
RESET_TIMINGS = ("immediate", "next_step")


def param_shape(value: Any, what: str) -> tuple[int, ...]:
    try:
        raw = np.atleast_1d(np.asarray(value))
        shape = tuple(int(d) for d in raw.astype(np.int64))
    except (TypeError, ValueError, OverflowError) as exc:
        raise GraphError(f"{what}: not a shape ({value!r})", field=what, value=value) from exc
    if raw.dtype.kind not in "iub" and not np.array_equal(raw, np.asarray(shape)):
        raise GraphError(f"{what}: sizes must be whole numbers, got {value!r}", field=what, value=value)
    if not shape or any(d <= 0 for d in shape):
        raise GraphError(f"{what}: shape must be non-empty with positive sizes, got {shape}", field=what,
                         value=shape)
    return shape


def _pair(value: Any, what: str, minimum: int) -> tuple[int, int]:
    try:
        arr = np.atleast_1d(np.asarray(value, dtype=np.int64))
    except (TypeError, ValueError) as exc:
        raise GraphError(f"{what}: expected one or two integers >= {minimum}, got {value!r}", field=what,
                         value=value, allowed=f">= {minimum}") from exc
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.shape != (2,) or (arr < minimum).any():
        raise GraphError(f"{what}: expected one or two integers >= {minimum}, got {value!r}", field=what,
                         value=value, allowed=f">= {minimum}")
    return int(arr[0]), int(arr[1])


def param_array(value: Any, what: str) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GraphError(f"{what}: not numeric ({type(value).__name__})", field=what) from exc
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise GraphError(f"{what}: non-finite value {arr[where] if where else arr} at index {where}", field=what,
                         value=float(arr[where] if where else arr))
    arr.setflags(write=False)
    return arr


def check_broadcastable(arr: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    try:
        np.broadcast_to(arr, shape)
    except ValueError as exc:
        raise GraphError(f"{what}: shape {arr.shape} does not broadcast to population shape {shape}", field=what,
                         value=arr.shape, allowed=shape) from exc


def check_in_range(arr: np.ndarray, lo: float, hi: float, what: str) -> None:
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise GraphError(f"{what}: values must lie in [{lo}, {hi}], got [{arr.min():g}, {arr.max():g}]", field=what,
                         value=(float(arr.min()), float(arr.max())), allowed=(lo, hi))


def conv_output_hw(hw: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                   padding: tuple[int, ...], dilation: tuple[int, ...] = (1, 1)) -> tuple[int, int]:
    """(H, W) out of a convolution or pooling window over (H, W) in; every argument holds (H, W) values."""
    h, w = ((hw[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(2))
    return h, w


@dataclass(frozen=True, eq=False)
class Node:
    """Base of all nodes. ``metadata`` carries what NIR has no field for (documented per key)."""

    metadata: dict = field(default_factory=dict, kw_only=True)
    kind: ClassVar[str] = "node"
    is_neuron: ClassVar[bool] = False
    is_synapse: ClassVar[bool] = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def output_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Fields as plain data (arrays stay arrays), for serialization and comparison."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> Node:
        return dataclasses.replace(self, **changes)


class ShapedNode(Node):
    """A node whose output has its input's shape, ``shape`` (inputs, outputs, neuron populations). Not a
    dataclass itself: each subclass declares ``shape`` as its field."""

    shape: tuple[int, ...]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.shape


@dataclass(frozen=True, eq=False)
class Input(ShapedNode):
    shape: tuple[int, ...]
    kind: ClassVar[str] = "Input"

    if TYPE_CHECKING:  # the constructor takes array-likes; __post_init__ turns them into the fields' types
        def __init__(self, shape: ArrayLike, *, metadata: dict = ...) -> None: ...

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", param_shape(self.shape, "Input.shape"))


@dataclass(frozen=True, eq=False, init=False)  # Input's constructor
class Output(Input):
    kind: ClassVar[str] = "Output"


@dataclass(frozen=True, eq=False)
class Affine(Node):
    """y = weight @ x + bias; weight is (out, in)."""

    weight: np.ndarray
    bias: np.ndarray
    kind: ClassVar[str] = "Affine"
    is_synapse: ClassVar[bool] = True

    if TYPE_CHECKING:  # the constructor takes array-likes; __post_init__ turns them into the fields' types
        def __init__(self, weight: ArrayLike, bias: ArrayLike, *, metadata: dict = ...) -> None: ...

    def __post_init__(self) -> None:
        w = param_array(self.weight, f"{self.kind}.weight")
        if w.ndim != 2:
            raise GraphError(f"{self.kind}.weight: expected 2-D (out, in), got shape {w.shape}")
        object.__setattr__(self, "weight", w)
        b = param_array(self.bias, f"{self.kind}.bias")
        if b.shape != (w.shape[0],):
            raise GraphError(f"{self.kind}.bias: expected shape ({w.shape[0]},), got {b.shape}")
        object.__setattr__(self, "bias", b)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.weight.shape[1],)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.weight.shape[0],)


@dataclass(frozen=True, eq=False)
class Linear(Node):
    """y = weight @ x; weight is (out, in)."""

    weight: np.ndarray
    kind: ClassVar[str] = "Linear"
    is_synapse: ClassVar[bool] = True

    if TYPE_CHECKING:  # the constructor takes array-likes; __post_init__ turns them into the fields' types
        def __init__(self, weight: ArrayLike, *, metadata: dict = ...) -> None: ...

    def __post_init__(self) -> None:
        w = param_array(self.weight, "Linear.weight")
        if w.ndim != 2:
            raise GraphError(f"Linear.weight: expected 2-D (out, in), got shape {w.shape}")
        object.__setattr__(self, "weight", w)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.weight.shape[1],)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.weight.shape[0],)


@dataclass(frozen=True, eq=False)
class Conv2d(Node):
    """2-D convolution, torch layout: weight (C_out, C_in/groups, kH, kW), input (C_in, H, W)."""

    input_shape_chw: tuple[int, int, int]
    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kind: ClassVar[str] = "Conv2d"
    is_synapse: ClassVar[bool] = True

    if TYPE_CHECKING:  # the constructor takes array-likes; __post_init__ turns them into the fields' types
        def __init__(self, input_shape_chw: ArrayLike, weight: ArrayLike, bias: ArrayLike, stride: ArrayLike = ...,
                     padding: ArrayLike = ..., dilation: ArrayLike = ..., groups: int = ..., *,
                     metadata: dict = ...) -> None: ...

    def __post_init__(self) -> None:
        chw = param_shape(self.input_shape_chw, "Conv2d.input_shape")
        if len(chw) != 3:
            raise GraphError(f"Conv2d.input_shape: expected (C, H, W), got {chw}")
        object.__setattr__(self, "input_shape_chw", chw)
        w = param_array(self.weight, "Conv2d.weight")
        if w.ndim != 4:
            raise GraphError(f"Conv2d.weight: expected 4-D (C_out, C_in/groups, kH, kW), got {w.shape}")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "stride", _pair(self.stride, "Conv2d.stride", 1))
        object.__setattr__(self, "padding", _pair(self.padding, "Conv2d.padding", 0))
        object.__setattr__(self, "dilation", _pair(self.dilation, "Conv2d.dilation", 1))
        try:
            groups = int(self.groups)
        except (TypeError, ValueError) as exc:
            raise GraphError(f"Conv2d.groups: not an integer ({self.groups!r})") from exc
        if groups < 1 or chw[0] % groups or w.shape[0] % groups or w.shape[1] * groups != chw[0]:
            raise GraphError(f"Conv2d: weight {w.shape} with groups={groups} does not take {chw[0]} input channels")
        object.__setattr__(self, "groups", groups)
        b = param_array(self.bias, "Conv2d.bias")
        if b.shape != (w.shape[0],):
            raise GraphError(f"Conv2d.bias: expected shape ({w.shape[0]},), got {b.shape}")
        object.__setattr__(self, "bias", b)
        if min(self.output_shape[1:]) < 1:
            raise GraphError(f"Conv2d: kernel {w.shape[2:]} does not fit input {chw[1:]} with padding {self.padding}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input_shape_chw

    @property
    def output_shape(self) -> tuple[int, ...]:
        h, w = conv_output_hw(self.input_shape_chw[1:], self.weight.shape[2:], self.stride, self.padding,
                              self.dilation)
        return (self.weight.shape[0], h, w)


@dataclass(frozen=True, eq=False)
class SumPool2d(Node):
    """Sum over kernel windows, per channel; input (C, H, W)."""

    input_shape_chw: tuple[int, int, int]
    kernel_size: tuple[int, int]
    stride: tuple[int, int] = None  # type: ignore[assignment]  # None: the kernel size, set by __post_init__
    padding: tuple[int, int] = (0, 0)
    kind: ClassVar[str] = "SumPool2d"
    is_synapse: ClassVar[bool] = True

    if TYPE_CHECKING:  # the constructor takes array-likes; __post_init__ turns them into the fields' types
        def __init__(self, input_shape_chw: ArrayLike, kernel_size: ArrayLike, stride: ArrayLike | None = ...,
                     padding: ArrayLike = ..., *, metadata: dict = ...) -> None: ...

    def __post_init__(self) -> None:
        chw = param_shape(self.input_shape_chw, f"{self.kind}.input_shape")
        if len(chw) != 3:
            raise GraphError(f"{self.kind}.input_shape: expected (C, H, W), got {chw}")
        object.__setattr__(self, "input_shape_chw", chw)
        k = _pair(self.kernel_size, f"{self.kind}.kernel_size", 1)
        object.__setattr__(self, "kernel_size", k)
        object.__setattr__(self, "stride", _pair(k if self.stride is None else self.stride,
                                                 f"{self.kind}.stride", 1))
        object.__setattr__(self, "padding", _pair(self.padding, f"{self.kind}.padding", 0))
        if min(self.output_shape[1:]) < 1:
            raise GraphError(f"{self.kind}: kernel {k} does not fit input {chw[1:]}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input_shape_chw

    @property
    def output_shape(self) -> tuple[int, ...]:
        h, w = conv_output_hw(self.input_shape_chw[1:], self.kernel_size, self.stride, self.padding)
        return (self.input_shape_chw[0], h, w)

    @property
    def scale(self) -> float:
        return 1.0


@dataclass(frozen=True, eq=False, init=False)  # SumPool2d's constructor
class AvgPool2d(SumPool2d):
    """Mean over kernel windows (zero padding counted, as torch's count_include_pad=True)."""

    kind: ClassVar[str] = "AvgPool2d"

    @property
    def scale(self) -> float:
        return 1.0 / (self.kernel_size[0] * self.kernel_size[1])


@dataclass(frozen=True, eq=False)
class Flatten(Node):
    """Flattens a per-sample tensor to 1-D, C-order (torch's nn.Flatten on (N, C, H, W))."""

    input_shape_any: tuple[int, ...]
    kind: ClassVar[str] = "Flatten"

    if TYPE_CHECKING:  # the constructor takes array-likes; __post_init__ turns them into the fields' types
        def __init__(self, input_shape_any: ArrayLike, *, metadata: dict = ...) -> None: ...

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape_any", param_shape(self.input_shape_any, "Flatten.input_shape"))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input_shape_any

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (math.prod(self.input_shape_any),)


# the stateless node types; neuron populations (LIF, IF, LI, ...) are models of ``neuromap.neurons``
STATELESS_TYPES: dict[str, type[Node]] = {
    cls.kind: cls for cls in (Input, Output, Affine, Linear, Conv2d, SumPool2d, AvgPool2d, Flatten)
}
