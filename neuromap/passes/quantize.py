"""Quantize: float parameters to the target's integer formats (docs/architecture.md, "Fixed-point step").

Scales. Every population gets a scale lambda (weight units per float unit of membrane): a float weight
w into it becomes the integer q with q * 2^weight_exp ~ w * lambda, its threshold vth ~ theta * lambda, its
bias (state units: 2^activation_shift, 64 on Loihi, per weight unit) ~ b * lambda * 2^activation_shift
and its initial membrane likewise; decays are scale free. Spikes are 1 in both worlds, so a population's
dynamics are unchanged up to rounding. ``per_layer`` uses one lambda per population; ``per_channel`` one per
output channel (per neuron for a 1-D population), folded into that channel's threshold, bias and initial
state, which keeps the arithmetic exact (the neuron update is homogeneous in v, u, theta, bias and input).
An ``LI`` read-out always uses one scale so that its arg-max is unchanged. Graded inputs are sent as
integer payloads x * sigma; their weights are divided by sigma.

Choice of lambda: the largest incoming weight magnitude fills the mantissa (254 for mixed-sign weights,
which must be even, 255 for single-sign ones) at weight_exp = 0; lambda is then doubled (weight_exp + 1
on every incoming projection) while the smallest threshold mantissa is below 2^10, the largest threshold
stays legal and the worst-case synaptic current stays inside the state (24 bits on Loihi). Every width comes
from the target's [neuron] table as ``hwsim.netdesc.Formats``, the formats hwsim then computes in.

Constant currents. The bias of an Affine/Conv2d feeding a population is a constant input current (part of
a[t] at every step, docs/architecture.md). Into a neuron without current memory (du + 1 = 2^decay_bits:
u = a) it is the population's bias, folded into bias_mant/bias_exp. Into one with current memory (NIR
CubaLIF, snnTorch Synaptic) it charges u, and rides on a *bias axon* (``BiasAxon``): an always-on source
that spikes every step, one synapse per neuron of weight q << weight_exp ~ b * lambda. By the one-step
delay that current arrives from step 2 only, so u starts at the precharge u_init with
trunc0(u_init * (U - (du + 1)) / U) = (q << weight_exp) << activation_shift: step 1's decay of it is
exactly the missing current (``precharge``), and from then on u is the same integer as with the current
inside a[t].

Pre-quantized populations (``neuromap.ir.prequantized``: a lava-dl netx file) keep the file's lambda, weight
and bias exponents: nothing is chosen or rounded, and a value that is not a whole, legal integer there is a
QuantizationError naming the node.

Precision is never lost silently: a clipped weight, threshold or bias, a threshold that rounds to 0 or a
decay that rounds to "no leak" or "full leak" raises a QuantizationWarning with the numbers (a
QuantizationError in strict mode); a worst-case current that can wrap the state raises a
StateOverflowWarning (in strict mode too: it is a bound, not a certain loss). Everything is also in
the per-layer report. At run time, encoding an input value outside the compiled input range clips it and
raises a QuantizationWarning.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import numpy as np
import scipy.sparse as sp

from hwsim.netdesc import Formats
from mappings import Target
from neuromap.errors import (
    ClippedInputWarning,
    NeuromapWarning,
    QuantizationError,
    QuantizationWarning,
    StateOverflowWarning,
    UnsupportedError,
)
from neuromap.ir import Affine, AvgPool2d, Conv2d, Graph, Linear, SumPool2d
from neuromap.ir.prequantized import BIAS_EXP, WEIGHT_EXP, fixed_scale
from neuromap.neurons import model_for
from neuromap.passes.lower import Lowered, Projection, op_matrix

MODES = ("per_layer", "per_channel")
ENCODINGS = ("graded", "spikes")
WEIGHT_BITS = 8  # Lava's num_weight_bits: mixed-sign mantissas even in [-256, 254], single-sign ones up to 255
WEIGHT_Q_MAX = 254  # the largest mixed-sign mantissa (single-sign: one more)
VTH_PRECISE = 1 << 10  # a threshold mantissa of at least this keeps its rounding error below 0.05 %


# a projection whose weights round to zero this often, or whose largest mantissa leaves this many high bits
# unused, has lost precision that changes behaviour: warned (an error in strict mode)
LOST_WEIGHTS_FRACTION = 0.10
UNUSED_BITS_LIMIT = 3


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class InputEncoding:
    """How the user's input reaches the chip: binary spikes, or integer payloads round(x * scale)."""

    name: str
    kind: str          # "spikes" or "graded"
    bits: int = 0      # payload bits (graded)
    scale: float = 1.0 # payload per unit of x (graded)
    signed: bool = False

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Integer payloads (graded) or 0/1 spikes, clipped to the payload range."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "spikes":
            if x.size and not np.isin(x, (0.0, 1.0)).all():
                raise UnsupportedError(f"input {self.name!r} is encoded as binary spikes but got values other than "
                                       "0 and 1; rate-encode it first (neuromap.data.poisson_encode)")
            return x.astype(np.int64)
        lo, hi = self.payload_range
        payload = np.rint(x * self.scale)
        outside = int(np.count_nonzero((payload < lo) | (payload > hi)))
        if outside:
            warnings.warn(ClippedInputWarning(
                f"input {self.name!r}: {outside:,} of {x.size:,} values lie outside the input range "
                f"[{lo / self.scale:g}, {hi / self.scale:g}] it was compiled for; clipped (compile with "
                "--input-range LO,HI, Python input_range=, to cover the data)", node=self.name, needed=outside,
                allowed=(lo / self.scale, hi / self.scale)), stacklevel=2)
        return np.clip(payload, lo, hi).astype(np.int64)

    @property
    def payload_range(self) -> tuple[int, int]:
        if self.signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1


