"""The plain description of a placed, quantized network: what hwsim (and Lava's fixed_pt backend) run.

The compiler in ``neuromap`` lowers its IR to this; hwsim never imports neuromap. Everything here is
integers in the chip's formats, in Lava's conventions (docs/architecture.md, "Fixed-point step"):

* a projection carries integer weights ``w`` (CSR, shape (dst.size, src.size)) already legal for
  Lava's Dense/Sparse at num_weight_bits=8 (mixed-sign weights even, so Lava's truncation is a no-op),
  and ``weight_exp``: the accumulated sum is shifted left by it (right if negative);
  every projection delays by exactly one step, a recurrent one too (its source is its destination or a
  later population of a cycle: ``QuantNetwork.components``);
* a population holds per-neuron ``vth`` (mantissa, compared as v > vth << activation_shift), ``du``
  (Lava's current decay: factor (U - (du + 1)) / U with the decay unity U = 2^decay_bits, 4096 on Loihi, so
  U - 1 = no current memory, -1 = no decay), ``dv`` (voltage decay: factor (U - dv) / U, 0 = no leak,
  U = full leak), ``bias_mant``/``bias_exp`` (bias = bias_mant << bias_exp), ``v_init`` and ``u_init`` (the
  state at step 0, in state units, i.e. already << activation_shift), the reset rule, the core each neuron
  is placed on, and ``model``: the ``hwsim.models`` entry whose fixed-point update runs it ("lif", the rule above);
* an input port emits binary spikes (``graded_bits == 0``) or integer payloads of ``graded_bits`` bits;
  an ``always_on`` port spikes on every one of its lines at every step and takes no data (a bias axon:
  a constant input current into u, delivered from step 2 by the one-step delay, which a population's
  ``u_init`` makes up for at step 1);
* ``QuantNetwork.formats`` (a ``Formats``, default ``LOIHI``) fixes the widths above and the state width;
  every value is validated against it, and hwsim computes in it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from hwsim.conv import ConvGeometry
from hwsim.errors import HwsimError
from hwsim.models import known_models
from mappings.target import Target

RESETS = ("subtract", "zero")
RESET_TIMINGS = ("immediate", "next_step")
KINDS = ("spiking", "integrator")


class NetDescError(HwsimError, ValueError):
    """The description breaks one of the rules above; the message names the item and the rule."""


def _int_vector(value: Any, n: int, what: str, lo: int | None = None, hi: int | None = None) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iub" and not (np.all(np.isfinite(arr)) and np.array_equal(arr, np.round(arr))):
        raise NetDescError(f"{what}: values must be integers")
    arr = np.broadcast_to(arr.astype(np.int64), (n,)).copy()
    if n and lo is not None and hi is not None and (arr.min() < lo or arr.max() > hi):
        raise NetDescError(f"{what}: values must lie in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]", field=what,
                           value=(int(arr.min()), int(arr.max())), allowed=(lo, hi))
    arr.setflags(write=False)
    return arr


# What hwsim implements, per format field: u, v and their traces are int32 (and Lava's channel sums are),
# so a state of up to 31 bits; du, dv (up to the unity 2^decay_bits) are int32 in Lava's model, and decay
# products (state x factor) stay inside int64; graded payloads up to 24 bits keep the exact float synaptic
# sums of hwsim.synapse in range.
IMPLEMENTED = {"state_bits": (2, 31), "decay_bits": (1, 30), "activation_shift": (0, 30), "vth_bits": (1, 30),
               "bias_mant_bits": (2, 31), "bias_exp_min": (-31, 31), "bias_exp_max": (-31, 31),
               "weight_exp_min": (-31, 31), "weight_exp_max": (-31, 31), "graded_bits": (0, 24)}
GRADED_BITS_MAX = IMPLEMENTED["graded_bits"][1]


@dataclass(frozen=True)
class Formats:
    """A chip's fixed-point formats (docs/architecture.md, "Fixed-point step"): u and v are signed
    ``state_bits`` integers (u wraps once at 2^(state_bits-1), v saturates at 2^(state_bits-1) - 1); decays
    are in units of 1/2^decay_bits; synaptic input and thresholds are shifted left by ``activation_shift``;
    vth is an unsigned ``vth_bits`` mantissa; bias_mant a signed ``bias_mant_bits`` one with its exponent in
    [bias_exp_min, bias_exp_max]; a projection's weight_exp lies in [weight_exp_min, weight_exp_max]; input
    payloads have at most ``graded_bits`` bits. Validated at construction against what hwsim implements
    (``IMPLEMENTED``); the message names the field."""

    state_bits: int
    decay_bits: int
    activation_shift: int
    vth_bits: int
    bias_mant_bits: int
    bias_exp_min: int
    bias_exp_max: int
    weight_exp_min: int
    weight_exp_max: int
    graded_bits: int

    def __post_init__(self) -> None:
        for name, (lo, hi) in IMPLEMENTED.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise NetDescError(f"formats.{name} = {value!r}: hwsim implements {lo}..{hi}")
        for lo_name, hi_name in (("bias_exp_min", "bias_exp_max"), ("weight_exp_min", "weight_exp_max")):
            if getattr(self, lo_name) > getattr(self, hi_name):
                raise NetDescError(f"formats.{lo_name} = {getattr(self, lo_name)} exceeds {hi_name} = "
                                   f"{getattr(self, hi_name)}")
        if self.vth_bits + self.activation_shift > self.state_bits:
            raise NetDescError(f"formats.vth_bits = {self.vth_bits}: + activation_shift {self.activation_shift} "
                               f"exceeds state_bits {self.state_bits}")

    @classmethod
    def from_target(cls, target: Target) -> Formats:
        """The formats of a target's [neuron] table. Payloads wider than hwsim carries (Loihi 2 allows 32
        bits) are offered up to ``GRADED_BITS_MAX``: the target's capacity, not its arithmetic."""
        n = target.neuron
        try:
            return cls(state_bits=n.state_bits, decay_bits=n.decay_bits, activation_shift=n.activation_shift,
                       vth_bits=n.vth_bits, bias_mant_bits=n.bias_mant_bits, bias_exp_min=n.bias_exp_min,
                       bias_exp_max=n.bias_exp_max, weight_exp_min=n.weight_exp_min,
                       weight_exp_max=n.weight_exp_max, graded_bits=min(n.graded_spike_bits, GRADED_BITS_MAX))
        except NetDescError as exc:  # name the file and table the user edits, not the dataclass
            raise NetDescError(f"{target.source}: [neuron] {str(exc).removeprefix('formats.')}") from None

    @property
    def decay_unity(self) -> int:
        """The decay factor that keeps a value whole: 2^decay_bits."""
        return 1 << self.decay_bits

    @property
    def half_range(self) -> int:
        """2^(state_bits - 1): u wraps once when it leaves (-half_range, half_range]."""
        return 1 << (self.state_bits - 1)

    @property
    def state_max(self) -> int:
        """v saturates at +-(2^(state_bits - 1) - 1)."""
        return self.half_range - 1

    @property
    def vth_max(self) -> int:
        return (1 << self.vth_bits) - 1

    @property
    def bias_mant_range(self) -> tuple[int, int]:
        return -(1 << (self.bias_mant_bits - 1)), (1 << (self.bias_mant_bits - 1)) - 1

    def legal_ranges(self) -> dict[str, tuple[int, int]]:
        """Per population field, the values these formats can hold."""
        unity = self.decay_unity
        return {"vth": (0, self.vth_max), "du": (-1, unity - 1), "dv": (0, unity),
                "bias_mant": self.bias_mant_range, "bias_exp": (self.bias_exp_min, self.bias_exp_max),
                "v_init": (-self.state_max, self.state_max), "u_init": (-self.state_max, self.state_max)}


