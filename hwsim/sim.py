"""Bit-exact, vectorised emulation of a placed, quantized network (docs/architecture.md, "Fixed-point step").

``simulate`` reproduces Lava's fixed_pt arithmetic spike for spike and state for state, for a whole batch
at once, in torch (CUDA when available). Since a population's input at step t depends only on its
sources' outputs at step t-1 and the description has no recurrence, it runs population by population:
one exact product per projection over all (step, sample) rows at once (``hwsim.synapse``), then the
population's state recurrences over time (its model's update, ``hwsim.models``). Event counts come from the same traces.
Populations whose bounds allow it run in int32 (``_Plan.narrow``), and on the CPU the time loops write
straight into the sample-major result arrays, seen as (T, B, n) views.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from hwsim.errors import HwsimError, SaturationWarning
from hwsim.events import PER_STEP, EventCounts, EventTables
from hwsim.fixed import wrap32
from hwsim.models import model_named
from hwsim.netdesc import Population, Projection, QuantNetwork
from hwsim.synapse import SynapseOp

TRACES = ("spikes", "v", "u")
TRACE_DTYPES = {"spikes": np.int8, "v": np.int32, "u": np.int32}
CHUNK_ELEMENTS = 1 << 25  # state elements (steps x samples x neurons) simulated at once, to bound memory


class InputDataError(HwsimError, ValueError):
    """The input arrays do not fit the network's input ports; the message names the port and the rule."""


@dataclass
class HwResult:
    """Per population (B, T, n) traces, as ``neuromap.backends.lava.LavaResult`` holds them: ``spikes[p][b, t]``
    (int8) are the spikes of step t + 1, ``v``/``u`` (int32, state units) the state after that step (after
    the reset); only the traces asked for are filled. ``events`` unless switched off."""

    spikes: dict[str, np.ndarray]
    v: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    events: EventCounts | None
    integrators: tuple[str, ...] = ()

    def scores(self, name: str) -> np.ndarray:
        """(B, n) class scores of a read-out population: spike counts, or the final v of an integrator."""
        trace = self.v if name in self.integrators else self.spikes
        if name not in trace:
            raise InputDataError(f"scores of {name!r}: its {'v' if trace is self.v else 'spikes'} were not recorded")
        return trace[name][:, -1] if trace is self.v else trace[name].sum(axis=1, dtype=np.int64)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _traces_to_record(record: bool | Iterable[str]) -> tuple[str, ...]:
    if record is True:
        return TRACES
    if record is False:
        return ()
    chosen = tuple(record)
    unknown = set(chosen) - set(TRACES)
    if unknown:
        raise InputDataError(f"record: unknown trace {sorted(unknown)[0]!r}; choose from {TRACES}")
    return chosen


