"""Exact integer products W @ x for a batch of presynaptic outputs, exploiting spike sparsity where it pays.

Every strategy returns exactly the accumulation Lava computes (``W[:, s].sum(1)`` or ``W @ payload``).
The float strategies are exact by a bound, not by luck: all operands are integers, and every partial sum
that any summation order (BLAS blocking, FMA, atomics) can form is a sum of a subset of the products
w_ij * x_j, so its magnitude is at most max_i sum_j |w_ij| * max|x| =: ``bound``. If bound < 2^24 (float32)
or < 2^53 (float64), every operand, product and partial sum is an integer the format represents exactly,
and IEEE addition of representable integers with a representable exact result is exact. TF32 (which
rounds operands) is used nowhere: on CUDA float32 is chosen only when torch's matmul precision is "highest".

Strategies (picked per projection by ``choose``):
* ``int8`` — binary spikes on the CPU: torch's int8 x int8 -> int32 matmul (oneDNN, VNNI) on W^T stored as
  int8 (W divided by the power of two that divides every weight, e.g. 2 for Lava's even mixed-sign weights,
  or split into 16 * high + low); exact in int32 while sum |w| < 2^31. It ignores spike sparsity but runs
  ~20x faster per operation than ``gather`` (AMD EPYC, AVX-512 VNNI, 1 thread: 6,400 x 784 x 512 in 8 ms).
* ``cpu_spikes`` — binary spikes on the CPU, the default: per call, ``gather`` where fewer than
  ``INT8_MIN_DENSITY`` of the inputs are active, else ``int8``.
* ``gather`` — binary spikes: sum the rows of a dense W^T of the active presynaptic neurons
  (``embedding_bag``); work ∝ active inputs x targets, streamed from contiguous rows. On the CPU this beat
  per-synapse work (scipy, torch sparse) even for 1 %-dense random and convolution matrices (1 thread,
  6,400 rows: 4000x4000 with 100 synapses per neuron and 8 % of inputs active, 2.1 s vs 4.8 s scipy and
  2.9 s torch sparse; a 1568->784 3x3 convolution 78 ms vs 400 ms).
* ``dense`` — a float matmul: graded payloads into a dense-enough W, and everything dense-enough on a GPU.
* ``torch_sparse`` — a torch sparse CSR W times the outputs: graded payloads into a sparse W; sparse W on a GPU.
* ``sparse`` — CPU, binary spikes into a W whose dense W^T would not fit memory: scipy CSR x CSR in int64
  (exact without any bound); work ∝ synaptic events.
* ``conv`` — a projection with a convolutional geometry (``hwsim.conv``, on ``Projection.conv``), the default
  for it on every device: the rows seen as (R, C, H, W) go through ``torch.nn.functional.conv2d`` with the
  integer kernels, stage by stage (a sum pool as ``avg_pool2d`` with divisor 1, then its per-channel weight),
  in float32 where every stage's bound (max|stage input| x its largest sum |kernel| over one output) is
  below 2^24, which holds for binary spikes into Loihi's 8-bit kernels up to a fan-in of 2^16. Graded
  payloads too wide for that are split into slices of b bits (x = sum_k x_k 2^(b k), b as large as the
  bound allows), each convolved exactly and recombined in int64; only a kernel whose sums alone exceed
  2^23 falls back to float64 (``exact_float_dtype``). The same dense kernels a float forward uses, no
  unrolled matrix.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from hwsim.conv import ConvGeometry, ConvStage
from hwsim.errors import SimOptionError
from hwsim.netdesc import NetDescError

STRATEGIES = ("cpu_spikes", "int8", "gather", "sparse", "dense", "torch_sparse", "conv")
FLOAT32_EXACT = 1 << 24  # integers up to this magnitude are exact in float32 (24-bit significand)
INT8_MIN_DENSITY = 0.04  # active inputs: gather costs ~ density * 20 int8 matmuls (measured, see above)
DENSE_MAX_ELEMENTS = 1 << 27  # a dense W^T above this (512 MiB in float32) is kept sparse
GRADED_DENSE_MIN_DENSITY = 0.08  # graded payloads: below this density a sparse W beats a dense matmul
GPU_DENSE_MIN_DENSITY = 0.01
INT8_SPLIT_MAX = 2047  # |w| up to this is 16 * high + low with high in int8 (w >> 4 >= -128) and low in [0, 15]


def exact_float_dtype(bound: int, device: torch.device) -> torch.dtype:
    """The narrowest float type whose integer range holds every partial sum (see the module docstring)."""
    tf32_off = device.type != "cuda" or (torch.get_float32_matmul_precision() == "highest"
                                         and not torch.backends.cuda.matmul.allow_tf32)
    if bound < (1 << 24) and tf32_off:
        return torch.float32
    if bound < (1 << 53):
        return torch.float64
    raise NetDescError(f"synaptic sums up to {bound} exceed 2^53; such a projection cannot be summed exactly "
                       "in floating point")


def choose(weights: sp.csr_matrix, graded: bool, device: torch.device) -> str:
    n_dst, n_src = weights.shape
    density = weights.nnz / max(n_dst * n_src, 1)
    fits_dense = n_dst * n_src <= DENSE_MAX_ELEMENTS
    if device.type == "cuda":
        return "dense" if fits_dense and density >= GPU_DENSE_MIN_DENSITY else "torch_sparse"
    if graded:
        return "dense" if fits_dense and density >= GRADED_DENSE_MIN_DENSITY else "torch_sparse"
    if weights.nnz and int(abs(weights.data).max()) > INT8_SPLIT_MAX:  # event tables: counts per core can be
        return "gather" if fits_dense else "sparse"                      # larger than 16 * high + low holds
    return "cpu_spikes" if fits_dense else "sparse"


def _active_indices(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column indices of the True entries of x (R, n), row by row, and where each row's entries start."""
    rows, n = x.shape
    if x.device.type == "cpu":  # numpy's flat nonzero is about twice as fast as torch's on the CPU
        flat = np.flatnonzero(x.contiguous().numpy())
        flat_row, flat_col = np.divmod(flat, n)
        starts = np.zeros(rows, np.int64)
        np.cumsum(np.bincount(flat_row, minlength=rows)[:-1], out=starts[1:])
        return torch.from_numpy(flat_col), torch.from_numpy(starts)
    row, col = x.nonzero(as_tuple=True)
    return col, torch.searchsorted(row, torch.arange(rows, device=x.device))


