"""Named sets of per-event estimator constants of a chip target, each value with a range and a source.

A target file names its sets under ``[constant_sets.NAME]`` (``label``, ``basis``, ``source``, and the
tables ``energy`` and ``timing``) and the one an estimate uses unless told otherwise in
``[estimator] default_set``. A value is a plain number (typical; low = high = typical, the set's source)
or an inline table ``{ typical, low, high, source }`` with low <= typical <= high. Every event key below
is required in every set: a set without a figure for an event gives the closest published one, or 0,
and says so in the value's ``source``. docs/estimator.md gives the meaning of every key and the formulas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mappings.errors import TargetError

BASES = ("pre-silicon", "silicon-calibrated", "measured", "estimate")
LEVELS = ("typical", "low", "high")

ENERGY_KEYS = ("synop_dense_pj", "synop_sparse_pj", "synop_conv_pj", "neuron_access_pj", "neuron_update_pj",
               "spike_generation_pj", "message_out_pj", "message_in_pj", "hop_east_west_pj", "hop_north_south_pj",
               "chip_crossing_pj", "input_injection_pj", "readout_pj", "management_pj_per_step", "static_power_mw",
               "board_power_mw", "message_payload_bit_pj", "management_power_mw")
TIMING_KEYS = ("synop_dense_ns", "synop_sparse_ns", "synop_conv_ns", "neuron_access_ns", "neuron_update_ns",
               "spike_generation_ns", "message_out_ns", "message_in_ns", "hop_east_west_ns", "hop_north_south_ns",
               "chip_crossing_ns", "input_injection_ns", "management_ns_per_step", "tile_injection_ns", "link_ns")
BARRIER_KEYS = ("barrier_ns", "barrier_multichip_ns")


@dataclass(frozen=True)
class Figure:
    """One constant: its typical value and the [low, high] range the sources allow."""

    typical: float
    low: float
    high: float
    source: str

    def at(self, level: str) -> float:
        return float(getattr(self, level))


@dataclass(frozen=True)
class ConstantSet:
    """Per-event energies (pJ; powers in mW) and times (ns), and the barrier tables, of one named set.

    ``barrier_ns``: ((tiles_up_to, ns), ...) ascending, the last entry covering a whole chip;
    ``barrier_multichip_ns``: ((chips_up_to, ns), ...) for a network on more than one chip.
    """

    name: str
    label: str
    basis: str
    source: str
    energy: dict[str, Figure]
    timing: dict[str, Figure]
    barrier_ns: tuple[tuple[int, Figure], ...]
    barrier_multichip_ns: tuple[tuple[int, Figure], ...]

    def to_document(self) -> dict[str, Any]:
        """The set as a target file's ``[constant_sets.NAME]`` table holds it (``parse_constant_sets`` reads it)."""
        def figure(f: Figure) -> dict[str, Any]:
            return {"typical": f.typical, "low": f.low, "high": f.high, "source": f.source}

        timing: dict[str, Any] = {k: figure(f) for k, f in self.timing.items()}
        for key in BARRIER_KEYS:
            timing[key] = [[n, figure(f)] for n, f in getattr(self, key)]
        return {"label": self.label, "basis": self.basis, "source": self.source,
                "energy": {k: figure(f) for k, f in self.energy.items()}, "timing": timing}

    def energy_at(self, level: str) -> dict[str, float]:
        return {k: f.at(level) for k, f in self.energy.items()}

    def timing_at(self, level: str) -> dict[str, float]:
        return {k: f.at(level) for k, f in self.timing.items()}

    def barrier_at(self, level: str, tiles: int, chips: int) -> float:
        """The barrier (ns) of one step over ``tiles`` tiles of one chip, or over ``chips`` chips: the first
        table entry whose count reaches it."""
        table, count = (self.barrier_ns, tiles) if chips == 1 else (self.barrier_multichip_ns, chips)
        for up_to, figure in table:
            if count <= up_to:
                return figure.at(level)
        raise TargetError(f"constant set {self.name!r}: the barrier table ends at {table[-1][0]}, the network uses "
                          f"{count} {'tiles' if chips == 1 else 'chips'}", field=f"[constant_sets.{self.name}.timing]",
                          value=count, allowed=table[-1][0])


