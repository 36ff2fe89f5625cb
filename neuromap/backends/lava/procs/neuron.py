"""``Neurons``: one population of docs/architecture.md's neuron, with a float and a fixed-point model.

Per-neuron parameters (Lava's stock LIF holds vth, du, dv as one scalar per population), both reset rules
("subtract", "zero"), both reset timings ("immediate", "next_step") and two kinds: "spiking", and
"integrator" (never spikes; the read-out).

* floating_pt follows the float step of docs/architecture.md with the same float64 operations, in the
  same order, as ``neuromap.backends.torch_sim``: ``du``/``dv`` are the fractions lost per step
  (i_decay, v_decay), ``vth`` the threshold, ``bias_mant`` the bias (``bias_exp`` unused, as in Lava's
  float LIF). An integrator sends its v (a graded value) on ``s_out``.
* fixed_pt follows "Fixed-point step" bit for bit (Lava's ``PyLifModelBitAcc`` arithmetic: du + 1, 24-bit
  wrap of u, saturation of v, vth << 6, strict >), in int64. An integrator sends zeros. Its widths are
  process parameters, ``state_bits``, ``decay_bits`` and ``activation_shift`` (a ``hwsim.netdesc.Formats``'
  fields; Loihi's 24, 12 and 6 by default, the values Lava's own LIF hard-codes), so it runs any chip's
  formats that hwsim runs. The LavaPyType precisions below document Loihi's widths; Python models ignore them.

``input_bias`` is a constant added to the synaptic input a every step (an Affine's bias, which enters u,
not v; the float graph's). ``u_init`` is u at step 0 (0 by default; a bias axon's precharge,
hwsim.netdesc). ``sample_steps`` lays samples end to end in one run: at every step t with
(t - 1) % sample_steps == 0 the state returns to u = u_init, v = v_init, s = 0 and that step's synaptic
input is dropped, because it is what the previous sample's last spikes sent through the one-step delay
of Dense/Sparse (a recurrent one included); by the one time-step definition the first step of a run
receives nothing. ``run_spk`` receives ``a_in`` before it sends ``s_out``: in a cycle the Dense/Sparse
between two Neurons sends first (network.py), so the loop cannot deadlock.
``state_out`` streams (s, v, u) after each step for recording (connect an Extractor to it). ``tie_in``
is read and ignored: Lava compiles only the processes connected to the one it runs, so a network made of
several unconnected parts is tied together by one source sending into a ``tie_in`` of each part.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

RESETS = ("subtract", "zero")
RESET_TIMINGS = ("immediate", "next_step")
KINDS = ("spiking", "integrator")
_VARS = ("vth", "du", "dv", "bias_mant", "bias_exp", "v_init", "u_init", "input_bias")


class Neurons(AbstractProcess):
    def __init__(self, *, shape: tuple[int], vth, du, dv, bias_mant, bias_exp=0, v_init=0, u_init=0, input_bias=0,
                 reset: str = "subtract", reset_timing: str = "immediate", kind: str = "spiking",
                 sample_steps: int, state_bits: int = 24, decay_bits: int = 12, activation_shift: int = 6,
                 name: str | None = None) -> None:
        if reset not in RESETS or reset_timing not in RESET_TIMINGS or kind not in KINDS:
            raise ValueError(f"Neurons: reset {reset!r}, reset_timing {reset_timing!r} or kind {kind!r} unknown")
        if sample_steps < 1:
            raise ValueError("Neurons: sample_steps must be >= 1")
        super().__init__(shape=shape, reset=reset, reset_timing=reset_timing, kind=kind,
                         sample_steps=int(sample_steps), state_bits=int(state_bits), decay_bits=int(decay_bits),
                         activation_shift=int(activation_shift), name=name)
        (n,) = shape
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.state_out = OutPort(shape=(3, n))
        self.tie_in = InPort(shape=(1,))
        values = dict(vth=vth, du=du, dv=dv, bias_mant=bias_mant, bias_exp=bias_exp, v_init=v_init,
                      u_init=u_init, input_bias=input_bias)
        for key in _VARS:
            setattr(self, key, Var(shape=shape, init=np.broadcast_to(np.asarray(values[key]), shape).copy()))
        self.u = Var(shape=shape, init=np.broadcast_to(np.asarray(u_init), shape).copy())
        self.v = Var(shape=shape, init=np.broadcast_to(np.asarray(v_init), shape).copy())
        self.s_prev = Var(shape=shape, init=np.zeros(shape))


class _NeuronsModel(PyLoihiProcessModel):
    """Shared step frame: sample boundary, update, send, stream the state."""

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.sample_steps = proc_params["sample_steps"]
        self.subtract = proc_params["reset"] == "subtract"
        self.late = proc_params["reset_timing"] == "next_step"
        self.spiking = proc_params["kind"] == "spiking"

    def run_spk(self) -> None:
        a = self.a_in.recv()
        if self.tie_in.csp_ports:
            self.tie_in.recv()
        if (self.time_step - 1) % self.sample_steps == 0:
            self.u[:] = self.u_init
            self.v[:] = self.v_init
            self.s_prev[:] = 0
            a = np.zeros_like(a)
        out = self.update(a)
        self.s_out.send(out)
        if self.state_out.csp_ports:
            self.state_out.send(np.stack([self.s_prev, self.v, self.u]))


@implements(proc=Neurons, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyNeuronsFloat(_NeuronsModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    tie_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    state_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    vth: np.ndarray = LavaPyType(np.ndarray, float)
    du: np.ndarray = LavaPyType(np.ndarray, float)
    dv: np.ndarray = LavaPyType(np.ndarray, float)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, float)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, float)
    v_init: np.ndarray = LavaPyType(np.ndarray, float)
    u_init: np.ndarray = LavaPyType(np.ndarray, float)
    input_bias: np.ndarray = LavaPyType(np.ndarray, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    s_prev: np.ndarray = LavaPyType(np.ndarray, float)

    def update(self, a: np.ndarray) -> np.ndarray:
        # Same operations in the same order as torch_sim._Population.step, so float64 results agree.
        self.u[:] = (1 - self.du) * self.u + (a + self.input_bias)
        if not self.spiking:
            self.v[:] = (1 - self.dv) * self.v + self.u + self.bias_mant
            return self.v.copy()
        s_prev = self.s_prev
        v_prev = self.v * (1 - s_prev) if self.late and not self.subtract else self.v
        v = (1 - self.dv) * v_prev + self.u + self.bias_mant
        if self.late and self.subtract:
            v = v - self.vth * s_prev
        s = (v > self.vth).astype(float)
        if not self.late:
            v = v - self.vth * s if self.subtract else v * (1 - s)
        self.v[:] = v
        self.s_prev[:] = s
        return s


def _wrap32(x: np.ndarray) -> np.ndarray:
    """int64 values reduced to int32's range, two's complement, as an int32 store would."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _trunc0_decay(x: np.ndarray, keep: np.ndarray, decay_bits: int) -> np.ndarray:
    """x * keep / 2^decay_bits rounded toward zero (Loihi's decay, 4096 = 2^12 there)."""
    p = x * keep
    return np.sign(p) * (np.abs(p) >> decay_bits)