def bias_axon_port(population: str) -> str:
    """The name of the always-on input port that carries a population's bias axon (hwsim.netdesc)."""
    return f"{population}.bias_axon"


@dataclass(frozen=True)
class BiasAxon:
    """A population's constant input current into u as the chip carries it: an always-on source (one input
    line spiking every step) with one synapse per neuron of integer weight ``weights`` (0: no synapse; an
    8-bit mantissa legal for Lava's Dense) at ``weight_exp``, and ``u_init`` (state units), the precharge
    that gives step 1 the current the one-step delay holds back (module docstring)."""

    weights: np.ndarray   # (n,) int64
    weight_exp: int
    u_init: np.ndarray    # (n,) int64


@dataclass(frozen=True)
class QuantPopulation:
    name: str
    kind: str                 # "spiking" or "integrator"
    shape: tuple[int, ...]
    scale: np.ndarray         # lambda per neuron (weight units per float unit)
    vth: np.ndarray           # per neuron, int64
    du: np.ndarray
    dv: np.ndarray
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    v_init: np.ndarray
    reset: str
    reset_timing: str
    model: str = "lif"        # the hwsim.models update that runs it (neuromap.neurons: the node's model)
    bias_axon: BiasAxon | None = None  # the constant current of incoming biases, for neurons with current memory


@dataclass(frozen=True)
class QuantProjection:
    """Integer weights of one lowered projection.

    ``node`` form: the chain has one weighted node (Affine, Linear, Conv2d); ``weights`` are its integer
    weights and the matrix is the chain with pooling as plain sums (its scale is folded into ``weights``).
    ``matrix`` form: anything else; ``matrix`` is the integer (dst, src) CSR matrix itself.
    """

    name: str
    src: str
    dst: str
    paths: tuple[tuple[str, ...], ...]
    weight_exp: int
    node: str | None = None
    weights: np.ndarray | None = None
    matrix: sp.csr_matrix | None = None

    def integer_matrix(self, graph: Graph) -> sp.csr_matrix:
        """The (dst, src) int32 CSR weight matrix hwsim runs (netdesc.Projection.weights)."""
        if self.matrix is not None:
            return self.matrix
        mats = [op_matrix(_integer_node(graph.nodes[n], self.weights if n == self.node else None))
                for n in self.paths[0]]
        product = sp.csr_matrix(reduce(lambda acc, m: m @ acc, mats))
        product.data = np.rint(product.data)  # sums of integers: exact in float64
        out = product.astype(np.int32)
        out.eliminate_zeros()
        return out


def _integer_node(node, weights):
    if weights is not None:
        changes: dict[str, Any] = {"weight": weights.astype(np.float64)}
        if hasattr(node, "bias"):
            changes["bias"] = np.zeros_like(node.bias)
        return node.replace(**changes)
    if isinstance(node, AvgPool2d):
        return SumPool2d(input_shape_chw=node.input_shape_chw, kernel_size=node.kernel_size, stride=node.stride,
                         padding=node.padding)
    return node


@dataclass
class LayerReport:
    """What quantizing one population and its incoming projections did."""

    population: str
    mode: str
    scale_min: float
    scale_max: float
    projections: list[dict] = field(default_factory=list)
    vth_range: tuple[int, int] = (0, 0)
    vth_max_rel_error: float = 0.0
    bias_max_abs_error: float = 0.0
    bias_clipped: int = 0
    decay_max_abs_error: float = 0.0
    worst_case_current: int = 0   # |u| bound in state units
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"population": self.population, "mode": self.mode, "scale_min": self.scale_min,
                "scale_max": self.scale_max, "projections": self.projections, "vth_range": list(self.vth_range),
                "vth_max_rel_error": self.vth_max_rel_error, "bias_max_abs_error": self.bias_max_abs_error,
                "bias_clipped": self.bias_clipped, "decay_max_abs_error": self.decay_max_abs_error,
                "worst_case_current": self.worst_case_current, "notes": list(self.notes)}


def format_report(layers: list[dict]) -> str:
    """The per-layer report as a text table (what the CLI prints)."""
    head = f"{'projection':<16} {'-> population':<16} {'exp':>4} {'scale':>12} {'max|err|':>10} " \
           f"{'clipped':>8} {'to zero':>8} {'weights':>10}"
    lines = [head, "-" * len(head)]
    for layer in layers:
        for p in layer["projections"]:
            lines.append(f"{p['name'][:16]:<16} {'-> ' + layer['population'][:13]:<16} {p['weight_exp']:>4} "
                         f"{layer['scale_max']:>12.5g} {p['max_abs_error']:>10.3g} {p['clipped']:>8,} "
                         f"{p['rounded_to_zero']:>8,} {p['weights']:>10,}")
        vth = layer["vth_range"]
        lines.append(f"{'':<16} {layer['population'][:16]:<16} vth {vth[0]:,}..{vth[1]:,} "
                     f"(rel. err <= {layer['vth_max_rel_error']:.2g}), worst |u| {layer['worst_case_current']:,}"
                     + ("; " + "; ".join(layer["notes"]) if layer["notes"] else ""))
    return "\n".join(lines)


