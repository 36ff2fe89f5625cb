"""Bit-exact, vectorised emulation of a placed, quantized network (docs/architecture.md, "Fixed-point step").

``simulate`` reproduces Lava's fixed_pt arithmetic spike for spike and state for state, for a whole batch
at once, in torch (CUDA when available). A population's input at step t depends only on its sources'
outputs at step t-1, so it runs strongly connected component by component (``QuantNetwork.components``,
sources first). A feed-forward population (a component of one, without a self-projection) runs all steps
at once: one exact product per projection over all (step, sample) rows (``hwsim.synapse``), then its
state recurrences over time (its model's update, ``hwsim.models``). The members of a recurrent component
get their feed-forward input the same way, for all steps at once, and then step together: at each step
every member's input adds the recurrent products of the members' spikes of the previous step, through
the same shifts and int32 wraps (``_accumulate``), and its model's one-step update runs
(``FixedModel.step``). Event counts come from the same traces. Feed-forward populations whose bounds allow
it run in int32 (``_Plan.narrow``), and on the CPU their time loops write straight into the sample-major
result arrays, seen as (T, B, n) views.
"""
from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hwsim.errors import HwsimError, SaturationWarning, SimOptionError
from hwsim.events import PER_STEP, EventCounts, EventTables
from hwsim.fixed import wrap32
from hwsim.memory import samples_per_chunk
from hwsim.models import ModelError, StepState, model_named
from hwsim.netdesc import Population, Projection, QuantNetwork
from hwsim.synapse import SynapseOp
from hwsim.synapse_formats import FormatTables

TRACES = ("spikes", "v", "u")
TRACE_DTYPES = {"spikes": np.int8, "v": np.int32, "u": np.int32}


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
        self.ops = {pr.name: SynapseOp(pr.weights, x_max.get(pr.src, 1), device, synapses, pr.src in graded,
                                       conv=pr.conv) for pr in qnet.projections}
        self.graded = graded
        self.models = {p.name: model_named(p.model) for p in qnet.populations}
        recurrent = {pr.name for pr in qnet.projections if qnet.recurrent(pr)}
        self.feed_forward = {p.name: [pr for pr in qnet.incoming(p.name) if pr.name not in recurrent]
                             for p in qnet.populations}
        self.recurrent_in = {p.name: [pr for pr in qnet.incoming(p.name) if pr.name in recurrent]
                             for p in qnet.populations}
        # components in a topological order; a recurrent one (it holds a recurrent projection) steps together
        self.schedule = [tuple(qnet.population(name) for name in c) for c in qnet.components]
        self.stepped = {k for k, c in enumerate(self.schedule) if any(self.recurrent_in[p.name] for p in c)}
        self.steps: dict[str, Callable[[Any, torch.Tensor, int, StepState | None], StepState]] = {}
        for k in self.stepped:
            for p in self.schedule[k]:
                step = self.models[p.name].step
                if step is None:
                    raise ModelError(f"population {p.name!r}: neuron model {p.model!r} has no one-step update, so it "
                                     "cannot run in a recurrent component", node=p.name, field="model", value=p.model)
                self.steps[p.name] = step
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
        self.formats = FormatTables(qnet, device) if events else None  # synops by synapse format
        # after which component a source's outputs are no longer needed
        order = {p.name: k for k, c in enumerate(self.schedule) for p in c}
        self.last_use: dict[str, int] = {}
        for pr in qnet.projections:
            self.last_use[pr.src] = max(self.last_use.get(pr.src, -1), order[pr.dst])


_PLANS: weakref.WeakKeyDictionary[QuantNetwork, dict[tuple, _Plan]] = weakref.WeakKeyDictionary()


def _plan(qnet: QuantNetwork, device: torch.device, synapses: str | None, events: bool) -> _Plan:
    """The network's plan for these options, reused by later calls (building one reads every synapse, which
    for a deep conv net costs more than simulating a batch); freed with the network."""
    plans = _PLANS.setdefault(qnet, {})
    key = (device, synapses, events)
    if key not in plans:
        plans[key] = _Plan(qnet, device, synapses, events)
    return plans[key]


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
    """The feed-forward projections that feed steps 2..T of ``a`` (T, B, n); zeroes what none feeds: step 1
    always sees nothing, as step t sees the sources' outputs of step t-1 (the one-step delay)."""
    incoming = plan.feed_forward[pop.name] if a.shape[0] > 1 else []
    (a if not incoming else a[0]).zero_()
    return incoming