# Loihi's neuro-core, as Lava's fixed_pt LIF computes it (docs/reference/loihi_lava.md §2.1, §2.3): 24-bit u and v,
# 12-bit decays (unity 4096), act/vth shift 6, 17-bit vth mantissa, 13-bit signed bias mantissa, weight_exp in
# [-8, 7]. bias_exp keeps hwsim's historical [-8, 7] (a negative exponent floors; neuromap's compiler uses 0..7,
# the target files' range) and payloads the 24 bits hwsim carries, so hand-built descriptions keep meaning Loihi.
LOIHI = Formats(state_bits=24, decay_bits=12, activation_shift=6, vth_bits=17, bias_mant_bits=13,
                bias_exp_min=-8, bias_exp_max=7, weight_exp_min=-8, weight_exp_max=7, graded_bits=GRADED_BITS_MAX)


@dataclass(frozen=True, eq=False)
class InputPort:
    name: str
    size: int
    graded_bits: int = 0
    always_on: bool = False  # spikes every step, no data (a bias axon)

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise NetDescError(f"input {self.name!r}: size must be positive")
        if self.graded_bits < 0:
            raise NetDescError(f"input {self.name!r}: graded_bits must be >= 0")
        if self.always_on and self.graded_bits:
            raise NetDescError(f"input {self.name!r}: an always-on port sends binary spikes (graded_bits 0)",
                               node=self.name, field="graded_bits", value=self.graded_bits, allowed=0)


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
    model: str = "lif"  # the hwsim.models entry whose fixed-point update runs this population
    u_init: np.ndarray = field(default_factory=lambda: np.zeros((), dtype=np.int64))  # u at step 0

    if TYPE_CHECKING:  # the constructor takes array-likes; __post_init__ turns them into the fields' types
        def __init__(self, name: str, size: int, vth: ArrayLike, du: ArrayLike, dv: ArrayLike, bias_mant: ArrayLike,
                     bias_exp: ArrayLike, v_init: ArrayLike, core: ArrayLike, reset: str = ..., reset_timing: str = ...,
                     kind: str = ..., meta: dict = ..., model: str = ..., u_init: ArrayLike = ...) -> None: ...

    def __post_init__(self) -> None:
        n = int(self.size)
        if n <= 0:
            raise NetDescError(f"population {self.name!r}: size must be positive")
        # the parameters' ranges depend on the chip's formats: QuantNetwork checks them (Formats.legal_ranges)
        for name in ("vth", "du", "dv", "bias_mant", "bias_exp", "v_init", "u_init"):
            object.__setattr__(self, name, _int_vector(getattr(self, name), n, f"population {self.name!r}.{name}"))
        object.__setattr__(self, "core", _int_vector(self.core, n, f"population {self.name!r}.core", 0, 1 << 30))
        if self.reset not in RESETS:
            raise NetDescError(f"population {self.name!r}.reset: {self.reset!r} not in {RESETS}", node=self.name,
                               field="reset", value=self.reset, allowed=RESETS)
        if self.reset_timing not in RESET_TIMINGS:
            raise NetDescError(f"population {self.name!r}.reset_timing: {self.reset_timing!r} not in {RESET_TIMINGS}",
                               node=self.name, field="reset_timing", value=self.reset_timing, allowed=RESET_TIMINGS)
        if self.kind not in KINDS:
            raise NetDescError(f"population {self.name!r}.kind: {self.kind!r} not in {KINDS}", node=self.name,
                               field="kind", value=self.kind, allowed=KINDS)
        if self.model not in known_models():
            raise NetDescError(f"population {self.name!r}.model: {self.model!r} is not a registered neuron model "
                               f"(known: {', '.join(known_models())})", node=self.name, field="model",
                               value=self.model, allowed=known_models())

    @property
    def bias(self) -> np.ndarray:
        """bias_mant << bias_exp (right shift, floor, for a negative exponent), in state units."""
        be = self.bias_exp
        return np.where(be >= 0, self.bias_mant << np.maximum(be, 0), self.bias_mant >> np.maximum(-be, 0))


