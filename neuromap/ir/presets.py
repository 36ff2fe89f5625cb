"""Framework presets for NIR import: what each training framework means by the NIR file it writes.

NIR leaves open what a training framework decides in code: the time step its time constants were
written with, whether a neuron subtracts the threshold or zeroes on a spike, when that reset applies,
whether spikes pass on within the step (``zero_delay``) or one step later, how the input enters the
neuron (the gain that NIR's ``r`` / ``w_in`` are meant to carry) and whether shapes keep a batch
dimension. A preset is that choice written down, once per framework, each convention with the source
line it comes from and the release it was read in. ``from_nir(..., framework="snntorch")`` (and
``--from snntorch`` on the command line) applies one; an explicit ``dt``/``reset``/``reset_timing``
overrides it.

``input_gain`` says how the gain from a projection's output into v is read from the NIR fields:

* ``"nir"``: forward Euler of NIR's equations, ``dt r / tau`` (times ``dt w_in / tau_syn`` for a
  CubaLIF), the reading in ``neuromap.ir.nir_io``'s docstring (snnTorch writes its files that way);
* ``"current_jump"``: the input is added to the synaptic current (``i += w_in x``, no ``dt/tau_syn``),
  so the gain is ``dt r / tau * w_in`` (Norse's ``lif_feed_forward_step``); an IF adds ``r x`` to v
  (Norse's ``iaf_feed_forward_step``);
* ``"decayed_jump"``: the input jumps into the current, which then decays within the same step, and the
  current enters v with gain 1: the gain is ``w_in (1 - i_decay)`` (Rockpool's ``LIFTorch``; its LIF
  without current takes the input with gain 1);
* ``"unit"``: the framework's neurons take their input with gain 1 whatever ``r`` says (Spyx writes
  ``r = beta``, lava-dl's CUBA neuron adds ``x`` to ``u`` and ``u`` to ``v``).

``decay`` says how a time constant becomes the fraction lost per step: ``"euler"`` (``dt/tau``, NIR's
forward Euler) or ``"exp"`` (``1 - exp(-dt/tau)``, the exact exponential Rockpool steps with).

A known bug of a framework's exporter is a string that import appends to the one-line error the bug
causes (Norse's tau, Spyx's negative tau), so the user reads the cause and the workaround.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import warnings
from collections.abc import Mapping

from neuromap.errors import NeuromapWarning, UnsupportedError

INPUT_GAINS = ("nir", "current_jump", "decayed_jump", "unit")
DECAYS = ("euler", "exp")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One framework's conventions (see the module docstring); ``sources`` cites each field."""

    name: str
    distribution: str            # the package whose release was read (importlib.metadata name)
    checked_version: str
    dt: float
    reset: str
    reset_timing: str
    zero_delay: bool
    input_gain: str
    decay: str
    batch_dim: bool              # its exporter keeps a leading batch dimension of size 1 in shapes
    sources: Mapping[str, str]
    tau_bug: str = ""            # appended to the error a wrong or unstable time constant gives


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        name="snntorch", distribution="snntorch", checked_version="1.0.0", dt=1e-4, reset="subtract",
        reset_timing="next_step", zero_delay=True, input_gain="nir", decay="euler",
        batch_dim=False,
        sources={
            "dt": "snntorch/export_nir.py:68 (Leaky: dt = 1e-4; tau = dt/(1 - beta), r = tau/dt, l. 73-74)",
            "reset": "snntorch/_neurons/leaky.py:150 (reset_mechanism='subtract' is the default; export writes "
                     "v_reset = 0 for every mechanism, export_nir.py:82)",
            "reset_timing": "snntorch/_neurons/leaky.py:155,209 (reset_delay=True: the reset is taken from the "
                            "previous step's membrane)",
            "zero_delay": "snntorch/_neurons/leaky.py:196-236 (a layer's spikes feed the next layer in the same "
                          "step)",
            "input_gain": "snntorch/export_nir.py:103-107 (Synaptic: tau_syn = dt/(1 - alpha), w_in = tau_syn/dt)",
        }),
    Preset(
        name="norse", distribution="norse", checked_version="1.1.0", dt=1e-3, reset="zero",
        reset_timing="immediate", zero_delay=True, input_gain="current_jump", decay="euler",
        batch_dim=True,
        sources={
            "dt": "norse/torch/utils/export_nir.py:68 (to_nir(..., dt=0.001))",
            "reset": "norse/torch/functional/lif.py:345 (v = (1 - z) v + z v_reset, v_reset = 0 by default)",
            "reset_timing": "norse/torch/functional/lif.py:343-345 (the reset follows the threshold test in the "
                            "same step)",
            "zero_delay": "norse/torch/functional/lif.py:335-347 (the step's input reaches v and the spike "
                          "within the step)",
            "input_gain": "norse/torch/functional/lif.py:335 (i_new = i + input: the input jumps into the "
                          "current; export writes r = 1, export_nir.py:33, and NIR's default w_in = 1); "
                          "norse/torch/functional/iaf.py:93 (IAF: v_new = v + input)",
            "decay": "norse/torch/functional/lif.py:337,340 (dv = dt tau_mem_inv (...), di = -dt tau_syn_inv i)",
            "batch_dim": "norse/torch/utils/export_nir.py:70-74 (nirtorch traces the batched sample_data: "
                         "Input and Output carry its batch dimension)",
        },
        tau_bug="the mark of Norse's to_nir bug (norse 1.1.0, norse/torch/utils/export_nir.py:29,37: it writes "
                "tau = dt/tau_inv instead of 1/tau_inv); export with "
                "norse.torch.utils.export_nir.to_nir(model, sample, dt=1.0), which writes the true 1/tau_inv"),
    Preset(
        name="sinabs", distribution="sinabs", checked_version="3.1.3", dt=1.0, reset="subtract",
        reset_timing="immediate", zero_delay=True, input_gain="nir", decay="euler",
        batch_dim=False,
        sources={
            "dt": "sinabs/nir.py:159-160 (IAF exports as NIR IF with r = 1: one step per unit of time)",
            "reset": "sinabs/layers/iaf.py:53 (reset_fn=MembraneSubtract() is the default)",
            "reset_timing": "sinabs/layers/iaf.py:52-53 (spike_fn then reset_fn within the step)",
            "zero_delay": "sinabs layers are stacked in one nn.Sequential: spikes reach the next layer in the "
                          "same step",
            "input_gain": "sinabs/nir.py:160 (r = 1, v += input)",
            "batch_dim": "sinabs/nir.py:158-160, 221-224 (neuron shapes discard the batch dimension, Flatten's "
                         "start_dim is shifted for it)",
        }),
    Preset(
        name="rockpool", distribution="rockpool", checked_version="3.1.0", dt=1e-3, reset="subtract",
        reset_timing="immediate", zero_delay=True, input_gain="decayed_jump", decay="exp",
        batch_dim=True,
        sources={
            "dt": "rockpool/nn/modules/torch/lif_torch.py:172 (LIFTorch dt = 1e-3)",
            "reset": "rockpool/nn/modules/torch/lif_torch.py:166 (spike_generation_fn=StepPWL; the membrane "
                     "subtracts threshold times the spike count)",
            "reset_timing": "rockpool/nn/modules/torch/lif_torch.py (evolve: spikes and their reset in the "
                            "same step)",
            "zero_delay": "rockpool/nn/modules/torch/lif_torch.py (evolve: one step of a Sequential passes on "
                          "the spikes it produces)",
            "input_gain": "rockpool/nn/modules/torch/lif_torch.py:687,698,701 (isyn += input; isyn *= beta; "
                          "vmem += isyn): r, which export writes as tau exp(-dt/tau)/dt (nir.py:265-268), is not "
                          "the gain; lif_neuron_torch.py:252-255 (LIF: vmem += input)",
            "decay": "rockpool/nn/modules/torch/lif_torch.py:128-129 (alpha, beta = exp(-dt/tau))",
            "batch_dim": "rockpool/nn/modules/torch/nir.py:320 (to_nir traces a (1, N) sample; Output gets (1, 1, "
                         "N), batch and time)",
        }),
    Preset(
        name="spyx", distribution="spyx", checked_version="1.0.0 (kmheckel/spyx@38374e9)", dt=1.0,
        reset="subtract", reset_timing="next_step", zero_delay=False, input_gain="unit", decay="euler",
        batch_dim=False,
        sources={
            "dt": "src/spyx/nir.py:474 (to_nir(model, input_shape, output_shape, dt=1))",
            "reset": "src/spyx/nn.py:216 (LIF: V = beta V + x - spikes * threshold)",
            "reset_timing": "src/spyx/nn.py:215-216 (spikes = spike(V - threshold) of the previous step's V, "
                            "subtracted undecayed in this step)",
            "zero_delay": "src/spyx/nn.py:215 (a layer emits the spike of the previous step's V: one step per "
                          "layer, as the hardware delay)",
            "input_gain": "src/spyx/nir.py:590,593 (tau = dt/(1 - beta), r = beta) while src/spyx/nn.py:216 adds x "
                          "with gain 1",
        },
        tau_bug="the mark of Spyx's to_nir bug (src/spyx/nir.py:590 writes tau = dt/(1 - beta) from the unclipped "
                "beta, negative for beta > 1, while src/spyx/nn.py:214 clips beta to [0, 1] in the forward pass); "
                "clip beta to [0, 1] before exporting"),
    Preset(
        name="lava-dl", distribution="lava-dl", checked_version="0.7.0.dev0 (lava-nc/lava-dl@d825ac5)", dt=1.0,
        reset="zero", reset_timing="immediate", zero_delay=False, input_gain="unit", decay="euler", batch_dim=False,
        sources={
            "dt": "src/lava/lib/dl/slayer/neuron/cuba.py:56-58 (decays per step: u[t] = (1 - alpha_u) u[t-1] + x[t])",
            "reset": "src/lava/lib/dl/slayer/neuron/cuba.py:62 (v[t] = v[t] (1 - s[t]): Loihi's CUBA resets to 0)",
            "reset_timing": "src/lava/lib/dl/slayer/neuron/cuba.py:60-62 (the spike test, then the reset, in the "
                            "same step)",
            "zero_delay": "src/lava/lib/dl/slayer/block/base.py:64,117 (delay_shift=True: each block's output is "
                          "shifted by one step, as Loihi's synapses delay)",
            "input_gain": "src/lava/lib/dl/slayer/neuron/cuba.py:56-58 (x enters u and u enters v with gain 1)",
        }),
)}

FRAMEWORKS = tuple(PRESETS)


def preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name is one error line listing the known ones.

    Where the framework is installed in another release than the one its conventions were read in,
    a NeuromapWarning says so (the conventions may have moved)."""
    if name not in PRESETS:
        raise UnsupportedError(f"--from {name!r}: no preset for this framework (known: {', '.join(FRAMEWORKS)})",
                               flag="--from", value=name, allowed=FRAMEWORKS)
    chosen = PRESETS[name]
    try:
        installed = importlib.metadata.version(chosen.distribution)
    except importlib.metadata.PackageNotFoundError:
        return chosen
    if not chosen.checked_version.startswith(installed):
        warnings.warn(NeuromapWarning(f"--from {name}: its conventions were read in {chosen.distribution} "
                                      f"{chosen.checked_version}, {installed} is installed", flag="--from",
                                      value=name), stacklevel=2)
    return chosen