def _error(where: str, field: str, message: str, **facts: Any) -> TargetError:
    return TargetError(f"{where}: {field}: {message}", path=where, field=field, **facts)


# The largest sane value per unit, far above any chip built or planned: beyond it is a typo, and estimates
# would overflow.
MAXIMA = {"pj": (1e6, "1 uJ per event"), "pj_per_step": (1e9, "1 mJ per step"), "mw": (1e6, "1 kW"),
          "ns": (1e9, "1 s per event"), "ns_per_step": (1e9, "1 s per step")}
# With these > 0 the energy and the latency that estimates divide by are never 0: every mapped neuron is
# accessed every step, and every step ends with a barrier.
POSITIVE = ("neuron_access_pj", "barrier_ns", "barrier_multichip_ns")


def _number(value: Any, where: str, field: str, unit: str, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _error(where, field, f"expected a number, got {type(value).__name__} ({value!r})", value=value)
    if isinstance(value, int) and abs(value) >= 1 << 1000:  # TOML integers may be any size
        value = math.inf
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise _error(where, field, f"must be a finite number {bound}, got {value!r}", value=value, allowed=bound)
    largest, per = MAXIMA[unit]
    if value > largest:
        raise _error(where, field, f"must be at most {largest:g} ({per}), got {value!r}", value=value,
                     allowed=f"<= {largest:g}")
    return float(value)


def parse_figure(value: Any, where: str, field: str, default_source: str, key: str) -> Figure:
    """A plain number or ``{ typical, low, high, source }`` (source optional: the set's), of event key ``key``
    (its unit is the key's ending: pj, mw, ns, pj_per_step, ns_per_step)."""
    unit = "_".join(key.split("_")[-3:]) if key.endswith("_per_step") else key.rsplit("_", 1)[-1]
    positive = key in POSITIVE
    if not isinstance(value, dict):
        x = _number(value, where, field, unit, positive)
        return Figure(x, x, x, default_source)
    unknown = sorted(set(value) - {*LEVELS, "source"})
    if unknown:
        raise _error(where, f"{field}.{unknown[0]}", f"unknown key (known: {', '.join(LEVELS)}, source)",
                     allowed=(*LEVELS, "source"))
    missing = [k for k in LEVELS if k not in value]
    if missing:
        raise _error(where, f"{field}.{missing[0]}", "missing (a range gives typical, low and high)")
    typical, low, high = (_number(value[k], where, f"{field}.{k}", unit, positive) for k in LEVELS)
    if not low <= typical <= high:
        raise _error(where, field, f"needs low <= typical <= high, got {low!r} <= {typical!r} <= {high!r}",
                     value=(low, typical, high), allowed="low <= typical <= high")
    source = value.get("source", default_source)
    if not isinstance(source, str) or not source.strip():
        raise _error(where, f"{field}.source", "must be a non-empty string", value=source)
    return Figure(typical, low, high, source)


def _table(raw: Any, where: str, field: str, keys: tuple[str, ...], extra: tuple[str, ...],
           default_source: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _error(where, field, "missing or not a table", value=raw)
    unknown = sorted(set(raw) - set(keys) - set(extra))
    if unknown:
        raise _error(where, f"{field} {unknown[0]}", f"unknown key (known: {', '.join((*keys, *extra))})",
                     allowed=(*keys, *extra))
    missing = [k for k in (*keys, *extra) if k not in raw]
    if missing:
        raise _error(where, f"{field} {missing[0]}", "missing (every event key is required in every set)")
    return {k: parse_figure(raw[k], where, f"{field} {k}", default_source, k) for k in keys}


def _barrier(raw: Any, where: str, field: str, default_source: str, key: str) -> tuple[tuple[int, Figure], ...]:
    if not isinstance(raw, list) or not raw:
        raise _error(where, field, "must be a non-empty list of [count_up_to, ns] pairs", value=raw)
    entries: list[tuple[int, Figure]] = []
    for i, pair in enumerate(raw):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int)
                and not isinstance(pair[0], bool) and pair[0] > 0):
            raise _error(where, f"{field}[{i}]", f"must be [count_up_to > 0 (an integer), ns], got {pair!r}",
                         value=pair)
        if entries and pair[0] <= entries[-1][0]:
            raise _error(where, f"{field}[{i}]", f"counts must ascend, {pair[0]} follows {entries[-1][0]}",
                         value=pair[0], allowed=f"> {entries[-1][0]}")
        entries.append((pair[0], parse_figure(pair[1], where, f"{field}[{i}]", default_source, key)))
    return tuple(entries)