def check_inputs(qnet: QuantNetwork, inputs: Mapping[str, object], steps: int) -> tuple[dict[str, np.ndarray], int]:
    """Each port's data as a (B, steps, size) array (bool spikes, int64 payloads), checked against the port;
    an always-on port's is all ones, made here (it takes no data)."""
    names = [i.name for i in qnet.inputs if not i.always_on]
    extra = set(inputs) - set(names)
    if extra:
        name = sorted(extra)[0]
        if qnet.input_port(name) is not None:
            raise InputDataError(f"input {name!r}: an always-on port (a bias axon) takes no data (ports: {names})")
        raise InputDataError(f"input {name!r}: the network has no such input port (ports: {names})")
    data, batch = {}, None
    for port in (i for i in qnet.inputs if not i.always_on):
        if port.name not in inputs:
            raise InputDataError(f"input {port.name!r}: no data given")
        raw = inputs[port.name]
        arr = raw.detach().cpu().numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)
        if arr.ndim >= 3 and int(np.prod(arr.shape[2:])) == port.size:
            arr = arr.reshape(*arr.shape[:2], port.size)  # (B, T, C, H, W) frames, flattened in C order
        if arr.ndim != 3 or arr.shape[2] != port.size or arr.shape[1] < steps:
            raise InputDataError(f"input {port.name!r}: shape {arr.shape}, expected (B, T >= {steps}, {port.size})")
        arr = arr[:, :steps]
        if arr.dtype.kind == "f":
            if not np.array_equal(arr, np.round(arr)):
                raise InputDataError(f"input {port.name!r}: values must be integers")
        elif arr.dtype.kind not in "iub":
            raise InputDataError(f"input {port.name!r}: dtype {arr.dtype} is not numeric")
        if port.graded_bits == 0 and arr.size and not _all_bits(arr):
            raise InputDataError(f"input {port.name!r}: binary port takes 0/1 spikes, got [{arr.min()}, {arr.max()}]")
        limit = (1 << port.graded_bits) - 1
        if port.graded_bits and arr.size and np.abs(arr).max() > limit:
            raise InputDataError(f"input {port.name!r}: payload magnitudes must fit {port.graded_bits} bits "
                                 f"(<= {limit}), got {np.abs(arr).max()}")
        if batch is not None and arr.shape[0] != batch:
            raise InputDataError(f"input {port.name!r}: batch size {arr.shape[0]}, other inputs have {batch}")
        batch = arr.shape[0]
        data[port.name] = arr.astype(np.int64 if port.graded_bits else np.bool_, copy=False)  # spikes as bool
    data |= {i.name: np.ones((batch or 0, steps, i.size), np.bool_) for i in qnet.inputs if i.always_on}
    return data, batch or 0


def _all_bits(arr: np.ndarray) -> bool:
    """Whether every entry is 0 or 1, in one pass: viewed as unsigned, a negative integer is huge."""
    if arr.dtype == np.bool_:
        return True
    if arr.dtype.kind in "iu":
        return bool(arr.view(f"u{arr.dtype.itemsize}").max() <= 1)
    return bool(arr.min() >= 0 and arr.max() <= 1)


def _shifted_bound(bound: int, exp: int) -> int:
    """A bound on |shift(x, exp)| given |x| <= bound (a floor right shift of a negative x can grow it by one)."""
    return bound << exp if exp >= 0 else (bound >> -exp) + 1


INT32_LIMIT = 1 << 31
NARROW_A6_LIMIT = 1 << 30  # |a << activation_shift| below this (state_bits <= 31): u's sums and wraps stay in int32


def _wrap32_unless(x: torch.Tensor, bound: int) -> torch.Tensor:
    return x if bound < INT32_LIMIT else wrap32(x)


class _Plan:
    """Everything built once per network and device: exact synaptic products, neuron constants, event tables."""

    def __init__(self, qnet: QuantNetwork, device: torch.device, synapses: str | None, events: bool) -> None:
        self.qnet = qnet
        x_max = {i.name: max(1, (1 << i.graded_bits) - 1) for i in qnet.inputs}
        graded = {i.name for i in qnet.inputs if i.graded_bits}
        self.ops = {pr.name: SynapseOp(pr.weights, x_max.get(pr.src, 1), device, synapses, pr.src in graded)
                    for pr in qnet.projections}
        self.graded = graded
        self.models = {p.name: model_named(p.model) for p in qnet.populations}
        self.params = {p.name: self.models[p.name].params(p, qnet.formats, device) for p in qnet.populations}
        self.shift = qnet.formats.activation_shift
        self.state_max = qnet.formats.state_max
        # Lava's Dense/Sparse sum binary spikes in int64 but multiply graded payloads in int32 (numpy dot of
        # int32 arrays), which wraps *before* weight_exp shifts the sum.
        self.wrap_before_shift = {pr.name for pr in qnet.projections
                                  if pr.src in graded and self.ops[pr.name].bound >= INT32_LIMIT}
        # bounds on |shift(W @ x)| per projection and on the port sum per population: where below 2^31,
        # the int32 wraps are identities and are skipped
        # the shift applied to an op's result: weight_exp and the power of two the op factored out of W
        self.exp = {pr.name: pr.weight_exp + self.ops[pr.name].exp for pr in qnet.projections}
        self.shifted_bound = {pr.name: _shifted_bound(INT32_LIMIT if pr.name in self.wrap_before_shift
                                                      else self.ops[pr.name].bound, self.exp[pr.name])
                              for pr in qnet.projections}
        self.port_bound = {p.name: sum(self.shifted_bound[pr.name] for pr in qnet.incoming(p.name))
                           for p in qnet.populations}
        # Populations whose whole step provably stays in int32 (a << shift below 2^30, so no int32 wrap of the
        # input, nor of u's sums and state wraps; v below 2^31 before the clip) run in int32: half the
        # memory traffic of int64 and about 3x faster element-wise ops on the CPU. Only decay products
        # (state_bits + decay_bits + 1 wide: 37 bits on Loihi) are formed in int64 (``hwsim.fixed.decay``).
        self.narrow = {p.name: (self.port_bound[p.name] << self.shift) < NARROW_A6_LIMIT
                       and not any(pr.name in self.wrap_before_shift for pr in qnet.incoming(p.name))
                       and self.models[p.name].state_bound(self.params[p.name], qnet.formats) < INT32_LIMIT
                       for p in qnet.populations}
        self.tables = EventTables(qnet, device) if events else None
        # after which population a source's outputs are no longer needed
        order = {p.name: k for k, p in enumerate(qnet.populations)}
        self.last_use: dict[str, int] = {}
        for pr in qnet.projections:
            self.last_use[pr.src] = max(self.last_use.get(pr.src, -1), order[pr.dst])


