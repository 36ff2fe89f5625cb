"""hwsim as a registered backend: the quantized, placed network in the bit-exact emulator.

A thin adapter: the model's Mapping (a graph is compiled first) encodes the float inputs into the integers
its input ports take, and ``hwsim.sim.simulate`` (hwsim's own API) runs them.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from neuromap.backends.base import TRACES, Model, Traces, every_step, population_shapes, shaped
from neuromap.progress import bar


class HwsimBackend:
    options: ClassVar[dict[str, str]] = {
        "device": "torch device for the emulator, e.g. cuda (default: cuda when present)",
        "devices": "several torch devices, e.g. ['cuda:0', 'cuda:1']: the batch is sharded across them, with the "
                   "results of one device (instead of device)"}
    records: ClassVar[frozenset[str]] = frozenset({*TRACES, "events"})

    def run(self, model: Model, frames: dict[str, np.ndarray], steps: int, record: frozenset[str],
            options: Mapping[str, Any]) -> Traces:
        import hwsim.sim

        mapping = model.mapping()
        inputs = mapping.encode_inputs(every_step(frames, steps))
        batch = len(next(iter(frames.values())))
        with bar(desc="hwsim", total=batch, unit="sample") as progress:
            hw = hwsim.sim.simulate(mapping.netdesc(), inputs, steps, record=tuple(k for k in TRACES if k in record),
                                    device=options.get("device"), devices=options.get("devices"),
                                    events="events" in record, progress=progress.update)
        shapes = population_shapes(model.graph)
        return Traces(engine="hwsim", spikes=shaped(hw.spikes, shapes), v=shaped(hw.v, shapes),
                      u=shaped(hw.u, shapes), events=hw.events)