def parse_constant_sets(doc: dict, where: str, chip_tiles: int) -> tuple[str, dict[str, ConstantSet]]:
    """The ``[estimator]`` default set's name and every ``[constant_sets.NAME]`` of a target document;
    ``chip_tiles``: the target's tiles per chip, which every ``barrier_ns`` table must reach."""
    sets_raw = doc.get("constant_sets")
    if not isinstance(sets_raw, dict) or not sets_raw:
        raise _error(where, "[constant_sets]", "missing: a chip target needs at least one constant set")
    sets = {}
    for name, raw in sets_raw.items():
        base = f"[constant_sets.{name}]"
        if not isinstance(raw, dict):
            raise _error(where, base, "must be a table", value=raw)
        unknown = sorted(set(raw) - {"label", "basis", "source", "energy", "timing"})
        if unknown:
            raise _error(where, f"{base} {unknown[0]}", "unknown key (known: label, basis, source, energy, timing)",
                         allowed=("label", "basis", "source", "energy", "timing"))
        for key in ("label", "basis", "source"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise _error(where, f"{base} {key}", "missing or not a non-empty string", value=raw.get(key))
        if raw["basis"] not in BASES:
            raise _error(where, f"{base} basis", f"must be one of {', '.join(BASES)}, got {raw['basis']!r}",
                         value=raw["basis"], allowed=BASES)
        source = raw["source"]
        energy = _table(raw.get("energy"), where, f"[constant_sets.{name}.energy]", ENERGY_KEYS, (), source)
        timing_raw = raw.get("timing")
        timing = _table(timing_raw, where, f"[constant_sets.{name}.timing]", TIMING_KEYS, BARRIER_KEYS, source)
        assert isinstance(timing_raw, dict), "_table refuses a timing that is not a table"
        barrier = _barrier(timing_raw["barrier_ns"], where, f"[constant_sets.{name}.timing] barrier_ns", source,
                           "barrier_ns")
        multichip = _barrier(timing_raw["barrier_multichip_ns"], where,
                             f"[constant_sets.{name}.timing] barrier_multichip_ns", source, "barrier_multichip_ns")
        # a whole chip is what a table must reach; a system may be edited to hold more chips than the multi-chip
        # table covers, and a network on that many is refused when it is estimated (ConstantSet.barrier_at)
        if barrier[-1][0] < chip_tiles:
            raise _error(where, f"[constant_sets.{name}.timing] barrier_ns",
                         f"the last entry covers {barrier[-1][0]}, the target has {chip_tiles}", value=barrier[-1][0],
                         allowed=chip_tiles)
        sets[name] = ConstantSet(name, raw["label"], raw["basis"], source, energy, timing, barrier, multichip)
    estimator = doc.get("estimator")
    if not isinstance(estimator, dict) or set(estimator) != {"default_set"}:
        raise _error(where, "[estimator]", "must be a table with exactly default_set", value=estimator)
    default = estimator["default_set"]
    if default not in sets:
        raise _error(where, "[estimator] default_set", f"{default!r} is not one of the constant sets "
                     f"({', '.join(sets)})", value=default, allowed=tuple(sets))
    return default, sets