def _delayed_product(op: SynapseOp, src: torch.Tensor) -> torch.Tensor:
    """op applied to the source outputs of steps 1..T-1 (src (T, B, n)): the (T - 1, B, n_dst) input of
    steps 2..T. A src stored sample-major (a view of a (B, T, n) result or input array) goes through the
    op in that order, all T steps (the last unused) rather than a transposing copy."""
    steps, batch, n = src.shape
    if src.is_contiguous():
        return op(src[:-1].reshape(-1, n)).view(steps - 1, batch, -1)
    return op(src.transpose(0, 1).reshape(-1, n)).view(batch, steps, -1).transpose(0, 1)[:-1]


def _accumulate(target: torch.Tensor, raw: torch.Tensor, exp: int, bound: int, first: bool,
                wrap_first: bool) -> None:
    """target (+)= int32 channel value of shift(raw, exp) (of shift(wrap32(raw), exp) with ``wrap_first``);
    raw holds exact integers (maybe as floats). In place where possible: these are the biggest arrays."""
    if first:
        target.copy_(raw)  # converts and copies in one pass
        acc = target
    else:
        acc = raw.to(torch.int64)
    if wrap_first:
        acc.copy_(wrap32(acc))
    if exp > 0:
        acc.mul_(1 << exp)  # a left shift; torch's int64 << is several times slower
    elif exp < 0:
        acc.bitwise_right_shift_(-exp)
    if bound >= INT32_LIMIT:
        acc.copy_(wrap32(acc))
    if not first:
        target.add_(acc)


def _delayed_inputs(plan: _Plan, pop: Population, a: torch.Tensor) -> list[Projection]:
    """The projections that feed steps 2..T of ``a`` (T, B, n); zeroes what none feeds: step 1 always sees
    nothing, as step t sees the sources' outputs of step t-1 (the one-step delay)."""
    incoming = plan.qnet.incoming(pop.name) if a.shape[0] > 1 else []
    (a if not incoming else a[0]).zero_()
    return incoming


def _wide_input(plan: _Plan, pop: Population, outs: dict[str, torch.Tensor], a: torch.Tensor) -> torch.Tensor:
    """Fills a (T, B, n) int64 with the port's int32 sum at every step, wrapping where Lava's int32 would."""
    incoming = _delayed_inputs(plan, pop, a)
    for j, pr in enumerate(incoming):
        _accumulate(a[1:], _delayed_product(plan.ops[pr.name], outs[pr.src]), plan.exp[pr.name],
                    plan.shifted_bound[pr.name], first=j == 0, wrap_first=pr.name in plan.wrap_before_shift)
    return _wrap32_unless(a, plan.port_bound[pop.name])  # the port adds its int32 inputs in int32