@dataclass(frozen=True, eq=False)
class Projection:
    """Integer weights from ``src`` to ``dst`` (a (dst, src) CSR matrix) with their exponent. ``conv``: the
    convolutional geometry the weights come from, so that hwsim runs them as convolutions; given alone, the
    weights are unrolled from it, given with ``weights`` it must describe exactly those."""

    name: str
    src: str
    dst: str
    weights: sp.csr_matrix = None  # None: unrolled from ``conv`` by __post_init__
    weight_exp: int = 0
    meta: dict = field(default_factory=dict)
    conv: ConvGeometry | None = None

    if TYPE_CHECKING:  # the constructor takes any sparse or dense matrix, or none with a ``conv`` geometry
        def __init__(self, name: str, src: str, dst: str, weights: ArrayLike | sp.spmatrix | None = ...,
                     weight_exp: int = ..., meta: dict = ..., conv: ConvGeometry | None = ...) -> None: ...

    def __post_init__(self) -> None:
        if self.conv is not None and not isinstance(self.conv, ConvGeometry):
            raise NetDescError(f"projection {self.name!r}.conv: a hwsim.conv.ConvGeometry, got "
                               f"{type(self.conv).__name__}", node=self.name, field="conv")
        if self.weights is not None:
            w = sp.csr_matrix(self.weights)
        elif self.conv is not None:
            w = self.conv.matrix()
        else:
            raise NetDescError(f"projection {self.name!r}: give its weights or its conv geometry", node=self.name,
                               field="weights")
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
        if self.conv is not None and self.weights is not None:
            self._check_conv(w)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "weight_exp", int(self.weight_exp))

    def _check_conv(self, w: sp.csr_matrix) -> None:
        """The geometry unrolls to exactly ``w`` (canonical CSR, zeros eliminated, indices sorted)."""
        assert self.conv is not None  # called only with a geometry
        expected = self.conv.matrix()
        if expected.shape != w.shape:
            raise NetDescError(f"projection {self.name!r}.conv: the geometry maps {expected.shape[1]} to "
                               f"{expected.shape[0]} neurons, the weights {w.shape[1]} to {w.shape[0]}",
                               node=self.name, field="conv", value=expected.shape, allowed=w.shape)
        same = (np.array_equal(expected.indptr, w.indptr) and np.array_equal(expected.indices, w.indices)
                and np.array_equal(expected.data, w.data))
        if not same:
            differ = int((expected != w.astype(np.int64)).nnz)
            raise NetDescError(f"projection {self.name!r}.conv: the geometry's kernels differ from the weights in "
                               f"{differ:,} of {w.shape[0] * w.shape[1]:,} entries", node=self.name, field="conv",
                               value=differ)