def _wide_input(plan: _Plan, pop: Population, outs: dict[str, torch.Tensor], a: torch.Tensor) -> torch.Tensor:
    """Fills a (T, B, n) int64 with the port's int32 sum of the feed-forward projections at every step,
    wrapping where Lava's int32 would."""
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


def _shifted_input(plan: _Plan, pop: Population, a: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(a6, its bound): the port's int32 sum a (int64, any shape) << activation_shift, wrapped as numpy's int32
    left shift wraps; works in place on a."""
    a6 = a.mul_(1 << plan.shift)  # multiplying is faster than torch's int64 <<
    a6_bound = min(plan.port_bound[pop.name], INT32_LIMIT) << plan.shift
    if a6_bound >= INT32_LIMIT:
        a6, a6_bound = wrap32(a6), INT32_LIMIT
    return a6, a6_bound


Traces = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]  # spikes, v, u, active (events)


def _batched_population(plan: _Plan, pop: Population, outs: dict[str, torch.Tensor], out: dict[str, torch.Tensor],
                        shape: tuple[int, int, int], device: torch.device) -> Traces:
    """A feed-forward population over all steps at once; writes into the ``out`` buffers where it can."""
    tables = plan.tables
    p = plan.params[pop.name]
    if plan.narrow[pop.name]:
        a6 = out["u"] if "u" in out else torch.empty(shape, dtype=torch.int32, device=device)
        _narrow_input(plan, pop, outs, a6)
        a6_bound = plan.port_bound[pop.name] << plan.shift
        active = tables.input_or_bias(pop.name, a6) if tables is not None else None  # a6 != 0 iff a != 0
    else:
        a = _wide_input(plan, pop, outs, torch.empty(shape, dtype=torch.int64, device=device))
        active = tables.input_or_bias(pop.name, a) if tables is not None else None  # before a << shift wraps
        a6, a6_bound = _shifted_input(plan, pop, a)
    s, v, u = plan.models[pop.name].update(p, a6, a6_bound, v_out=out.get("v"), s_out=out.get("spikes"))
    return s, v, u, active


def _stepped_component(plan: _Plan, members: tuple[Population, ...], outs: dict[str, torch.Tensor],
                       shape: tuple[int, int], device: torch.device) -> dict[str, Traces]:
    """A recurrent component's members stepped together: at step t each member's input is its feed-forward
    input (all steps at once, ``_wide_input``) plus the recurrent products of the members' spikes of step
    t - 1, summed at the port as every input is (``_accumulate``, then the port's int32 wrap)."""
    steps, batch = shape
    a, spikes, v_all, u_all = {}, {}, {}, {}
    for pop in members:
        full = (steps, batch, pop.size)
        a[pop.name] = _wide_input(plan, pop, outs, torch.empty(full, dtype=torch.int64, device=device))
        spikes[pop.name] = torch.empty(full, dtype=torch.int8, device=device)
        # after each step |v| <= state_max < 2^30 and u is a wrapped int32 value: int32 holds both exactly
        v_all[pop.name], u_all[pop.name] = (torch.empty(full, dtype=torch.int32, device=device) for _ in range(2))
    state: dict[str, StepState | None] = dict.fromkeys(a)
    for t in range(steps):
        for pop in members:
            at = a[pop.name][t]
            if t:
                for pr in plan.recurrent_in[pop.name]:
                    raw = plan.ops[pr.name](spikes[pr.src][t - 1].view(torch.bool))
                    _accumulate(at, raw, plan.exp[pr.name], plan.shifted_bound[pr.name], first=False,
                                wrap_first=False)
                wrapped = _wrap32_unless(at, plan.port_bound[pop.name])
                if wrapped is not at:
                    at.copy_(wrapped)
            a6, a6_bound = _shifted_input(plan, pop, at.clone())
            new = plan.steps[pop.name](plan.params[pop.name], a6, a6_bound, state[pop.name])
            state[pop.name] = new
            spikes[pop.name][t], v_all[pop.name][t], u_all[pop.name][t] = new.s, new.v, new.u
    tables = plan.tables
    return {pop.name: (spikes[pop.name], v_all[pop.name], u_all[pop.name],
                       tables.input_or_bias(pop.name, a[pop.name]) if tables is not None else None)
            for pop in members}


def _run_chunk(plan: _Plan, data: dict[str, torch.Tensor], buffers: dict[str, dict[str, torch.Tensor]],
               saturated: dict[str, int]):
    """Simulate one batch chunk; ``data`` maps ports to (T, b, size) tensors, ``buffers`` the traces to
    record to (T, b, n) CPU views of the result arrays, which are filled (on the CPU the time loops of
    feed-forward populations write straight into them). Returns the chunk's EventCounts (or None)."""
    tables, formats = plan.tables, plan.formats
    steps, batch = next(iter(data.values())).shape[:2]
    device = next(iter(data.values())).device
    outs = dict(data)
    counts: dict[str, torch.Tensor] = {}
    traffic = np.zeros((tables.n_cores,) * 2, np.int64) if tables is not None else None

    def add_counts(new: dict[str, torch.Tensor]) -> None:
        for key, value in new.items():
            counts[key] = counts[key] + value if key in counts else value

    if tables is not None:
        assert formats is not None, "built with the tables"
        for name, x in outs.items():
            add_counts(tables.source_counts(name, x))
            add_counts(formats.counts(name, x))
    for k, component in enumerate(plan.schedule):
        written: dict[str, dict[str, torch.Tensor]] = {}  # per population, the buffers its update wrote into
        if k in plan.stepped:
            results = _stepped_component(plan, component, outs, (steps, batch), device)
        else:
            (pop,) = component
            written[pop.name] = ({key: per_pop[pop.name] for key, per_pop in buffers.items()}
                                 if device.type == "cpu" else {})
            results = {pop.name: _batched_population(plan, pop, outs, written[pop.name], (steps, batch, pop.size),
                                                     device)}
        for pop in component:
            s, v, u, active = results[pop.name]
            out = written.get(pop.name, {})
            outs[pop.name] = s.view(torch.bool)  # synapse ops take binary spikes as bool
            if pop.kind == "integrator":  # a read-out clipped at the state limit: counted, reported by simulate
                clipped = int((v.abs() >= plan.state_max).sum())
                if clipped:
                    saturated[pop.name] = saturated.get(pop.name, 0) + clipped
            if tables is not None:
                assert active is not None and formats is not None  # computed whenever there are tables
                add_counts(tables.source_counts(pop.name, outs[pop.name]))
                add_counts(formats.counts(pop.name, outs[pop.name]))
                add_counts({"active_neurons": tables.active_neurons(pop.name, active, u, v,
                                                                    plan.params[pop.name].v_init)})
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


def _devices(device: str | torch.device | None, devices: Iterable[str | torch.device] | None) -> list[torch.device]:
    if devices is None:
        return [torch.device(device) if device is not None else default_device()]
    if device is not None:
        raise SimOptionError("give device or devices, not both", field="devices")
    chosen = [torch.device(d) for d in devices]
    if not chosen:
        raise SimOptionError("devices: the list is empty", field="devices")
    return chosen


def _run_shard(plan: _Plan, data: dict[str, np.ndarray], result: dict[str, dict[str, np.ndarray]], start: int,
               stop: int, batch_size: int, device: torch.device,
               progress: Callable[[int], object] | None) -> tuple[list[EventCounts], dict[str, int]]:
    """Samples start..stop on one device, in chunks of ``batch_size``; fills their rows of ``result``;
    ``progress(n)`` after each chunk of n samples."""
    parts: list[EventCounts] = []
    saturated: dict[str, int] = {}
    with torch.no_grad():  # per thread: a shard may run in a worker thread
        for lo in range(start, stop, batch_size):
            hi = min(lo + batch_size, stop)
            # (T, b, n) views of sample-major arrays: no transposing copies in or out
            chunk = {name: torch.from_numpy(np.ascontiguousarray(arr[lo:hi])).to(device).transpose(0, 1)
                     for name, arr in data.items()}
            buffers = {key: {name: torch.from_numpy(arr[lo:hi]).transpose(0, 1) for name, arr in per_pop.items()}
                       for key, per_pop in result.items()}
            counts = _run_chunk(plan, chunk, buffers, saturated)
            if counts is not None:
                parts.append(counts)
            if progress is not None:
                progress(hi - lo)
    return parts, saturated


@torch.no_grad()
def simulate(qnet: QuantNetwork, inputs: Mapping[str, object], steps: int, *, record: bool | Iterable[str] = True,
             device: str | torch.device | None = None, batch_size: int | None = None, events: bool = True,
             synapses: str | None = None, devices: Iterable[str | torch.device] | None = None,
             memory: int | None = None, progress: Callable[[int], object] | None = None) -> HwResult:
    """Run ``qnet`` for ``steps`` steps on ``inputs`` ({port name: int array (B, T >= steps, size)}: 0/1 spikes,
    or payloads for graded ports; (B, T, *shape) frames are flattened in C order).

    ``record``: True (spikes, v, u), False, or a subset of ("spikes", "v", "u"). ``device``: default CUDA when
    torch sees a GPU, else CPU. ``devices``: several devices instead (e.g. ["cuda:0", "cuda:1"]): the batch is
    split into one contiguous shard per device, run side by side in threads (torch's kernels release the
    GIL); results are those of one device. ``batch_size``: samples simulated at once per device (default: as
    many as fit half the device's free memory, or half of ``memory`` bytes, ``hwsim.memory``; the recorded
    traces are allocated for the whole batch on top). ``events``: count events (``hwsim.events``).
    ``synapses``: force one ``hwsim.synapse`` strategy for every projection (default: chosen per projection);
    results never depend on it, nor on ``batch_size`` or ``devices``. ``progress``: called with the number of
    samples each finished chunk held (e.g. a progress bar's ``update``; from the shards' threads).
    """
    if steps < 1:
        raise InputDataError(f"steps must be at least 1, got {steps}")
    keep = _traces_to_record(record)
    chosen = _devices(device, devices)
    if not qnet.inputs:
        raise InputDataError("the network has no input port; hwsim needs one to know the batch size")
    data, batch = check_inputs(qnet, inputs, steps)
    if batch == 0:
        raise InputDataError("the batch is empty")
    if batch_size is not None and batch_size < 1:
        raise InputDataError(f"batch_size must be at least 1, got {batch_size}")
    plans = [_plan(qnet, d, synapses, events) for d in chosen]  # built before the free memory is read
    sizes = [batch_size or samples_per_chunk(qnet, steps, d, memory) for d in chosen]
    result = {key: {p.name: np.empty((batch, steps, p.size), TRACE_DTYPES[key]) for p in qnet.populations}
              for key in keep}
    bounds = np.linspace(0, batch, len(chosen) + 1).round().astype(int)
    jobs = [(plan, data, result, int(lo), int(hi), size, d, progress)
            for plan, size, d, lo, hi in zip(plans, sizes, chosen, bounds[:-1], bounds[1:]) if hi > lo]
    if len(jobs) == 1:
        shards = [_run_shard(*jobs[0])]
    else:
        with ThreadPoolExecutor(len(jobs)) as pool:
            shards = list(pool.map(lambda job: _run_shard(*job), jobs))
    parts = [part for shard_parts, _ in shards for part in shard_parts]
    saturated: dict[str, int] = {}
    for _, shard_saturated in shards:
        for name, clipped in shard_saturated.items():
            saturated[name] = saturated.get(name, 0) + clipped
    plan = plans[0]
    for name, clipped in saturated.items():
        warnings.warn(SaturationWarning(
            f"population {name!r}: the read-out membrane reached the {qnet.formats.state_bits}-bit state limit "
            f"±{plan.state_max:,} in {clipped:,} of {batch * steps * qnet.population(name).size:,} values and was "
            "clipped, as on the chip; its scores may tie where the float network's do not (lower the weights "
            "or add a leak)", node=name, field="v", value=clipped, allowed=plan.state_max), stacklevel=2)
    return HwResult(spikes=result.get("spikes", {}), v=result.get("v", {}), u=result.get("u", {}),
                    events=EventCounts.concatenate(parts) if parts else None,
                    integrators=tuple(p.name for p in qnet.populations if p.kind == "integrator"))