def _power_of_two_exponent(weights: sp.csr_matrix) -> int:
    """The largest e <= 8 such that 2^e divides every weight (1 for Lava's even mixed-sign weights): the
    trailing zero bits of all weights OR-ed together (in two's complement, a negative weight has the same)."""
    combined = int(np.bitwise_or.reduce(weights.data.astype(np.int64, copy=False), initial=0))
    if combined == 0:  # no nonzero weight
        return 0
    return min(8, (combined & -combined).bit_length() - 1)


def _int8_parts(weights: sp.csr_matrix) -> list[tuple[int, torch.Tensor]]:
    """W^T as int8 matrices P_k with W^T = sum_k scale_k * P_k: W itself, or 16 * high + low. ``weights``
    (int64) must be canonical (no duplicate entries): the parts are split entry by entry, before densifying."""
    if weights.shape[1] >= 1 << 23:  # 128 * rows must stay below 2^31 for the int32 accumulator
        raise NetDescError(f"{weights.shape[1]} presynaptic neurons overflow an int32 accumulator")
    data = weights.data
    if data.size == 0 or (data.min() >= -128 and data.max() <= 127):
        parts = [(1, data)]
    else:  # high = w >> 4 in [-128, 127] for |w| <= INT8_SPLIT_MAX, low in [0, 15]
        if int(np.abs(data).max()) > INT8_SPLIT_MAX:
            raise SimOptionError(f"weights up to {int(np.abs(data).max())} do not split into int8 parts (at most "
                                 f"{INT8_SPLIT_MAX}); use another synapse strategy", field="synapses",
                                 value=int(np.abs(data).max()), allowed=INT8_SPLIT_MAX)
        high = data >> 4
        parts = [(16, high), (1, data - (high << 4))]
    # W' densified, then transposed into a fresh C-order array: _int_mm reads the row stride even of a
    # single-row matrix, which a transposed view of an (n, 1) array leaves at 1
    return [(scale, torch.from_numpy(sp.csr_matrix((part.astype(np.int8), weights.indices, weights.indptr),
                                                   shape=weights.shape).toarray().T.copy()))
            for scale, part in parts]