def _narrow_input(plan: _Plan, pop: Population, outs: dict[str, torch.Tensor], a6: torch.Tensor) -> None:
    """Fills a6 (T, B, n) int32 with the port's sum << activation_shift for a ``_Plan.narrow`` population: no
    wrap can occur, so each projection's shift and the activation shift fold into one multiplication."""
    for j, pr in enumerate(_delayed_inputs(plan, pop, a6)):
        raw = _delayed_product(plan.ops[pr.name], outs[pr.src])
        if raw.is_floating_point():  # exact integers below 2^30
            raw = raw.to(torch.int32)
        exp = plan.exp[pr.name]
        if exp < 0:  # Lava's floor shift comes before the activation shift
            raw = torch.bitwise_right_shift(raw, -exp)
        scale = 1 << (max(exp, 0) + plan.shift)
        if j == 0:
            torch.mul(raw, scale, out=a6[1:])
        else:
            a6[1:].add_(raw, alpha=scale)


def _run_chunk(plan: _Plan, data: dict[str, torch.Tensor], buffers: dict[str, dict[str, torch.Tensor]],
               saturated: dict[str, int]):
    """Simulate one batch chunk; ``data`` maps ports to (T, b, size) tensors, ``buffers`` the traces to
    record to (T, b, n) CPU views of the result arrays, which are filled (on the CPU the time loops write
    straight into them). Returns the chunk's EventCounts (or None)."""
    qnet, tables = plan.qnet, plan.tables
    steps, batch = next(iter(data.values())).shape[:2]
    device = next(iter(data.values())).device
    outs = dict(data)
    counts: dict[str, torch.Tensor] = {}
    traffic = np.zeros((tables.n_cores,) * 2, np.int64) if tables is not None else None

    def add_counts(new: dict[str, torch.Tensor]) -> None:
        for key, value in new.items():
            counts[key] = counts[key] + value if key in counts else value

    if tables is not None:
        for name, x in outs.items():
            add_counts(tables.source_counts(name, x))
    for k, pop in enumerate(qnet.populations):
        p = plan.params[pop.name]
        shape = (steps, batch, pop.size)
        out = {key: per_pop[pop.name] for key, per_pop in buffers.items()} if device.type == "cpu" else {}
        if plan.narrow[pop.name]:
            a6 = out["u"] if "u" in out else torch.empty(shape, dtype=torch.int32, device=device)
            _narrow_input(plan, pop, outs, a6)
            a6_bound = plan.port_bound[pop.name] << plan.shift
            active = tables.input_or_bias(pop.name, a6) if tables is not None else None  # a6 != 0 iff a != 0
        else:
            a = _wide_input(plan, pop, outs, torch.empty(shape, dtype=torch.int64, device=device))
            active = tables.input_or_bias(pop.name, a) if tables is not None else None  # before a << shift wraps
            a6 = a.mul_(1 << plan.shift)  # multiplying is faster than torch's int64 <<
            a6_bound = min(plan.port_bound[pop.name], INT32_LIMIT) << plan.shift
            if a6_bound >= INT32_LIMIT:  # numpy's int32 left shift wraps
                a6, a6_bound = wrap32(a6), INT32_LIMIT
        s, v, u = plan.models[pop.name].update(p, a6, a6_bound, v_out=out.get("v"), s_out=out.get("spikes"))
        outs[pop.name] = s.view(torch.bool)  # synapse ops take binary spikes as bool
        if pop.kind == "integrator":  # a read-out clipped at the state limit: counted, reported by simulate
            clipped = int((v.abs() >= plan.state_max).sum())
            if clipped:
                saturated[pop.name] = saturated.get(pop.name, 0) + clipped
        if tables is not None:
            assert active is not None  # computed whenever there are tables
            add_counts(tables.source_counts(pop.name, outs[pop.name]))
            add_counts({"active_neurons": tables.active_neurons(pop.name, active, u, v, p.v_init)})
            traffic += tables.traffic(pop.name, outs[pop.name])
        for key, trace in (("spikes", s), ("v", v), ("u", u)):
            if key in buffers and trace is not out.get(key):
                buffers[key][pop.name].copy_(trace.to(buffers[key][pop.name].dtype))  # narrowed before a GPU copy
        for name in [n for n, last in plan.last_use.items() if last == k and n in outs]:
            del outs[name]
    if tables is None:
        return None
    assert traffic is not None  # allocated with the tables
    per_step = {key: (counts[key].permute(1, 0, 2).cpu().numpy() if key in counts
                      else np.zeros((batch, steps, tables.n_cores), np.int64)) for key in PER_STEP}
    return EventCounts(tables.core_ids, tables.neurons, traffic, **per_step)