@dataclass(frozen=True)
class Quantized:
    mode: str
    populations: dict[str, QuantPopulation]
    projections: tuple[QuantProjection, ...]
    inputs: dict[str, InputEncoding]
    report: tuple[dict, ...]


# ---------------------------------------------------------------------------------------------- helpers
class _Lossy:
    """Reports precision problems with their numbers: a warning, or in strict mode a QuantizationError.
    A possible state overflow is a worst-case bound, not a certain loss: it always stays a warning."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict

    def __call__(self, message: str, category: type[NeuromapWarning] = QuantizationWarning, **fields: Any) -> None:
        if self.strict and category is QuantizationWarning:
            raise QuantizationError(message, **fields)
        warnings.warn(category(message, **fields), stacklevel=4)


def _weighted_nodes(graph: Graph, path: tuple[str, ...]) -> list[tuple[str, Affine | Linear | Conv2d]]:
    return [(n, node) for n, node in ((n, graph.nodes[n]) for n in path) if isinstance(node, (Affine, Linear, Conv2d))]


def _chain_scale(graph: Graph, path: tuple[str, ...]) -> float:
    return math.prod(node.scale for node in (graph.nodes[n] for n in path) if isinstance(node, SumPool2d))


def _multiplicity(graph: Graph, path: tuple[str, ...], weighted: str) -> int:
    """Upper bound on how many weights of the node add up in one entry of the chain's matrix."""
    after = False
    m = 1
    for n in path:
        node = graph.nodes[n]
        if n == weighted:
            after = True
        elif isinstance(node, SumPool2d):
            (kh, kw), (sh, sw) = node.kernel_size, node.stride
            m *= kh * kw if after else math.ceil(kh / sh) * math.ceil(kw / sw)
    return m


def _pooled(graph: Graph, path: tuple[str, ...]) -> int:
    """How many terms of the chain's matrix row each weight of the node contributes (pool windows)."""
    return math.prod(math.prod(node.kernel_size) for node in (graph.nodes[n] for n in path)
                     if isinstance(node, SumPool2d))


def _channels(shape: tuple[int, ...]) -> tuple[int, int]:
    """(channels, neurons per channel) of a population: a 1-D population has one neuron per channel."""
    return (shape[0], math.prod(shape[1:])) if len(shape) > 1 else (shape[0], 1)


@dataclass
class _Incoming:
    """One projection being quantized: float effective weights (node or matrix form) and their stats."""

    pr: Projection
    node: str | None
    weights: np.ndarray | None       # effective float weights of the node (scale and 1/sigma folded in)
    matrix: sp.csr_matrix | None     # effective float matrix
    channel_max: np.ndarray          # max |w| per destination channel (per-channel alignment) or scalar
    aligned: bool                    # weights' rows are the destination's channels
    mixed: bool
    multiplicity: int
    pooled: int = 1                  # source neurons behind each weight (pool windows in the chain)

    @property
    def q_max(self) -> int:
        q = (254 if self.mixed else 255) // self.multiplicity
        return q - (q % 2) if self.mixed else q


def _incoming(lowered: Lowered, pr: Projection, dst_shape, input_scale: dict[str, float]) -> _Incoming:
    graph = lowered.graph
    sigma = input_scale.get(pr.src, 1.0)
    n_ch, per_ch = _channels(dst_shape)
    weighted = _weighted_nodes(graph, pr.paths[0]) if len(pr.paths) == 1 else []
    if len(pr.paths) == 1 and len(weighted) == 1:
        name, node = weighted[0]
        path = pr.paths[0]
        w = node.weight * (_chain_scale(graph, path) / sigma)
        tail = path[path.index(name) + 1:]
        aligned = (w.shape[0] == n_ch and all(isinstance(graph.nodes[n], SumPool2d) for n in tail)
                   and (len(dst_shape) == 3) == (w.ndim == 4))
        per_row = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
        return _Incoming(pr, name, w, None, per_row if aligned else np.full(n_ch, per_row.max(initial=0.0)),
                         aligned, bool(w.min() < 0 < w.max()), _multiplicity(graph, path, name),
                         _pooled(graph, path))
    m = sp.csr_matrix(pr.matrix(graph) / sigma)
    m.eliminate_zeros()
    row_max = np.zeros(m.shape[0])
    if m.nnz:
        row_max = np.maximum.reduceat(np.abs(np.append(m.data, 0.0)), np.minimum(m.indptr[:-1], m.nnz))
        row_max[np.diff(m.indptr) == 0] = 0.0
    mixed = bool(m.nnz and m.data.min() < 0 < m.data.max())
    return _Incoming(pr, None, None, m, row_max.reshape(n_ch, per_ch).max(axis=1), True, mixed, 1)


def _quantize_values(x: np.ndarray, q_max: int, mixed: bool) -> tuple[np.ndarray, int]:
    """Round to the nearest integer (nearest even one for mixed-sign weights), clip to +-q_max."""
    q = np.rint(x * 0.5) * 2.0 if mixed else np.rint(x)
    clipped = int(np.count_nonzero(np.abs(q) > q_max))
    return np.clip(q, -q_max, q_max, out=q), clipped