@dataclass(frozen=True, eq=False)
class Core:
    index: int
    chip: int
    x: int
    y: int


@dataclass(frozen=True, eq=False)
class QuantNetwork:
    """Inputs, populations and projections, the cores, and the read-out.

    ``populations`` is a topological order of the feed-forward part: a projection between populations of
    different strongly connected components goes from an earlier population to a later one. Inside a
    component (a cycle of projections, or a population projecting onto itself) projections may point
    anywhere: those are the recurrent ones, delayed by one step like every projection. ``components`` (set
    at construction) lists the components in an order in which each one's sources come first."""

    inputs: tuple[InputPort, ...]
    populations: tuple[Population, ...]
    projections: tuple[Projection, ...]
    cores: tuple[Core, ...]
    outputs: tuple[str, ...]
    meta: dict = field(default_factory=dict)
    formats: Formats = LOIHI
    # population names per strongly connected component, in a topological order of the components
    # (ties in the order of ``populations``); members in the order of ``populations``
    components: tuple[tuple[str, ...], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._check_formats()
        sizes: dict[str, int] = {}
        items: tuple[InputPort | Population, ...] = (*self.inputs, *self.populations)
        for item in items:
            if item.name in sizes:
                raise NetDescError(f"name {item.name!r} is used twice")
            sizes[item.name] = item.size
        pop_names = {p.name for p in self.populations}
        core_ids = {c.index for c in self.cores}
        for p in self.populations:
            missing = set(np.unique(p.core).tolist()) - core_ids
            if missing:
                raise NetDescError(f"population {p.name!r}: placed on unknown core {min(missing)}")
        integrators = {p.name for p in self.populations if p.kind == "integrator"}
        for pr in self.projections:
            if pr.src not in sizes:
                raise NetDescError(f"projection {pr.name!r}: unknown source {pr.src!r}", node=pr.name, field="src",
                                   value=pr.src)
            if pr.dst not in pop_names:
                raise NetDescError(f"projection {pr.name!r}: destination {pr.dst!r} is not a population")
            if pr.weights.shape != (sizes[pr.dst], sizes[pr.src]):
                raise NetDescError(f"projection {pr.name!r}: weights {pr.weights.shape} but {pr.dst!r} x {pr.src!r} "
                                   f"is {(sizes[pr.dst], sizes[pr.src])}")
            if pr.src in integrators:
                raise NetDescError(f"projection {pr.name!r}: source {pr.src!r} is an integrator, which sends nothing "
                                   "on the chip", node=pr.name, field="src", value=pr.src)
        object.__setattr__(self, "components", self._components())
        for o in self.outputs:
            if o not in pop_names:
                raise NetDescError(f"output {o!r} is not a population")

    def _components(self) -> tuple[tuple[str, ...], ...]:
        """The strongly connected components of the populations, checking that ``populations`` orders the
        projections between them (a backward projection must close a cycle)."""
        names = (*(i.name for i in self.inputs), *(p.name for p in self.populations))
        order = {name: i for i, name in enumerate(names)}
        links = nx.DiGraph()
        links.add_nodes_from(p.name for p in self.populations)
        links.add_edges_from((pr.src, pr.dst) for pr in self.projections if pr.src in links)
        condensed = nx.condensation(links)
        member = condensed.graph["mapping"]
        for pr in self.projections:
            if order[pr.src] >= order[pr.dst] and (pr.src not in member or member[pr.src] != member[pr.dst]):
                raise NetDescError(f"projection {pr.name!r}: {pr.src!r} must come before {pr.dst!r} (a projection "
                                   "that points back must close a cycle)", node=pr.name, field="src", value=pr.src)
        first = {c: min(order[name] for name in condensed.nodes[c]["members"]) for c in condensed}
        return tuple(tuple(sorted(condensed.nodes[c]["members"], key=order.__getitem__))
                     for c in nx.lexicographical_topological_sort(condensed, key=first.__getitem__))

    def recurrent(self, projection: Projection) -> bool:
        """Whether ``projection`` closes a cycle: its source is in its destination's component."""
        return any(projection.src in c and projection.dst in c for c in self.components)

    def _check_formats(self) -> None:
        """Every value fits ``formats`` (the message names the item, the field and the format)."""
        f = self.formats
        if not isinstance(f, Formats):
            raise NetDescError(f"formats: a hwsim.netdesc.Formats, got {type(f).__name__}")
        for port in self.inputs:
            if port.graded_bits > f.graded_bits:
                raise NetDescError(f"input {port.name!r}: graded_bits {port.graded_bits} exceeds formats.graded_bits "
                                   f"= {f.graded_bits}", node=port.name, field="graded_bits", value=port.graded_bits,
                                   allowed=f.graded_bits)
        for p in self.populations:
            for name, (lo, hi) in f.legal_ranges().items():
                values = getattr(p, name)
                if values.size and (values.min() < lo or values.max() > hi):
                    raise NetDescError(f"population {p.name!r}.{name}: values must lie in [{lo}, {hi}] (formats), "
                                       f"got [{values.min()}, {values.max()}]", node=p.name, field=name,
                                       value=(int(values.min()), int(values.max())), allowed=(lo, hi))
        for pr in self.projections:
            if not f.weight_exp_min <= pr.weight_exp <= f.weight_exp_max:
                raise NetDescError(f"projection {pr.name!r}: weight_exp {pr.weight_exp} must lie in "
                                   f"[{f.weight_exp_min}, {f.weight_exp_max}] (formats)", node=pr.name,
                                   field="weight_exp", value=pr.weight_exp,
                                   allowed=(f.weight_exp_min, f.weight_exp_max))

    def population(self, name: str) -> Population:
        return next(p for p in self.populations if p.name == name)

    def incoming(self, name: str) -> list[Projection]:
        return [pr for pr in self.projections if pr.dst == name]

    def input_port(self, name: str) -> InputPort | None:
        return next((i for i in self.inputs if i.name == name), None)
