"""``FrameSource``: sends stored input frames, each held for a number of steps.

At step t (from 1) it sends ``frames[:, ((t - 1) // hold) % n_frames]``. With one frame per sample held for
the sample's steps, direct-encoded inputs are stored once per sample instead of once per step (Lava's
RingBuffer would need the (size, samples * steps) array); with ``hold=1`` it is that RingBuffer.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class FrameSource(AbstractProcess):
    def __init__(self, *, frames: np.ndarray, hold: int, name: str | None = None) -> None:
        if hold < 1:
            raise ValueError("FrameSource: hold must be >= 1")
        super().__init__(hold=int(hold), name=name)
        self.frames = Var(shape=frames.shape, init=frames)
        self.s_out = OutPort(shape=frames.shape[:1])


class _FrameSourceModel(PyLoihiProcessModel):
    def run_spk(self) -> None:
        column = ((self.time_step - 1) // self.proc_params["hold"]) % self.frames.shape[1]
        self.s_out.send(self.frames[:, column])


@implements(proc=FrameSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFrameSourceFloat(_FrameSourceModel):
    frames: np.ndarray = LavaPyType(np.ndarray, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


@implements(proc=FrameSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFrameSourceFixed(_FrameSourceModel):
    frames: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