@implements(proc=Neurons, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyNeuronsFixed(_NeuronsModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    tie_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=1)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    state_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    du: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=4)
    v_init: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    u_init: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    input_bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    s_prev: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.half_range = 1 << (proc_params["state_bits"] - 1)  # 24 bits: docs/reference/loihi_lava.md §2.1
        self.decay_bits = proc_params["decay_bits"]
        self.shift = proc_params["activation_shift"]

    def update(self, a: np.ndarray) -> np.ndarray:
        m, unity, bits = self.half_range, 1 << self.decay_bits, self.decay_bits
        # Lava's PyLifModelBitAcc shifts the int32 input and adds it to the int32 decayed current, so both
        # wrap at 32 bits before the state wrap below
        a = _wrap32(a.astype(np.int64) + self.input_bias)
        u = _wrap32(_trunc0_decay(self.u.astype(np.int64), unity - (self.du.astype(np.int64) + 1), bits)
                    + _wrap32(a << self.shift))
        u = np.where(u > m, u - 2 * m, np.where(u <= -m, u + 2 * m, u))  # wraps once, as Lava
        be = self.bias_exp.astype(np.int64)
        bm = self.bias_mant.astype(np.int64)
        bias = np.where(be >= 0, bm << np.maximum(be, 0), bm >> np.maximum(-be, 0))
        vth = self.vth.astype(np.int64) << self.shift
        s_prev = self.s_prev.astype(np.int64)
        v_prev = self.v.astype(np.int64)
        if self.late and not self.subtract:
            v_prev = np.where(s_prev != 0, 0, v_prev)
        v = _trunc0_decay(v_prev, unity - self.dv.astype(np.int64), bits) + u + bias
        if self.late and self.subtract:
            v = v - vth * s_prev
        v = np.clip(v, -(m - 1), m - 1)
        s = (v > vth).astype(np.int64) if self.spiking else np.zeros_like(v)
        if not self.late:
            v = v - vth * s if self.subtract else np.where(s != 0, 0, v)
        self.u[:] = u
        self.v[:] = v
        self.s_prev[:] = s
        return s.astype(np.int32)
