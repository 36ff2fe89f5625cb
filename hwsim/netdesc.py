"""The plain description of a placed, quantized network: what hwsim (and Lava's fixed_pt backend) run.

The compiler in ``neuromap`` lowers its IR to this; hwsim never imports neuromap. Everything here is
integers in the chip's formats, in Lava's conventions (docs/architecture.md, "Fixed-point step"):

* a projection carries integer weights ``w`` (CSR, shape (dst.size, src.size)) already legal for
  Lava's Dense/Sparse at num_weight_bits=8 (mixed-sign weights even, so Lava's truncation is a no-op),
  and ``weight_exp``: the accumulated sum is shifted left by it (right if negative);
  every projection delays by exactly one step;
* a population holds per-neuron ``vth`` (mantissa, compared as v > vth << 6), ``du`` (Lava's current
  decay: factor (4096 - (du + 1)) / 4096, so 4095 = no current memory, -1 = no decay), ``dv``
  (voltage decay: factor (4096 - dv) / 4096, 0 = no leak, 4096 = full leak), ``bias_mant``/``bias_exp``
  (bias = bias_mant << bias_exp), ``v_init`` (state units, i.e. already << 6), the reset rule,
  and the core each neuron is placed on;
* an input port emits binary spikes (``graded_bits == 0``) or integer payloads of ``graded_bits`` bits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from hwsim.errors import HwsimError

STATE_BITS = 24
STATE_MAX = (1 << (STATE_BITS - 1)) - 1
VTH_MAX = (1 << 17) - 1
DECAY_UNITY = 4096
BIAS_MANT_MAX = 4095
RESETS = ("subtract", "zero")
RESET_TIMINGS = ("immediate", "next_step")
KINDS = ("spiking", "integrator")


class NetDescError(HwsimError, ValueError):
    """The description breaks one of the rules above; the message names the item and the rule."""


def _int_vector(value: Any, n: int, what: str, lo: int, hi: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iub":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise NetDescError(f"{what}: values must be integers")
    arr = np.broadcast_to(arr.astype(np.int64), (n,)).copy()
    if n and (arr.min() < lo or arr.max() > hi):
        raise NetDescError(f"{what}: values must lie in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]", field=what,
                           value=(int(arr.min()), int(arr.max())), allowed=(lo, hi))
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class InputPort:
    name: str
    size: int
    graded_bits: int = 0

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise NetDescError(f"input {self.name!r}: size must be positive")
        if not 0 <= self.graded_bits <= 24:
            raise NetDescError(f"input {self.name!r}: graded_bits must lie in [0, 24]")


@dataclass(frozen=True, eq=False)
class Population:
    name: str
    size: int
    vth: np.ndarray
    du: np.ndarray
    dv: np.ndarray
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    v_init: np.ndarray
    core: np.ndarray
    reset: str = "subtract"
    reset_timing: str = "immediate"
    kind: str = "spiking"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = int(self.size)
        if n <= 0:
            raise NetDescError(f"population {self.name!r}: size must be positive")
        checks = {"vth": (0, VTH_MAX), "du": (-1, DECAY_UNITY - 1), "dv": (0, DECAY_UNITY),
                  "bias_mant": (-BIAS_MANT_MAX - 1, BIAS_MANT_MAX), "bias_exp": (-8, 7),
                  "v_init": (-STATE_MAX, STATE_MAX), "core": (0, 1 << 30)}
        for name, (lo, hi) in checks.items():
            object.__setattr__(self, name, _int_vector(getattr(self, name), n, f"population {self.name!r}.{name}",
                                                       lo, hi))
        if self.reset not in RESETS:
            raise NetDescError(f"population {self.name!r}.reset: {self.reset!r} not in {RESETS}", node=self.name,
                               field="reset", value=self.reset, allowed=RESETS)
        if self.reset_timing not in RESET_TIMINGS:
            raise NetDescError(f"population {self.name!r}.reset_timing: {self.reset_timing!r} not in {RESET_TIMINGS}",
                               node=self.name, field="reset_timing", value=self.reset_timing, allowed=RESET_TIMINGS)
        if self.kind not in KINDS:
            raise NetDescError(f"population {self.name!r}.kind: {self.kind!r} not in {KINDS}", node=self.name,
                               field="kind", value=self.kind, allowed=KINDS)

    @property
    def bias(self) -> np.ndarray:
        """bias_mant << bias_exp (right shift, floor, for a negative exponent), in state units."""
        be = self.bias_exp
        return np.where(be >= 0, self.bias_mant << np.maximum(be, 0), self.bias_mant >> np.maximum(-be, 0))


@dataclass(frozen=True, eq=False)
class Projection:
    name: str
    src: str
    dst: str
    weights: sp.csr_matrix
    weight_exp: int = 0
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        w = sp.csr_matrix(self.weights)
        if w.dtype.kind not in "iu":
            data = w.data
            if not np.array_equal(data, np.round(data)):
                raise NetDescError(f"projection {self.name!r}: weights must be integers")
        w = sp.csr_matrix(w, dtype=np.int32)
        w.eliminate_zeros()
        w.sort_indices()
        if w.nnz:
            lo, hi = int(w.data.min()), int(w.data.max())
            mixed = lo < 0 < hi
            if mixed and (lo < -256 or hi > 254 or (w.data % 2).any()):
                raise NetDescError(f"projection {self.name!r}: mixed-sign weights must be even and in [-256, 254] "
                                   f"(Lava drops their lowest bit), got [{lo}, {hi}]", node=self.name,
                                   field="weights", value=(lo, hi), allowed=(-256, 254))
            if not mixed and max(abs(lo), abs(hi)) > 255:
                raise NetDescError(f"projection {self.name!r}: single-sign weights must have magnitude <= 255",
                                   node=self.name, field="weights", value=(lo, hi), allowed=255)
        if not -8 <= int(self.weight_exp) <= 7:
            raise NetDescError(f"projection {self.name!r}: weight_exp must lie in [-8, 7]", node=self.name,
                               field="weight_exp", value=self.weight_exp, allowed=(-8, 7))
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "weight_exp", int(self.weight_exp))


@dataclass(frozen=True, eq=False)
class Core:
    index: int
    chip: int
    x: int
    y: int


@dataclass(frozen=True, eq=False)
class QuantNetwork:
    """Inputs, populations and projections in a topological order, the cores, and the read-out."""

    inputs: tuple[InputPort, ...]
    populations: tuple[Population, ...]
    projections: tuple[Projection, ...]
    cores: tuple[Core, ...]
    outputs: tuple[str, ...]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        for item in (*self.inputs, *self.populations):
            if item.name in sizes:
                raise NetDescError(f"name {item.name!r} is used twice")
            sizes[item.name] = item.size
        pop_names = {p.name for p in self.populations}
        core_ids = {c.index for c in self.cores}
        for p in self.populations:
            missing = set(np.unique(p.core).tolist()) - core_ids
            if missing:
                raise NetDescError(f"population {p.name!r}: placed on unknown core {min(missing)}")
        order = {name: i for i, name in enumerate([*(i.name for i in self.inputs), *(p.name for p in self.populations)])}
        for pr in self.projections:
            if pr.src not in sizes:
                raise NetDescError(f"projection {pr.name!r}: unknown source {pr.src!r}", node=pr.name, field="src",
                                   value=pr.src)
            if pr.dst not in pop_names:
                raise NetDescError(f"projection {pr.name!r}: destination {pr.dst!r} is not a population")
            if pr.weights.shape != (sizes[pr.dst], sizes[pr.src]):
                raise NetDescError(f"projection {pr.name!r}: weights {pr.weights.shape} but {pr.dst!r} x {pr.src!r} "
                                   f"is {(sizes[pr.dst], sizes[pr.src])}")
            if order[pr.src] >= order[pr.dst]:
                raise NetDescError(f"projection {pr.name!r}: {pr.src!r} must come before {pr.dst!r} (no recurrence)")
        for o in self.outputs:
            if o not in pop_names:
                raise NetDescError(f"output {o!r} is not a population")

    def population(self, name: str) -> Population:
        return next(p for p in self.populations if p.name == name)

    def incoming(self, name: str) -> list[Projection]:
        return [pr for pr in self.projections if pr.dst == name]

    def input_port(self, name: str) -> InputPort | None:
        return next((i for i in self.inputs if i.name == name), None)