# ---------------------------------------------------------------------------------------------- the pass
def input_encodings(graph: Graph, target: Target, encoding: str | None, input_range: tuple[float, float] | None,
                    input_bits: int) -> dict[str, InputEncoding]:
    """How each Input reaches the chip. Defaults: graph.metadata 'input_encoding' / 'input_range', else
    graded payloads over [0, 1]."""
    kind = encoding or graph.metadata.get("input_encoding", "graded")
    if kind not in ENCODINGS:
        raise UnsupportedError(f"input encoding {kind!r} is not one of {ENCODINGS}")
    out = {}
    for name in graph.inputs:
        if kind == "spikes":
            out[name] = InputEncoding(name, "spikes")
            continue
        allowed = Formats.from_target(target).graded_bits  # hwsim.netdesc carries payloads of up to 24 bits
        if allowed == 0:
            raise UnsupportedError(f"input {name!r}: target {target.name!r} has binary spikes only "
                                   "(graded_spike_bits = 0); compile with input_encoding='spikes' "
                                   "(CLI: --input-encoding spikes) and rate-encode the input")
        if not 1 <= input_bits <= allowed:
            raise UnsupportedError(f"input {name!r}: {input_bits}-bit payloads requested, target {target.name!r} "
                                   f"carries 1..{allowed}")
        try:
            lo, hi = (float(v) for v in (input_range or graph.metadata.get("input_range", (0.0, 1.0))))
        except (TypeError, ValueError):
            raise UnsupportedError(f"input {name!r}: input range must be two numbers (low, high), got "
                                   f"{input_range or graph.metadata.get('input_range')!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo and max(abs(lo), abs(hi)) > 0):
            raise UnsupportedError(f"input {name!r}: input range ({lo}, {hi}) is empty or not finite")
        signed = lo < 0
        top = (1 << (input_bits - 1)) - 1 if signed else (1 << input_bits) - 1
        if top < 1:
            raise UnsupportedError(f"input {name!r}: signed payloads need at least 2 bits")
        out[name] = InputEncoding(name, "graded", input_bits, top / max(abs(lo), abs(hi)), signed)
    return out


def quantize(lowered: Lowered, target: Target, *, mode: str = "per_layer", strict: bool = False,
             input_encoding: str | None = None, input_range: tuple[float, float] | None = None,
             input_bits: int = 8) -> Quantized:
    """Quantize every population and projection of ``lowered`` for ``target`` (see module docstring)."""
    if mode not in MODES:
        raise UnsupportedError(f"quantization mode {mode!r} is not one of {MODES}")
    if target.synapses.weight_bits != WEIGHT_BITS:
        # the mantissas below (254 / 255) are Lava's 8-bit format; other widths would be counted in synaptic
        # memory at one size and run at another
        raise UnsupportedError(f"target {target.name!r}: [synapses] weight_bits = {target.synapses.weight_bits}; "
                               f"the quantizer, hwsim and the Lava backend implement {WEIGHT_BITS}-bit weights only")
    formats = Formats.from_target(target)  # refuses arithmetic hwsim does not implement, naming the field
    lossy = _Lossy(strict)
    graph = lowered.graph
    for pr in lowered.projections:
        if pr.src in lowered.populations and not model_for(graph.nodes[pr.src]).spiking:
            raise UnsupportedError(f"{pr.src!r} (LI, a non-spiking integrator) feeds {pr.dst!r}: on the chip an "
                                   "integrator sends nothing, so that projection would be silent; use LI only as "
                                   "the read-out")
    inputs = input_encodings(graph, target, input_encoding, input_range, input_bits)
    input_scale = {n: e.scale for n, e in inputs.items() if e.kind == "graded"}
    input_payload = {n: max(abs(v) for v in e.payload_range) if e.kind == "graded" else 1 for n, e in inputs.items()}
    pops: dict[str, QuantPopulation] = {}
    projs: list[QuantProjection] = []
    report = []
    for name in lowered.populations:
        node = graph.nodes[name]
        incoming = [_incoming(lowered, pr, node.output_shape, input_scale) for pr in lowered.incoming(name)]
        qpop, qprojs, layer = _quantize_population(lowered, name, node, incoming, formats, mode, lossy,
                                                   input_payload)
        pops[name] = qpop
        projs.extend(qprojs)
        report.append(layer.as_dict())
    names = [p.name for p in projs]  # a synaptic node feeding two populations names two projections
    projs = [dataclasses.replace(p, name=f"{p.src}->{p.dst}") if names.count(p.name) > 1 else p for p in projs]
    return Quantized(mode, pops, tuple(projs), inputs, tuple(report))


def _quantize_population(lowered, name, node, incoming, formats: Formats, mode, lossy, input_payload):
    graded = {src for src, payload in input_payload.items() if payload > 1}
    n_ch, per_ch = _channels(node.output_shape)
    size = n_ch * per_ch
    model = model_for(node)
    spiking = model.spiking
    inputs = model.scale_inputs(node)
    layer_mode = mode
    if mode == "per_channel" and (not spiking or not all(i.aligned for i in incoming)):
        layer_mode = "per_layer"
    vth_max = formats.vth_max
    state_max = formats.state_max
    shift = formats.activation_shift
    exp_min, exp_max = formats.weight_exp_min, formats.weight_exp_max

    # lambda at weight_exp = 0: the tightest projection fills its mantissa
    need = np.stack([i.channel_max / i.q_max for i in incoming]) if incoming else np.zeros((1, n_ch))
    per_channel_need = need.max(axis=0)
    with np.errstate(over="ignore", divide="ignore"):
        layer_base = 1.0 / np.float64(per_channel_need.max(initial=0.0))
        if not np.isfinite(layer_base):
            # no (or only subnormal) weights: unit scale; thresholds, biases still quantized
            layer_base = np.float64(1.0)
        base = 1.0 / per_channel_need if layer_mode == "per_channel" else np.full(n_ch, layer_base)
    base = np.where(np.isfinite(base), base, layer_base)
    theta = inputs.threshold.reshape(n_ch, per_ch) if inputs.threshold is not None else None
    i_decay = inputs.i_decay
    unity = formats.decay_unity
    # the fraction of u the chip keeps per step, (U - (du + 1)) / U with du + 1 = rint(i_decay * U)
    u_keep = (unity - np.rint(i_decay * unity)) / unity
    # bias (it limits the scale): the population's own plus the constant currents of Affine/Conv biases,
    # into v where the chip keeps no current (u = a), else on a bias axon into u (module docstring)
    bias_f = inputs.bias
    axon_f = np.zeros(size)
    has_chain_bias = any(np.any(getattr(lowered.graph.nodes[n], "bias", 0)) for pr in lowered.incoming(name)
                         for path in pr.paths for n in path)
    if has_chain_bias:
        chain_bias = lowered.bias_current(name)
        bias_f = bias_f + np.where(u_keep == 0, chain_bias, 0.0)
        axon_f = np.where(u_keep == 0, 0.0, chain_bias)
    v_init_f = inputs.v_init
    # the largest scale at which every threshold, bias and initial membrane stays legal, per channel: weights
    # far below them give up mantissa bits instead of those values being clipped
    bias_max = formats.bias_mant_range[1] * 2.0 ** formats.bias_exp_max
    with np.errstate(divide="ignore", over="ignore"):  # no bias / v_init: no limit
        cap = np.minimum(bias_max / ((1 << shift) * np.abs(bias_f).reshape(n_ch, per_ch).max(axis=1)),
                         state_max / ((1 << shift) * np.abs(v_init_f).reshape(n_ch, per_ch).max(axis=1)))
        if theta is not None:
            cap = np.minimum(cap, vth_max / theta.max(axis=1))
        if axon_f.any():  # the axon's weight stays a legal mantissa, its precharge inside half the state
            limit = np.minimum(WEIGHT_Q_MAX * 2.0 ** exp_max, state_max * u_keep / (2 * (1 << shift)))
            # only neurons with an axon are limited (elsewhere u_keep may be 0 too: 0 / 0)
            axon_cap = np.divide(limit, np.abs(axon_f), out=np.full(size, np.inf), where=axon_f != 0)
            cap = np.minimum(cap, axon_cap.reshape(n_ch, per_ch).min(axis=1))
    if layer_mode != "per_channel":
        cap = np.full(n_ch, cap.min())
    base = np.minimum(base, cap)
    kept = np.rint(i_decay * unity).min() / unity  # the current decay the chip will apply
    current_gain = 1.0 / kept if kept > 0 else math.inf  # steady-state |u| per unit of constant input

    def worst_current(scale: np.ndarray, exps: list[int]) -> int:
        total_pos = np.zeros(n_ch)
        total_neg = np.zeros(n_ch)
        for inc, e in zip(incoming, exps):
            pos, neg = _row_sums(inc, scale, e, n_ch, per_ch)
            payload = input_payload.get(inc.pr.src, 1)
            total_pos += pos * payload * 2.0 ** e
            total_neg += neg * payload * 2.0 ** e
        if axon_f.any():
            q, e_axon, _ = _axon_mantissas(axon_f * np.repeat(scale, per_ch), formats)
            current = (q * 2.0 ** e_axon).reshape(n_ch, per_ch)
            total_pos += np.clip(current, 0, None).max(axis=1)
            total_neg += -np.clip(current, None, 0).min(axis=1)
        return int(max(total_pos.max(initial=0), total_neg.max(initial=0)) * (1 << shift))

    def exps_for(scale: np.ndarray) -> list[int]:
        """Smallest exponent that fits each projection's mantissa. Spike sources keep it >= 0: a negative
        exponent floors the accumulated sum (docs/architecture.md), a bias for small binary sums."""
        out = []
        for inc in incoming:
            lo = exp_min if inc.pr.src in graded else max(exp_min, 0)
            m = float((inc.channel_max * scale).max(initial=0.0))
            # log2(m) - log2(q_max), not log2(m / q_max): that quotient underflows to 0 for a subnormal m
            need = math.ceil(math.log2(m) - math.log2(inc.q_max) - 1e-9) if m > 0 else lo
            out.append(int(np.clip(need, lo, exp_max)))
        return out

    # a pre-quantized file (neuromap.ir.prequantized) fixes lambda and the exponents: no search, no rounding
    fixed = fixed_scale(node)
    if fixed is not None:
        lossy = _Lossy(strict=True)
    scale = base.copy() if fixed is None else np.full(n_ch, fixed)
    gain = current_gain if math.isfinite(current_gain) else 1.0  # no current decay: warned below
    # a graded input's worst case (every payload at full scale) is a plausible input: halve lambda (weight_exp
    # - 1, which drops low bits of a large accumulated sum) until it fits. Spike sources keep their mantissa:
    # all inputs firing at once is unlikely, so that case is only warned about below.
    graded_in = [k for k, inc in enumerate(incoming) if inc.pr.src in graded]
    while (fixed is None and graded_in and worst_current(scale, exps_for(scale)) * gain > state_max
           and min(exps_for(scale)[k] for k in graded_in) > exp_min):
        scale = scale / 2.0
    if fixed is None and theta is not None and np.array_equal(scale, base):
        # double lambda while it buys threshold precision and stays inside the formats
        while True:
            trial = scale * 2.0
            exps = exps_for(trial)
            if (float((theta.min(axis=1) * scale).min()) >= VTH_PRECISE or (trial > cap).any()
                    or max(exps, default=0) >= exp_max
                    or worst_current(trial, exps) * gain > state_max):
                break
            scale = trial
    exps = exps_for(scale) if fixed is None else _fixed_exps(lowered.graph, name, incoming, formats)
    layer = LayerReport(name, layer_mode, float(scale.min()), float(scale.max()))
    if layer_mode != mode:
        layer.notes.append("per-channel scaling not applicable here (read-out or unaligned projection): per layer")
    if fixed is not None:
        layer.notes.append("pre-quantized: scale and exponents from the file")
    scale_n = np.repeat(scale, per_ch)

    qprojs = []
    for inc, e in zip(incoming, exps):
        qprojs.append(_quantize_projection(lowered.graph, inc, scale, e, n_ch, per_ch, layer, lossy,
                                           exact=fixed is not None))

    # worst-case synaptic current (static overflow check)
    worst = worst_current(scale, exps)
    layer.worst_case_current = worst
    if worst * current_gain > state_max:
        how = ("with no current decay the current can grow without bound" if math.isinf(current_gain)
               else f"{worst:,} per step (x{current_gain:.3g} with the current decay)")
        lossy(f"{name}: worst-case synaptic current {how} can exceed the {formats.state_bits}-bit state "
              f"(|u| < {state_max + 1:,}) "
              "if enough inputs spike in one step; u would wrap", StateOverflowWarning, node=name, field="u",
              needed=worst * current_gain, allowed=state_max)

    # the model's own parameters (thresholds, decays, initial membrane)
    neuron = model.quantize(node, inputs, scale_n, formats, lossy, name)
    for key, value in neuron.report.items():
        setattr(layer, key, value)

    bias_state = bias_f * scale_n * (1 << shift)
    bias_mant, bias_exp, bias_err, bias_clipped = (
        _quantize_bias(bias_state, formats) if fixed is None
        else _fixed_bias(bias_state, int(node.metadata.get(BIAS_EXP, 0)), formats, name))
    layer.bias_max_abs_error = float(bias_err / scale_n.min()) / (1 << shift)
    layer.bias_clipped = bias_clipped
    if bias_clipped:
        lossy(f"{name}: {bias_clipped:,} bias values exceed mantissa x 2^{formats.bias_exp_max}; clipped",
              node=name, field="bias", value=bias_clipped)
    axon = _bias_axon(name, axon_f * scale_n, neuron.du, formats, lossy, exact=fixed is not None) \
        if axon_f.any() else None
    if axon is not None:
        error = np.abs(axon.weights * 2.0 ** axon.weight_exp - axon_f * scale_n) / scale_n
        layer.bias_max_abs_error = max(layer.bias_max_abs_error, float(error.max()))
        layer.notes.append(f"incoming bias on a bias axon (weight_exp {axon.weight_exp}), u precharged")

    qpop = QuantPopulation(name=name, kind="spiking" if spiking else "integrator", shape=node.output_shape,
                           scale=scale_n, vth=neuron.vth, du=neuron.du, dv=neuron.dv, bias_mant=bias_mant,
                           bias_exp=bias_exp, v_init=neuron.v_init, reset=neuron.reset,
                           reset_timing=neuron.reset_timing, model=model.hwsim_model, bias_axon=axon)
    return qpop, qprojs, layer


def _axon_mantissas(current: np.ndarray, formats: Formats) -> tuple[np.ndarray, int, int]:
    """A bias axon's per-neuron current (weight units) as (mantissas, weight_exp, how many clipped): the
    smallest exponent >= 0 (one spike a step: a negative exponent only floors) at which the largest fits."""
    mixed = bool(current.min() < 0 < current.max())
    q_max = WEIGHT_Q_MAX if mixed else WEIGHT_Q_MAX + 1
    m = float(np.abs(current).max())
    need = math.ceil(math.log2(m) - math.log2(q_max) - 1e-9) if m > 0 else 0
    e = int(np.clip(need, max(formats.weight_exp_min, 0), formats.weight_exp_max))
    q, clipped = _quantize_values(current / 2.0 ** e, q_max, mixed)
    return q.astype(np.int64), e, clipped


def precharge(current: np.ndarray, keep: np.ndarray, decay_bits: int) -> np.ndarray:
    """Per neuron the u_init of smallest magnitude with trunc0(u_init * keep / 2^decay_bits) = current
    (state units; keep = U - (du + 1), the chip's kept fraction of u in 1/U, U = 2^decay_bits): sign(c) *
    ceil(|c| U / keep). It exists whenever keep >= 1: the u_init that work fill [|c| U / keep,
    (|c| + 1) U / keep), an interval of length U / keep >= 1. keep = 0 (no current memory) holds only c = 0."""
    c = np.asarray(current, dtype=np.int64)
    k = np.asarray(keep, dtype=np.int64)
    magnitude = -(-(np.abs(c) << decay_bits) // np.maximum(k, 1))
    return np.where(c != 0, np.sign(c) * magnitude, 0)


def _bias_axon(name: str, current: np.ndarray, du: np.ndarray, formats: Formats, lossy: _Lossy,
               exact: bool) -> BiasAxon:
    """The bias axon carrying ``current`` (weight units per neuron) into a population with decays ``du``."""
    if exact:  # a pre-quantized file's currents are whole mantissas at exponent 0, or an error
        q, _ = _exact_values(current, bool(current.min() < 0 < current.max()), name)
        q, e, clipped = q.astype(np.int64), 0, 0
    else:
        q, e, clipped = _axon_mantissas(current, formats)
    if clipped:
        lossy(f"{name}: {clipped:,} incoming bias currents exceed the bias axon's mantissa at weight_exp "
              f"{formats.weight_exp_max}; clipped", node=name, field="bias", value=clipped)
    keep = formats.decay_unity - (du + 1)
    state = (q << e) << formats.activation_shift
    # a neuron without current memory (du + 1 = U) took its current into the population's bias instead
    # (the caller's rule du + 1 = rint(i_decay * U), the LIF family's): no u_init could carry it
    assert not ((keep == 0) & (state != 0)).any(), "a bias axon feeds only neurons with current memory"
    u_init = precharge(state, keep, formats.decay_bits)
    if np.abs(u_init).max() > formats.state_max:
        i = int(np.argmax(np.abs(u_init)))
        raise QuantizationError(f"{name}: the bias axon's precharge u_init = {int(u_init[i]):,} (neuron {i}: "
                                f"current {int(state[i]):,} with du = {int(du[i])}) exceeds the "
                                f"{formats.state_bits}-bit state (|u| <= {formats.state_max:,}); lower that "
                                "neuron's bias or its current decay", node=name, field="u_init",
                                value=int(u_init[i]), allowed=formats.state_max)
    return BiasAxon(q, e, u_init.astype(np.int64))


def _row_sums(inc: _Incoming, scale: np.ndarray, e: int, n_ch: int, per_ch: int) -> tuple[np.ndarray, np.ndarray]:
    """Per destination channel: bound on the summed positive / negative integer weights of one matrix row
    (each weight may round up by one step; a weight behind a pool window counts once per pooled neuron)."""
    if inc.weights is not None:
        w = inc.weights.reshape(inc.weights.shape[0], -1)
        lam = scale[:, None] if inc.aligned else float(scale.max())
        q = w * (lam / 2.0 ** e)
        pos = np.clip(q + 1, 0, None).sum(axis=1) * inc.pooled
        neg = -np.clip(q - 1, None, 0).sum(axis=1) * inc.pooled
        if inc.aligned:
            return pos, neg
        return np.full(n_ch, pos.max(initial=0)), np.full(n_ch, neg.max(initial=0))
    m = inc.matrix
    assert m is not None  # an _Incoming holds the node's weights or the chain's matrix
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    q = m.data * np.repeat(scale, per_ch)[rows] / 2.0 ** e
    pos = np.bincount(rows, weights=np.clip(q + 1, 0, None), minlength=m.shape[0]).reshape(n_ch, per_ch).max(axis=1)
    neg = np.bincount(rows, weights=-np.clip(q - 1, None, 0), minlength=m.shape[0]).reshape(n_ch, per_ch).max(axis=1)
    return pos, neg


def _quantize_projection(graph, inc: _Incoming, scale, e, n_ch, per_ch, layer: LayerReport, lossy,
                         exact: bool = False) -> QuantProjection:
    pr = inc.pr
    step = 2.0 ** e
    if inc.weights is not None:
        w = inc.weights
        row_scale = (scale if inc.aligned else np.full(w.shape[0], float(scale.max())))
        if not inc.aligned and not np.allclose(scale, scale[0]):
            raise AssertionError("unaligned projections are quantized per layer")
        lam = row_scale.reshape((-1,) + (1,) * (w.ndim - 1)) / step
        x = w * lam
        q, clipped = (_exact_values(x, inc.mixed, pr.name) if exact
                      else _quantize_values(x, inc.q_max, inc.mixed))
        err = np.abs(q - x) / lam
        values, qvalues = w, q
        result = QuantProjection(pr.name, pr.src, pr.dst, pr.paths, e, node=inc.node, weights=q.astype(np.int64))
    else:
        m = inc.matrix
        assert m is not None  # an _Incoming holds the node's weights or the chain's matrix
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        lam = np.repeat(scale, per_ch)[rows] / step
        x = m.data * lam
        q, clipped = (_exact_values(x, inc.mixed, pr.name) if exact
                      else _quantize_values(x, inc.q_max, inc.mixed))
        err = np.abs(q - x) / lam
        values, qvalues = m.data, q
        qm = sp.csr_matrix((q.astype(np.int32), m.indices.copy(), m.indptr.copy()), shape=m.shape)
        qm.eliminate_zeros()
        result = QuantProjection(pr.name, pr.src, pr.dst, pr.paths, e, matrix=qm)
    nonzero = int((values != 0).sum())
    to_zero = int(((values != 0) & (qvalues == 0)).sum())
    largest = int(np.abs(qvalues).max(initial=0))
    few_bits = to_zero > LOST_WEIGHTS_FRACTION * nonzero or largest < inc.q_max >> UNUSED_BITS_LIMIT
    if nonzero and few_bits and not exact:  # a file's own integers (exact) lose nothing
        # the scale is capped by the threshold, bias or state range: the weights then use few of their bits
        lossy(f"{pr.name}: weights lose precision: the largest mantissa is {largest} of {inc.q_max} and "
              f"{to_zero:,} of {nonzero:,} non-zero weights round to 0 (max error {float(err.max(initial=0.0)):.3g})",
              node=pr.name, field="weights", value=largest, allowed=inc.q_max)
    if clipped:
        lossy(f"{pr.name}: {clipped:,} of {values.size:,} weights exceed the {inc.q_max}-step mantissa at "
              f"weight_exp {e} (the exponent's limit); clipped", node=pr.name, field="weights", value=clipped,
              allowed=inc.q_max)
    layer.projections.append({"name": pr.name, "src": pr.src, "weight_exp": e, "q_max": inc.q_max,
                              "mixed_sign": inc.mixed, "form": "node" if inc.weights is not None else "matrix",
                              "weights": int(values.size), "max_abs_error": float(err.max(initial=0.0)),
                              "max_abs_weight": float(np.abs(values).max(initial=0.0)),
                              "clipped": clipped, "rounded_to_zero": to_zero})
    return result


def _fixed_exps(graph: Graph, name: str, incoming: list[_Incoming], formats: Formats) -> list[int]:
    """The weight exponents a pre-quantized file gives the projections into ``name``, checked against the
    target's formats."""
    exps = []
    for inc in incoming:
        value = None if inc.node is None else graph.nodes[inc.node].metadata.get(WEIGHT_EXP)
        if value is None:
            raise QuantizationError(f"{inc.pr.name}: {name!r} has a fixed scale (a pre-quantized file) but this "
                                    f"projection has no single weighted node with metadata {WEIGHT_EXP!r}",
                                    node=inc.pr.name, field="weight_exp")
        e = int(value)
        if not formats.weight_exp_min <= e <= formats.weight_exp_max:
            raise QuantizationError(f"{inc.pr.name}: weight_exp {e} from the file lies outside the target's "
                                    f"[{formats.weight_exp_min}, {formats.weight_exp_max}]", node=inc.pr.name,
                                    field="weight_exp", value=e,
                                    allowed=(formats.weight_exp_min, formats.weight_exp_max))
        exps.append(e)
    return exps


def _exact_values(x: np.ndarray, mixed: bool, name: str) -> tuple[np.ndarray, int]:
    """Pre-quantized weights kept as they are: whole numbers that Lava's 8-bit synapse holds unchanged
    (netdesc.Projection's rule), else an error naming the first that is not."""
    lo, hi = (-256, 254) if mixed else (-255, 255)
    bad = (x != np.rint(x)) | (x < lo) | (x > hi)
    if mixed:
        bad |= np.rint(x) % 2 != 0
    if bad.any():
        value = float(x[bad][0])
        rule = ", even: Lava drops a mixed-sign weight's lowest bit" if mixed else ""
        raise QuantizationError(f"{name}: weight {value:g} of a pre-quantized file is not a legal 8-bit synapse "
                                f"weight at its weight_exp (a whole number in [{lo}, {hi}]{rule})", node=name,
                                field="weights", value=value, allowed=(lo, hi))
    return x.copy(), 0


def _fixed_bias(b: np.ndarray, exp: int, formats: Formats, name: str) -> tuple[np.ndarray, np.ndarray, float, int]:
    """bias (state units) as mantissas at the file's exponent, which must hold it exactly."""
    lo, hi = formats.bias_mant_range
    mant = b / 2.0 ** exp
    bad = (mant != np.rint(mant)) | (mant < lo) | (mant > hi)
    if not formats.bias_exp_min <= exp <= formats.bias_exp_max or bad.any():
        value = float(mant[bad][0]) if bad.any() else float(exp)
        raise QuantizationError(f"{name}: bias of a pre-quantized file is not a whole mantissa in [{lo}, {hi}] at "
                                f"bias_exp {exp} in [{formats.bias_exp_min}, {formats.bias_exp_max}] (got {value:g})",
                                node=name, field="bias", value=value, allowed=(lo, hi))
    return mant.astype(np.int64), np.full(mant.shape, exp, dtype=np.int64), 0.0, 0


def _quantize_bias(b: np.ndarray, formats: Formats) -> tuple[np.ndarray, np.ndarray, float, int]:
    """bias (state units) -> (mant, exp) with |mant| < 2^(bits-1), the smallest legal exponent per neuron."""
    mant_max = formats.bias_mant_range[1]
    lo, hi = max(formats.bias_exp_min, 0), formats.bias_exp_max
    mag = np.abs(b)
    with np.errstate(divide="ignore"):
        exp = np.where(mag > mant_max, np.ceil(np.log2(np.maximum(mag, 1) / mant_max)), 0).astype(np.int64)
    exp = np.clip(exp, lo, hi)
    mant = np.rint(b / 2.0 ** exp)
    exp = np.where(np.abs(mant) > mant_max, np.minimum(exp + 1, hi), exp)  # rounding up past the mantissa
    mant = np.rint(b / 2.0 ** exp)
    clipped = int((np.abs(mant) > mant_max).sum())
    mant = np.clip(mant, -mant_max, mant_max)
    err = float(np.abs(mant * 2.0 ** exp - b).max(initial=0.0))
    return mant.astype(np.int64), exp.astype(np.int64), err, clipped
