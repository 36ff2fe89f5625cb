"""Hardware targets: the shipped files load with their documented numbers; broken files fail on load,
naming the table and field."""
import dataclasses
import re
from pathlib import Path

import pytest

import mappings
import neuromap.errors
from mappings import TargetError, load_target

TESTCHIP = Path(mappings.__file__).with_name("targets") / "testchip.toml"


def test_shipped_targets_load_with_their_documented_numbers():
    assert mappings.available_targets() == ["loihi1", "loihi2", "testchip"]
    l1 = load_target("loihi1")
    # Davies et al. 2018: 128 cores, 1,024 compartments, 128 KB synaptic memory, 4,096 in/out axons per core
    assert (l1.chip.cores, l1.core.neurons, l1.core.synaptic_memory_bits) == (128, 1024, 128 * 1024 * 8)
    assert (l1.core.input_axons, l1.core.output_axons) == (4096, 4096)
    davies = l1.constant_set()
    assert l1.default_constant_set == davies.name == "davies2018" and davies.basis == "pre-silicon"
    assert (davies.energy["synop_dense_pj"].typical, davies.timing["synop_dense_ns"].typical,
            l1.neuron.graded_spike_bits) == (23.6, 3.5, 0)
    l2 = load_target("loihi2")
    assert l2.neuron.graded_spike_bits == 32 and l2.synapses.shared_conv_weights
    # Loihi 2 cores hold the 3,168 LIF neurons Lava places on one (loihi2.toml [LDC]); its other, unpublished
    # per-core limits and per-event energies are the Loihi 1 figures (an estimate); static power is Intel's
    # measured 0.232 W (PilotNet LIF) to 0.282 W (PilotNet SDNN) per chip; a payload bit, which Loihi 1's binary
    # spikes never carry (0 there), is an estimate
    per_event = [k for k in davies.energy if k not in ("static_power_mw", "message_payload_bit_pj")]
    intel = l2.constant_set()
    assert l2.core.neurons == 3168 and dataclasses.replace(l2.core, neurons=l1.core.neurons) == l1.core
    assert intel.basis == "estimate"
    assert [intel.energy[k].typical for k in per_event] == [davies.energy[k].typical for k in per_event]
    assert (intel.energy["static_power_mw"].low, intel.energy["static_power_mw"].high) == (232.0, 282.0)
    t = load_target("testchip")
    assert (t.chip.cores, t.core.neurons, t.system.max_chips, t.max_cores) == (4, 64, 2, 8)


def test_every_number_in_a_shipped_file_has_a_source_comment():
    for name in ("loihi1", "loihi2"):
        for line in (TESTCHIP.with_name(f"{name}.toml")).read_text().splitlines():
            if re.match(r"^\s*[a-z_]+\s*=\s*[-0-9.]", line):
                assert "#" in line, f"{name}.toml: no source for {line.strip()!r}"


def test_a_user_file_loads_by_path(tmp_path):
    path = tmp_path / "mychip.toml"
    path.write_text(TESTCHIP.read_text().replace('name = "testchip"', 'name = "mychip"'))
    t = load_target(str(path))
    assert t.name == "mychip" and t.source == str(path)
    assert load_target(path).core == load_target("testchip").core


def _broken(tmp_path, old: str, new: str) -> Path:
    text = TESTCHIP.read_text()
    assert old in text
    path = tmp_path / "broken.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("old, new, message", [
    ("neurons = 64", "", r"\[core\] neurons: missing"),
    ("neurons = 64", 'neurons = "64"', r"\[core\] neurons: expected int, got str"),
    ("neurons = 64", "neurons = 0", r"\[core\] neurons: must be > 0, got 0"),
    ("neurons = 64", "neurons = 64.5", r"\[core\] neurons: expected int, got float"),
    ("shared_conv_weights = true", "shared_conv_weights = 1", r"\[synapses\] shared_conv_weights: expected bool"),
    ("weight_bits = 8", "weight_bits = 12", r"\[synapses\] weight_bits: must be in \[1, 9\], got 12"),
    ("synop_sparse_pj = 25.0", "synop_sparse_pj = -1.0",
     r"\[constant_sets.testchip.energy\] synop_sparse_pj: must be a finite number >= 0"),
    ("synop_sparse_pj = 25.0", "synop_sparse_pj = nan",
     r"\[constant_sets.testchip.energy\] synop_sparse_pj: must be a finite number >= 0, got nan"),
    ("cores = 4 ", "cores = 5 ", r"\[chip\] cores: 5 cores do not fit a 2 x 2 mesh"),
    ("max_chips = 2 ", "max_chips = 3 ", r"\[system\] max_chips: 3 chips do not fit a 2 x 1 chip grid"),
    ("bias_exp_min = 0", "bias_exp_min = 9", r"\[neuron\] bias_exp_min: 9 exceeds bias_exp_max"),
    ("vth_bits = 17", "vth_bits = 20", r"\[neuron\] vth_bits: 20 \+ activation_shift 6 exceeds state_bits 24"),
    ("neurons = 64", "neurons = 64\nneuronz = 3", r"\[core\] neuronz: unknown field"),
    ("[estimator]", "[estimators]", r"\[estimators\]: unknown table"),
    ('name = "testchip"', "", r"\[target\] name: missing"),
    ("neurons = 64", "neurons = = 64", r"not valid TOML"),
])
def test_a_malformed_target_fails_on_load_naming_the_field(tmp_path, old, new, message):
    path = _broken(tmp_path, old, new)
    with pytest.raises(TargetError, match=message) as info:
        load_target(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_target_error_is_a_value_error_and_neuromap_translates_it(tmp_path):
    assert issubclass(TargetError, ValueError)
    with pytest.raises(TargetError, match="unknown target 'loihi3'"):
        load_target("loihi3")
    with pytest.raises(TargetError, match="no such target file"):
        load_target(tmp_path / "missing.toml")
    from neuromap.mapping import load_target as neuromap_load_target
    with pytest.raises(neuromap.errors.TargetError, match=r"\[core\] neurons: missing"):
        neuromap_load_target(_broken(tmp_path, "neurons = 64", ""))


def test_targets_are_frozen():
    t = load_target("testchip")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.core.neurons = 5  # type: ignore[misc]