@torch.no_grad()
def simulate(qnet: QuantNetwork, inputs: Mapping[str, object], steps: int, *, record: bool | Iterable[str] = True,
             device: str | torch.device | None = None, batch_size: int | None = None, events: bool = True,
             synapses: str | None = None) -> HwResult:
    """Run ``qnet`` for ``steps`` steps on ``inputs`` ({port name: int array (B, T >= steps, size)}: 0/1 spikes,
    or payloads for graded ports; (B, T, *shape) frames are flattened in C order).

    ``record``: True (spikes, v, u), False, or a subset of ("spikes", "v", "u"). ``device``: default CUDA when
    torch sees a GPU, else CPU. ``batch_size``: samples simulated at once (default: as many as fit
    ``CHUNK_ELEMENTS`` state elements). ``events``: count events (``hwsim.events``). ``synapses``: force one
    ``hwsim.synapse`` strategy for every projection (default: chosen per projection); results never depend on it.
    """
    if steps < 1:
        raise InputDataError(f"steps must be at least 1, got {steps}")
    keep = _traces_to_record(record)
    device = torch.device(device) if device is not None else default_device()
    if not qnet.inputs:
        raise InputDataError("the network has no input port; hwsim needs one to know the batch size")
    data, batch = check_inputs(qnet, inputs, steps)
    if batch == 0:
        raise InputDataError("the batch is empty")
    total_neurons = sum(p.size for p in qnet.populations)
    if batch_size is None:
        batch_size = max(1, CHUNK_ELEMENTS // (steps * max(total_neurons, 1)))
    if batch_size < 1:
        raise InputDataError(f"batch_size must be at least 1, got {batch_size}")
    plan = _Plan(qnet, device, synapses, events)
    result = {key: {p.name: np.empty((batch, steps, p.size), TRACE_DTYPES[key]) for p in qnet.populations}
              for key in keep}
    parts = []
    saturated: dict[str, int] = {}
    for start in range(0, batch, batch_size):
        stop = min(start + batch_size, batch)
        # (T, b, n) views of sample-major arrays: no transposing copies in or out
        chunk = {name: torch.from_numpy(np.ascontiguousarray(arr[start:stop])).to(device).transpose(0, 1)
                 for name, arr in data.items()}
        buffers = {key: {name: torch.from_numpy(arr[start:stop]).transpose(0, 1) for name, arr in per_pop.items()}
                   for key, per_pop in result.items()}
        counts = _run_chunk(plan, chunk, buffers, saturated)
        if counts is not None:
            parts.append(counts)
    for name, clipped in saturated.items():
        warnings.warn(SaturationWarning(
            f"population {name!r}: the read-out membrane reached the {qnet.formats.state_bits}-bit state limit "
            f"±{plan.state_max:,} in {clipped:,} of {batch * steps * qnet.population(name).size:,} values and was "
            "clipped, as on the chip; its scores may tie where the float network's do not (lower the weights "
            "or add a leak)", node=name, field="v", value=clipped, allowed=plan.state_max), stacklevel=2)
    return HwResult(spikes=result.get("spikes", {}), v=result.get("v", {}), u=result.get("u", {}),
                    events=EventCounts.concatenate(parts) if parts else None,
                    integrators=tuple(p.name for p in qnet.populations if p.kind == "integrator"))