def _conv_bits(unit: int, x_max: int) -> int | None:
    """Payload slice width b for a chain whose stages' bound per unit of input is ``unit``: the largest b
    with unit * 2^b < 2^24 (every slice, |top| <= 2^b included, then sums exactly in float32); None where
    the payloads need no slicing or where even 1-bit slices would not be exact (float64 then)."""
    if unit * x_max < FLOAT32_EXACT or 2 * unit >= FLOAT32_EXACT:
        return None
    return ((FLOAT32_EXACT - 1) // unit).bit_length() - 1


class ExactConv:
    """A ``ConvGeometry`` run with torch's convolutions on exact integers (the ``conv`` strategy)."""

    def __init__(self, geometry: ConvGeometry, x_max: int, device: torch.device) -> None:
        self.geometry = geometry
        unit = max(geometry.stage_bounds(1), default=1)
        bits = _conv_bits(unit, x_max)
        # cuDNN's TF32 (which rounds operands) is switched off around every call (``__call__``)
        if bits is not None:
            self.slice_bits, self.slices = bits, -(-int(x_max).bit_length() // bits)
            self.dtype = torch.float32
        else:
            self.slice_bits, self.slices = 0, 1
            self.dtype = torch.float32 if unit * int(x_max) < FLOAT32_EXACT else torch.float64
            if unit * int(x_max) >= 1 << 53:
                raise NetDescError(f"convolution sums up to {unit * int(x_max)} exceed 2^53; they cannot be "
                                   "summed exactly in floating point")
        self.stages = [self._prepare(stage, device) for stage in geometry.stages]

    def _prepare(self, stage: ConvStage, device: torch.device) -> tuple[str, torch.Tensor | None, ConvStage]:
        """A sum pool (one constant per channel, no dilation, padding at most half the window, as
        avg_pool2d requires) runs as a window sum then a per-channel product; anything else as conv2d."""
        constant = stage.channel_constant()
        kh, kw = stage.kernel.shape[2:]
        poolable = (constant is not None and stage.dilation == (1, 1)
                    and stage.padding[0] <= kh // 2 and stage.padding[1] <= kw // 2)
        if poolable:
            assert constant is not None  # poolable implies it
            scale = None if (constant == 1).all() else torch.tensor(constant, dtype=self.dtype, device=device)
            return "pool", None if scale is None else scale.view(1, -1, 1, 1), stage
        return "conv", torch.tensor(stage.kernel, dtype=self.dtype, device=device), stage

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        for kind, tensor, stage in self.stages:
            if kind == "pool":
                x = F.avg_pool2d(x, stage.kernel.shape[2:], stage.stride, stage.padding, divisor_override=1)
                if tensor is not None:
                    x = x.mul_(tensor)
            else:
                assert tensor is not None  # a conv stage carries its kernel
                x = F.conv2d(x, tensor, None, stage.stride, stage.padding, stage.dilation, stage.groups)
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (R, in size) bool or int64 -> (R, out size), exact integers (float, or int64 when sliced)."""
        rows = x.shape[0]
        frames = x.reshape(rows, *self.geometry.input_shape)
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, benchmark=torch.backends.cudnn.benchmark,
                                        deterministic=torch.backends.cudnn.deterministic, allow_tf32=False):
            if self.slices == 1:
                return self._run(frames.to(self.dtype)).reshape(rows, -1)
            mask = (1 << self.slice_bits) - 1
            total = None
            for k in range(self.slices):
                part = frames >> (self.slice_bits * k)  # floor shift: the top slice keeps the sign
                if k < self.slices - 1:
                    part = part & mask
                exact = self._run(part.to(self.dtype)).to(torch.int64)
                total = exact if total is None else total.add_(exact.mul_(1 << (self.slice_bits * k)))
            assert total is not None  # at least one slice
            return total.reshape(rows, -1)


class SynapseOp:
    """x (R, n_src) -> W @ x per row (R, n_dst), exactly; x is bool (binary) or int64 (graded).

    For binary spikes W = 2^exp * W' with the largest power of two that divides every weight, and the call
    returns W' @ x (the caller folds 2^exp into its own shift; ``exact`` applies it). That halves Lava's even
    mixed-sign weights into int8 range."""

    def __init__(self, weights: sp.csr_matrix, x_max: int, device: torch.device, strategy: str | None = None,
                 graded: bool = False, conv: ConvGeometry | None = None) -> None:
        self.strategy = strategy or ("conv" if conv is not None else choose(weights, graded, device))
        if self.strategy not in STRATEGIES:
            raise SimOptionError(f"unknown synapse strategy {self.strategy!r}; one of {STRATEGIES}", field="synapses",
                                 value=self.strategy, allowed=STRATEGIES)
        if self.strategy == "conv" and conv is None:
            raise SimOptionError("strategy 'conv' needs every projection to have a conv geometry "
                                 "(hwsim.netdesc.Projection.conv)", field="synapses", value=self.strategy)
        if self.strategy in ("sparse", "int8", "cpu_spikes") and device.type != "cpu":
            raise SimOptionError(f"strategy {self.strategy!r} runs on the CPU only", field="synapses",
                                 value=self.strategy, allowed=("cpu",))
        if self.strategy in ("int8", "cpu_spikes") and graded:
            raise SimOptionError(f"strategy {self.strategy!r} takes binary spikes only", field="synapses",
                                 value=self.strategy)
        self.device = device
        self.n_dst, self.n_src = weights.shape
        if self.strategy == "conv":
            assert conv is not None  # checked above
            self.exp = 0
            self.bound = int(np.asarray(abs(weights).sum(axis=1, dtype=np.int64)).max(initial=0)) * int(x_max)
            self.conv = ExactConv(conv, x_max, device)
            return
        self.exp = 0 if graded else _power_of_two_exponent(weights)
        weights = weights.astype(np.int64)  # a copy: W' = W / 2^exp
        weights.sum_duplicates()
        weights.data >>= self.exp
        bound = int(np.asarray(abs(weights).sum(axis=1)).max(initial=0)) * int(x_max)
        self.bound = bound  # |W' @ x| <= bound for every row
        if self.strategy == "sparse":
            self.wt = weights.T.tocsr()  # int64: the accumulation cannot overflow and needs no bound
            return
        if self.strategy in ("int8", "cpu_spikes"):
            self.int8_parts = _int8_parts(weights)
            if self.strategy == "int8":
                return
        self.dtype = exact_float_dtype(bound, device)
        if self.strategy == "torch_sparse":
            with warnings.catch_warnings():  # "sparse CSR support is in beta": the product used here is stable
                warnings.simplefilter("ignore", UserWarning)
                self.w = torch.sparse_csr_tensor(torch.from_numpy(weights.indptr.astype(np.int64)),
                                                 torch.from_numpy(weights.indices.astype(np.int64)),
                                                 torch.from_numpy(weights.data), size=weights.shape,
                                                 dtype=self.dtype, device=device)
        else:
            self._weights = weights  # densified on first use: ``cpu_spikes`` often never gathers

    @functools.cached_property
    def wt(self) -> torch.Tensor:
        """Dense W^T in the exact float type, so that the rows gathered by embedding_bag / hit by the matmul
        are presynaptic neurons (the ``sparse`` strategy sets its own CSR ``wt`` instead)."""
        return torch.from_numpy(self._weights.T.toarray()).to(device=self.device, dtype=self.dtype).contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Exact integer results, as int32, int64 or the strategy's float type."""
        strategy = self.strategy
        if strategy == "conv":
            return self.conv(x)
        if strategy == "cpu_spikes":  # the density of every 16th row decides; both results are exact
            sample = x[::16]
            active = int(sample.view(torch.uint8).sum(dtype=torch.int64)) / max(sample.numel(), 1)
            strategy = "gather" if active < INT8_MIN_DENSITY else "int8"
        if strategy == "int8":
            x8 = x.view(torch.int8)
            parts = [(scale, torch._int_mm(x8, part)) for scale, part in self.int8_parts]
            if len(parts) == 1:
                return parts[0][1]
            (scale, high), (_, low) = parts
            return high.to(torch.int64).mul_(scale).add_(low)
        if strategy == "gather":
            col, offsets = _active_indices(x)
            acc = F.embedding_bag(col, self.wt, offsets, mode="sum")
        elif self.strategy == "dense":
            acc = x.to(self.dtype) @ self.wt
        elif self.strategy == "torch_sparse":
            acc = (self.w @ x.to(self.dtype).T).T
        else:
            return torch.from_numpy(self._scipy(x.numpy()))
        return acc

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        """W @ x as int64."""
        return self(x).to(torch.int64) * (1 << self.exp)

    def _scipy(self, x: np.ndarray) -> np.ndarray:
        if x.dtype == np.bool_:
            row, col = np.nonzero(x)
            xs = sp.csr_matrix((np.ones(row.size, np.int64), (row, col)), shape=x.shape)
        else:
            xs = sp.csr_matrix(x.astype(np.int64))
        return (xs @ self.wt).toarray()
