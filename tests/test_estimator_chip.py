"""The chip estimator's formulas (docs/estimator.md) on tiny hand-counted events: one core, two cores on two
tiles, two chips, a tile's injection bandwidth, link contention on XY routes, graded payloads; band pairing,
real-time mode, synapse formats from the compiler, the constant sets' file form, and the ``estimate --json``
object. Constants: testchip's synthetic set (mappings/targets/testchip.toml), typical unless a test says
otherwise:

    energy (pJ): synop dense 20 (low 10, high 40), sparse 25, conv 15, access 50, update 30, spike 70,
                 message out 100, in 10, hop E-W 3, N-S 4, chip crossing 200, input injection 5, readout 40,
                 management 1000 per chip and step; static 100 mW per chip (low 50, high 200), board 10 mW;
                 payload 0.5 per bit; management power 2 mW per chip over the step
    time (ns):   synop dense 4 (low 2, high 8), sparse 5, conv 3, access 5, update 3, spike 30, out 5, in 15,
                 hop E-W 4, N-S 6, chip crossing 100, input injection 10, management 200;
                 barrier 100 (1 tile), 400 (2-4 tiles), 1000 (2 chips); tile injection 4, link 2 per message
"""
import json

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from netgen import digits_mlp

import mappings
from hwsim.estimate import EstimateError, estimate_chip
from hwsim.events import PER_STEP, EventCounts
from hwsim.netdesc import Core, InputPort, NetDescError, Population, Projection, QuantNetwork
from hwsim.sim import simulate

TESTCHIP = mappings.load_target("testchip")


def _counts(neurons, traffic, **per_step) -> EventCounts:
    shape = np.shape(per_step["synops"])
    arrays = {name: np.asarray(per_step.get(name, np.zeros(shape)), dtype=np.int64) for name in PER_STEP}
    return EventCounts(tuple(range(len(neurons))), np.asarray(neurons), np.asarray(traffic, dtype=np.int64), **arrays)


def _one_core(extra_dense: int = 0) -> EventCounts:
    """One core of 10 neurons, one step: 12 + extra synops (3 sparse, 4 conv, the rest dense), 6 active neurons,
    2 spikes sent as 2 messages to itself, 3 input messages."""
    return _counts([10], [[2]], synops=[[[12 + extra_dense]]], synops_sparse=[[[3]]], synops_conv=[[[4]]],
                   active_neurons=[[[6]]], spikes=[[[2]]], messages_out=[[[2]]], messages_in=[[[2]]],
                   input_messages=[[[3]]])


ONE_CORE = [Core(0, 0, 0, 0)]
# send side 10 x 5 + 6 x 3 + 2 x 30 + 2 x 5 = 138; receive side (2 + 3) x 15 + 5 x 4 + 3 x 5 + 4 x 3 = 122;
# injection 3 x 10 = 30; no path (the messages stay on the core); barrier 100 (1 tile); management 200
ONE_CORE_STEP = 138 + 100 + 200
ONE_CORE_DYNAMIC_PJ = {"synaptic_ops_dense": 5 * 20, "synaptic_ops_sparse": 3 * 25, "synaptic_ops_conv": 4 * 15,
                       "neuron_access": 10 * 50, "neuron_update": 6 * 30, "spike_generation": 2 * 70,
                       "message_out": 2 * 100, "message_in": 5 * 10, "message_payload": 0, "hops": 0,
                       "chip_crossings": 0,
                       "input_injection": 3 * 5, "readout": 4 * 40, "management": 1000 + ONE_CORE_STEP * 2}


def test_one_core_by_hand_every_energy_term():
    est = estimate_chip(_one_core(), TESTCHIP, ONE_CORE, readout_neurons=4)
    expected = ONE_CORE_DYNAMIC_PJ | {"static": ONE_CORE_STEP * 100, "board": ONE_CORE_STEP * 10}
    assert est.energy_terms_j == pytest.approx({k: v * 1e-12 for k, v in expected.items()}, rel=1e-12, abs=0)
    assert est.dynamic_energy_j == pytest.approx(sum(ONE_CORE_DYNAMIC_PJ.values()) * 1e-12, rel=1e-12, abs=0)
    assert est.static_energy_j == pytest.approx(ONE_CORE_STEP * 110 * 1e-12, rel=1e-12, abs=0)
    # one core on its tile: its 2 messages leave the tile in 2 x 4 = 8 ns, within the core's 138
    assert est.latency_terms_s == pytest.approx({"compute": 138e-9, "injection": 0.0, "contention": 0.0, "noc": 0.0,
                                                 "barrier": 100e-9, "management": 200e-9, "real_time_wait": 0.0},
                                                rel=1e-12, abs=0)
    assert (est.mode, est.chips, est.tiles) == ("unthrottled", 1, 1)


def test_a_core_pipelines_send_and_receive_max_not_sum():
    """20 more dense synops make the receive side 122 + 80 = 202 ns, slower than the send side's 138: the core
    takes 202 ns, not 138 + 202."""
    est = estimate_chip(_one_core(extra_dense=20), TESTCHIP, ONE_CORE)
    assert est.latency_terms_s["compute"] == pytest.approx(202e-9, rel=1e-12, abs=0)
    assert est.latency_s == pytest.approx((202 + 300) * 1e-9, rel=1e-12, abs=0)


def test_input_injection_is_one_host_stream():
    """40 input messages to each of two idle cores: each core receives 40 x 15 = 600 ns, the host injects
    80 x 10 = 800 ns, the slower of the two."""
    two = [Core(0, 0, 0, 0), Core(1, 0, 1, 0)]
    est = estimate_chip(_counts([1, 1], np.zeros((2, 2)), synops=[[[0, 0]]], input_messages=[[[40, 40]]]), TESTCHIP,
                        two)
    assert est.latency_terms_s["compute"] == pytest.approx(800e-9, rel=1e-12, abs=0)
    assert est.energy_terms_j["input_injection"] == pytest.approx(80 * 5e-12, rel=1e-12, abs=0)


def test_two_cores_on_two_tiles_pay_the_longest_path_once():
    """Core 0 (4 neurons, tile (0, 0)) sends 2 spikes as 1 message to itself and 2 to core 1 (tile (1, 1)):
    3 messages out, 4 hops. Send side of core 0: 4 x 5 + 2 x 30 + 3 x 5 = 95; core 1 receives 2 x 15 +
    6 x 4 = 54. The longest path is one E-W and one N-S hop, 4 + 6 = 10 ns, paid once for the step."""
    cores = [Core(0, 0, 0, 0), Core(1, 0, 1, 1)]
    events = _counts([4, 2], [[1, 2], [0, 0]], synops=[[[1, 6]]], spikes=[[[2, 0]]], messages_out=[[[3, 0]]],
                     messages_in=[[[1, 2]]], hops=[[[4, 0]]])
    est = estimate_chip(events, TESTCHIP, cores)
    step = 95 + 10 + 400 + 200
    assert est.latency_terms_s == pytest.approx({"compute": 95e-9, "injection": 0.0, "contention": 0.0,
                                                 "noc": 10e-9, "barrier": 400e-9, "management": 200e-9,
                                                 "real_time_wait": 0.0}, rel=1e-12, abs=0)
    assert est.tiles == 2 and est.latency_s == pytest.approx(step * 1e-9, rel=1e-12, abs=0)
    # half of core 0's hops run east-west: 4 x (0.5 x 3 + 0.5 x 4) = 14 pJ
    assert est.energy_terms_j["hops"] == pytest.approx(14e-12, rel=1e-12, abs=0)
    assert est.energy_terms_j["message_in"] == pytest.approx(3 * 10e-12, rel=1e-12, abs=0)
    assert est.energy_terms_j["static"] == pytest.approx(step * 100e-12, rel=1e-12, abs=0)
    # core 1 answers with one message back (1 E-W + 1 N-S hop as well): still one 10 ns path, not two
    both = _counts([4, 2], [[1, 2], [1, 0]], synops=[[[2, 6]]], spikes=[[[2, 1]]], messages_out=[[[3, 1]]],
                   messages_in=[[[2, 2]]], hops=[[[4, 2]]])
    assert estimate_chip(both, TESTCHIP, cores).latency_terms_s["noc"] == pytest.approx(10e-9, rel=1e-12, abs=0)


def test_two_chips_pay_the_crossing_and_the_multichip_barrier():
    """Core 0 on chip 0 at (0, 0) sends 1 spike to core 1 on chip 1 at (2, 0) of the global mesh: 2 E-W hops
    and one chip crossing, a path of 2 x 4 + 100 ns. Core 0 sends 5 + 30 + 5 = 40 ns; the barrier is the
    2-chip entry, 1000 ns; static power and management are paid by both chips."""
    cores = [Core(0, 0, 0, 0), Core(1, 1, 2, 0)]
    events = _counts([1, 1], [[0, 1], [0, 0]], synops=[[[0, 1]]], spikes=[[[1, 0]]], messages_out=[[[1, 0]]],
                     messages_in=[[[0, 1]]], hops=[[[2, 0]]], chip_crossings=[[[1, 0]]])
    est = estimate_chip(events, TESTCHIP, cores)
    step = 40 + 108 + 1000 + 200
    assert (est.chips, est.barrier_s) == (2, pytest.approx(1000e-9))
    assert est.latency_terms_s["noc"] == pytest.approx(108e-9, rel=1e-12, abs=0)
    assert est.latency_s == pytest.approx(step * 1e-9, rel=1e-12, abs=0)
    assert est.energy_terms_j["chip_crossings"] == pytest.approx(200e-12, rel=1e-12, abs=0)
    assert est.energy_terms_j["hops"] == pytest.approx(2 * 3e-12, rel=1e-12, abs=0)
    assert est.energy_terms_j["management"] == pytest.approx(2 * (1000 + step * 2) * 1e-12, rel=1e-12, abs=0)
    assert est.energy_terms_j["static"] == pytest.approx(step * 100 * 2 * 1e-12, rel=1e-12, abs=0)
    assert est.energy_terms_j["board"] == pytest.approx(step * 10 * 1e-12, rel=1e-12, abs=0)


def test_a_tiles_cores_inject_no_faster_than_its_router():
    """Four cores share tile (0, 0) (as Loihi's four per tile do); each has 1 active neuron that spikes once,
    one message to each of 4 cores of tile (1, 0) (16 receivers, 1 hop each). A sender takes 5 + 3 + 30 +
    4 x 5 = 58 ns, a receiver 15 + 4 = 19 ns; the tile's 16 messages leave at 4 ns each, 64 ns: the tile,
    not a core, sets the pace, and the 6 ns it adds is the ``injection`` term. Path 4 ns (one E-W hop),
    barrier 400 ns (2 tiles), management 200 ns."""
    cores = [Core(i, 0, 0, 0) for i in range(4)] + [Core(4 + i, 0, 1, 0) for i in range(16)]
    traffic = np.zeros((20, 20), np.int64)
    for i in range(4):
        traffic[i, 4 + 4 * i:8 + 4 * i] = 1
    zero16 = [0] * 16
    events = _counts([1] * 20, traffic, synops=[[[0] * 4 + [4] * 16]], active_neurons=[[[1] * 4 + zero16]],
                     spikes=[[[1] * 4 + zero16]], messages_out=[[[4] * 4 + zero16]],
                     messages_in=[[[0] * 4 + [1] * 16]], hops=[[[4] * 4 + zero16]])
    est = estimate_chip(events, TESTCHIP, cores)
    assert est.latency_terms_s == pytest.approx({"compute": 58e-9, "injection": 6e-9, "contention": 0.0,
                                                 "noc": 4e-9, "barrier": 400e-9, "management": 200e-9,
                                                 "real_time_wait": 0.0}, rel=1e-12, abs=0)
    assert est.step_time_mean_s == pytest.approx((64 + 4 + 400 + 200) * 1e-9, rel=1e-12, abs=0)
    # two senders on each of two tiles: a tile injects 8 x 4 = 32 ns, inside its cores' 58 ns
    spread = [Core(0, 0, 0, 0), Core(1, 0, 0, 0), Core(2, 0, 0, 1), Core(3, 0, 0, 1), *cores[4:]]
    hops = [[[4, 4, 8, 8, *zero16]]]  # to tile (1, 0): 1 hop from (0, 0), 2 from (0, 1)
    events = _counts([1] * 20, traffic, synops=[[[0] * 4 + [4] * 16]], active_neurons=[[[1] * 4 + zero16]],
                     spikes=[[[1] * 4 + zero16]], messages_out=[[[4] * 4 + zero16]],
                     messages_in=[[[0] * 4 + [1] * 16]], hops=hops)
    assert estimate_chip(events, TESTCHIP, spread).latency_terms_s["injection"] == 0.0


def _slow_links(tmp_path, ns: float = 40.0):
    """testchip with ``ns`` per message and mesh link (its own figure is 2 ns), so that a link binds."""
    from pathlib import Path
    text = Path(TESTCHIP.source).read_text()
    assert "link_ns = 2.0" in text
    path = tmp_path / "slow_links.toml"
    path.write_text(text.replace("link_ns = 2.0", f"link_ns = {ns}"))
    return mappings.load_target(path)


def test_with_contention_the_busiest_link_on_xy_routes_bounds_the_step(tmp_path):
    """Cores 0 (0, 0), 1 (1, 0) and 2 (0, 1) send 2 messages each to core 3 at (2, 1). Dimension-order
    routes, x first: core 0 takes E(0,0) E(1,0) N(2,0), core 1 E(1,0) N(2,0), core 2 E(0,1) E(1,1); the
    busiest links, E(1,0) and N(2,0), carry 4 messages: 4 x 40 = 160 ns. (Routed y first, E(1,1) would carry
    all 6: 240 ns.) A sender takes 2 x (5 + 3 + 30 + 5) = 86 ns, core 3 receives 6 x 15 + 6 x 4 = 114 ns: the
    link adds 160 - 114 = 46 ns (``contention``). Path: core 0 to core 3, 2 x 4 + 6 = 14 ns; 4 tiles: barrier
    400 ns; management 200 ns. Off (the default), the step is 114 + 14 + 600."""
    target = _slow_links(tmp_path)
    cores = [Core(0, 0, 0, 0), Core(1, 0, 1, 0), Core(2, 0, 0, 1), Core(3, 0, 2, 1)]
    traffic = [[0, 0, 0, 2], [0, 0, 0, 2], [0, 0, 0, 2], [0, 0, 0, 0]]
    events = _counts([2, 2, 2, 1], traffic, synops=[[[0, 0, 0, 6]]], active_neurons=[[[2, 2, 2, 0]]],
                     spikes=[[[2, 2, 2, 0]]], messages_out=[[[2, 2, 2, 0]]], messages_in=[[[0, 0, 0, 6]]],
                     hops=[[[6, 4, 4, 0]]])
    on = estimate_chip(events, target, cores, contention=True)
    assert on.latency_terms_s == pytest.approx({"compute": 114e-9, "injection": 0.0, "contention": 46e-9,
                                                "noc": 14e-9, "barrier": 400e-9, "management": 200e-9,
                                                "real_time_wait": 0.0}, rel=1e-12, abs=0)
    assert on.to_dict()["contention"] is True and any("link contention on XY routes" in n for n in on.notes)
    off = estimate_chip(events, target, cores)
    assert off.latency_s == pytest.approx((114 + 14 + 600) * 1e-9, rel=1e-12, abs=0)
    assert off.latency_terms_s["contention"] == 0


def test_a_cores_messages_of_a_step_split_over_links_as_the_run_splits_them(tmp_path):
    """Core 0 (0, 0) sends 3 messages to core 1 (1, 0) and 1 to core 2 (0, 1) over the run (traffic), 4 in
    step 0 and none in step 1; core 3 (1, 1) sends 2 to core 1 in step 1 (link S(1,1)). At 60 ns per message
    and link: step 0, E(0,0) carries 4 x 3/4 = 3 messages, 180 ns, against core 0's 4 x 5 + 4 x 35 = 160 ns
    (4 neurons, 4 spikes): 20 ns more; step 1, S(1,1) carries 2, 120 ns, against core 3's 2 x 5 + 2 x 35 =
    80 ns: 40 ns more."""
    from hwsim.estimate import link_shares
    shares = link_shares(np.array([[0, 3, 1, 0], [0] * 4, [0] * 4, [0, 2, 0, 0]]), np.array([0, 1, 0, 1]),
                         np.array([0, 0, 1, 1]))
    # links (x, y, direction) in sorted order: E(0,0), N(0,0), S(1,1)
    np.testing.assert_allclose(shares.toarray(), [[0.75, 0.25, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1]])
    target = _slow_links(tmp_path, 60.0)
    cores = [Core(0, 0, 0, 0), Core(1, 0, 1, 0), Core(2, 0, 0, 1), Core(3, 0, 1, 1)]
    events = _counts([4, 1, 1, 2], [[0, 3, 1, 0], [0] * 4, [0] * 4, [0, 2, 0, 0]], synops=[[[0] * 4, [0] * 4]],
                     spikes=[[[4, 0, 0, 0], [0, 0, 0, 2]]], messages_out=[[[4, 0, 0, 0], [0, 0, 0, 2]]],
                     hops=[[[4, 0, 0, 0], [0, 0, 0, 2]]])
    est = estimate_chip(events, target, cores, contention=True)
    assert est.latency_terms_s["compute"] == pytest.approx((160 + 80) * 1e-9, rel=1e-12, abs=0)
    assert est.latency_terms_s["contention"] == pytest.approx((20 + 40) * 1e-9, rel=1e-12, abs=0)


def test_graded_messages_pay_for_their_payload_bits():
    """An 8-bit graded input x (2 neurons) feeds 4 neurons on two cores: each nonzero payload is one message to
    each core, 8 bits each. Payloads (3, 0), (0, 5), (7, 1) over 3 steps: 1 + 1 + 2 = 4 nonzero, 8 messages,
    64 bits, at testchip's 0.5 pJ per bit 32 pJ; the same network fed binary spikes carries no payload."""
    pop = Population("p", 4, vth=100000, du=4095, dv=0, bias_mant=0, bias_exp=0, v_init=0, core=[0, 0, 1, 1])
    proj = Projection("w", "x", "p", sp.csr_matrix(np.ones((4, 2), np.int64)))
    cores = (Core(0, 0, 0, 0), Core(1, 0, 1, 0))
    x = {"x": np.array([[[3, 0], [0, 5], [7, 1]]], np.int64)}
    graded = QuantNetwork((InputPort("x", 2, graded_bits=8),), (pop,), (proj,), cores, ("p",))
    events = simulate(graded, x, 3, device="cpu", record=False).events
    assert events.payload_bits.sum(axis=(0, 1)).tolist() == [32, 32] and events.input_messages.sum() == 8
    est = estimate_chip(events, TESTCHIP, cores)
    assert est.energy_terms_j["message_payload"] == pytest.approx(64 * 0.5e-12, rel=1e-12, abs=0)
    binary = QuantNetwork((InputPort("x", 2),), (pop,), (proj,), cores, ("p",))
    spikes = simulate(binary, {"x": (x["x"] > 0).astype(np.int64)}, 3, device="cpu", record=False).events
    assert spikes.input_messages.sum() == 8 and spikes.payload_bits.sum() == 0


def test_the_band_pairs_low_energies_with_low_times_and_high_with_high():
    """Low: dense synops 10 pJ and 2 ns (the receive side 122 - 10 = 112 ns stays below the send side, the
    step 438 ns), static 50 mW. High: 40 pJ and 8 ns (receive 122 + 20 = 142 ns > 138: the step is 442 ns),
    200 mW. A low power paired with a high time (or the reverse) would give neither figure; the management
    power (2 mW) is paid over each end's own step, as static power is."""
    est = estimate_chip(_one_core(), TESTCHIP, ONE_CORE, readout_neurons=4)
    fixed = sum(v for k, v in ONE_CORE_DYNAMIC_PJ.items() if k not in ("synaptic_ops_dense", "management")) + 1000
    low = fixed + 5 * 10 + 438 * (50 + 10 + 2)
    high = fixed + 5 * 40 + 442 * (200 + 10 + 2)
    assert est.energy_band_j == pytest.approx((low * 1e-12, high * 1e-12), rel=1e-12, abs=0)
    assert est.latency_band_s == pytest.approx((438e-9, 442e-9), rel=1e-12, abs=0)
    assert est.energy_band_j[0] < est.energy_j < est.energy_band_j[1]


def test_real_time_mode_charges_static_power_over_the_period():
    """A 1 us step period: the 438 ns step waits 562 ns, leaks for the full 1 us and its management cores
    draw their 2 mW for it too; a period shorter than the unthrottled step does not shorten it."""
    est = estimate_chip(_one_core(), TESTCHIP, ONE_CORE, step_time_s=1e-6)
    assert est.mode == "real-time" and est.latency_s == pytest.approx(1e-6, rel=1e-12, abs=0)
    assert est.latency_terms_s["real_time_wait"] == pytest.approx(562e-9, rel=1e-12, abs=0)
    assert est.energy_terms_j["static"] == pytest.approx(1000 * 100e-12, rel=1e-12, abs=0)
    assert est.energy_terms_j["board"] == pytest.approx(1000 * 10e-12, rel=1e-12, abs=0)
    assert est.energy_terms_j["management"] == pytest.approx((1000 + 1000 * 2) * 1e-12, rel=1e-12, abs=0)
    assert est.dynamic_energy_j == pytest.approx((sum(ONE_CORE_DYNAMIC_PJ.values()) - 160 - ONE_CORE_STEP * 2
                                                  + 1000 * 2) * 1e-12, rel=1e-12, abs=0)
    short = estimate_chip(_one_core(), TESTCHIP, ONE_CORE, step_time_s=100e-9)
    assert short.mode == "real-time" and short.latency_s == pytest.approx(ONE_CORE_STEP * 1e-9, rel=1e-12, abs=0)
    for bad in (0.0, -1e-3, float("nan")):
        with pytest.raises(EstimateError, match="step_time_s: must be a finite number of seconds > 0"):
            estimate_chip(_one_core(), TESTCHIP, ONE_CORE, step_time_s=bad)


def test_the_management_power_is_paid_per_chip_over_the_wall_clock_step_and_is_dynamic(tmp_path):
    """testchip's management cores draw 2 mW per occupied chip over the step, besides 1000 pJ per chip and
    step: one core, unthrottled 438 ns: 1000 + 438 x 2 = 1876 pJ; in real time at 1 us it draws over the whole
    period, 1000 + 1000 x 2 = 3000 pJ; on two chips (a 1348 ns step) each pays, 2 x (1000 + 1348 x 2) =
    7392 pJ. It is dynamic energy (paid only while the network steps), not static; with the power at 0 the
    term is the 1000 pJ alone and static energy is the same."""
    from pathlib import Path
    est = estimate_chip(_one_core(), TESTCHIP, ONE_CORE)
    assert est.energy_terms_j["management"] == pytest.approx(1876e-12, rel=1e-12, abs=0)
    real_time = estimate_chip(_one_core(), TESTCHIP, ONE_CORE, step_time_s=1e-6)
    assert real_time.energy_terms_j["management"] == pytest.approx(3000e-12, rel=1e-12, abs=0)
    two_chips = estimate_chip(_counts([1, 1], [[0, 1], [0, 0]], synops=[[[0, 1]]], spikes=[[[1, 0]]],
                                      messages_out=[[[1, 0]]], messages_in=[[[0, 1]]], hops=[[[2, 0]]],
                                      chip_crossings=[[[1, 0]]]), TESTCHIP, [Core(0, 0, 0, 0), Core(1, 1, 2, 0)])
    assert two_chips.step_time_mean_s == pytest.approx(1348e-9, rel=1e-12, abs=0)
    assert two_chips.energy_terms_j["management"] == pytest.approx(7392e-12, rel=1e-12, abs=0)
    text = Path(TESTCHIP.source).read_text()
    assert "management_power_mw = 2.0" in text
    path = tmp_path / "chip.toml"
    path.write_text(text.replace("management_power_mw = 2.0", "management_power_mw = 0.0"))
    without = estimate_chip(_one_core(), mappings.load_target(path), ONE_CORE)
    assert without.energy_terms_j["management"] == pytest.approx(1000e-12, rel=1e-12, abs=0)
    assert est.dynamic_energy_j - without.dynamic_energy_j == pytest.approx(876e-12, rel=1e-9)
    assert est.static_energy_j == without.static_energy_j


def _conv_then_dense():
    from neuromap.ir import IF, LI, Affine, Conv2d, Flatten, Input, Output, sequential
    rng = np.random.default_rng(0)
    return sequential([
        ("in", Input(shape=(1, 6, 6))),
        ("c1", Conv2d(weight=rng.normal(0, 0.5, (2, 1, 3, 3)), bias=np.zeros(2), input_shape_chw=(1, 6, 6))),
        ("if1", IF(shape=(2, 4, 4), threshold=0.25)), ("fl", Flatten(input_shape_any=(2, 4, 4))),
        ("fc", Affine(weight=rng.normal(0, 0.3, (10, 32)), bias=np.zeros(10))), ("li", LI(shape=(10,))),
        ("out", Output(shape=(10,)))])


def test_synops_are_counted_by_the_format_the_compiler_chose():
    """testchip stores a conv kernel once per core (shared_conv_weights): the conv projection's synops are
    conv, the dense layer's dense. Reference: each input spike's synops are its column's nonzero weights."""
    from neuromap.mapping import compile as compile_graph
    mapping = compile_graph(_conv_then_dense(), "testchip")
    assert mapping.synapse_formats() == {"c1": {0: "conv"}, "fl": {0: "dense"}}
    qnet = mapping.netdesc()
    x = (np.random.default_rng(1).random((2, 5, 36)) < 0.4).astype(np.int64)
    events = simulate(qnet, mapping.encode_inputs(x.astype(np.float64)), 5, device="cpu", record=False).events
    conv = next(p for p in qnet.projections if p.name == "c1")
    fan_out = np.diff(conv.weights.tocsc().indptr)  # nonzero weights per input neuron
    assert events.synops_conv.sum() == int((x * fan_out).sum()) > 0
    assert events.synops_sparse.sum() == 0 and events.synops.sum() > events.synops_conv.sum()
    est = estimate_chip(events, mapping.target, qnet.cores)
    assert est.energy_terms_j["synaptic_ops_conv"] == pytest.approx(events.synops_conv.sum() / 2 * 15e-12)


def test_a_network_names_its_formats_per_projection_and_core_and_an_unknown_one_is_refused():
    """Two cores hold the 4 targets of input x: core 0's synapses sparse, core 1's dense. One spike of x
    every step reaches all four."""
    pop = Population("p", 4, vth=1000, du=4095, dv=0, bias_mant=0, bias_exp=0, v_init=0, core=[0, 0, 1, 1])
    proj = Projection("w", "x", "p", sp.csr_matrix(np.ones((4, 1), np.int64) * 2))
    cores = (Core(0, 0, 0, 0), Core(1, 0, 1, 0))

    def network(formats):
        return QuantNetwork((InputPort("x", 1),), (pop,), (proj,), cores, ("p",), meta={"synapse_formats": formats})

    x = {"x": np.ones((1, 3, 1), np.int64)}
    events = simulate(network({"w": {0: "sparse"}}), x, 3, device="cpu", record=False).events
    assert events.synops_sparse.sum(axis=(0, 1)).tolist() == [6, 0]
    assert events.synops_conv.sum() == 0 and events.synops.sum(axis=(0, 1)).tolist() == [6, 6]
    with pytest.raises(NetDescError, match="projection 'w': synapse format 'csr' is not one of dense, sparse"):
        simulate(network({"w": {0: "csr"}}), x, 3, device="cpu", record=False)
    with pytest.raises(NetDescError, match="synapse_formats: no projection 'v' in the network"):
        simulate(network({"v": {0: "conv"}}), x, 3, device="cpu", record=False)


def test_a_target_reads_back_from_its_own_tables():
    for name in mappings.available_targets():
        t = mappings.load_target(name)
        d = t.to_dict()
        again = mappings.parse_target({"target": {"name": d.pop("name"), "description": d.pop("description")},
                                       **{k: v for k, v in d.items() if k != "source"}}, t.source)
        assert again == t


# ---------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory):
    from neuromap.ir import save_graph
    graph = digits_mlp()
    return str(save_graph(graph, tmp_path_factory.mktemp("model") / "mlp.npz"))


def _run(*args):
    from neuromap.cli import main
    return CliRunner().invoke(main, ["estimate", *args, "--data", "digits", "--steps", "4", "--limit", "3",
                                     "--input-encoding", "spikes"])


def test_cli_real_time_several_targets_and_a_named_set(mlp_file):
    res = _run(mlp_file, "--target", "loihi1", "--target", "loihi2", "--step-time", "0.001", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert [t["chip"]["target"] for t in out["targets"]] == ["loihi1", "loihi2"]
    for t in out["targets"]:
        chip = t["chip"]
        assert chip["mode"] == "real-time" and chip["step_time_s"] == pytest.approx(1e-3)
        assert chip["latency_s"] == pytest.approx(4e-3) and chip["throughput_per_s"] == pytest.approx(250)
        # static power over 4 ms: 104 mW (Loihi 1, Frady et al. 2020) and 257 mW (Loihi 2, the mean of Intel's two
        # measured 232 and 282 mW, loihi2.toml)
    assert [t["chip"]["terms_j"]["static"] for t in out["targets"]] == pytest.approx([0.104 * 4e-3, 0.257 * 4e-3])
    table = res.output
    assert "loihi1 / davies2018" in table and "loihi2 / intel_measured" in table and "dynamic" in table
    named = _run(mlp_file, "--target", "loihi1", "--constant-set", "davies2018", "--json")
    assert json.loads(named.output.strip().splitlines()[-1])["chip"]["constant_set"] == "davies2018"


def test_cli_contention_flag_turns_the_link_bound_on_and_says_so(mlp_file):
    """Loihi 1's links pass a message per 0.29 ns (Davies 2018 Table 2), far faster than a core sends one
    (2.1 ns): on the MLP the link bound is on, named, and changes no figure."""
    runs = {flag: json.loads(_run(mlp_file, "--target", "loihi1", *flag, "--json").output.strip().splitlines()[-1])
            for flag in ((), ("--contention",))}
    off, on = runs[()]["chip"], runs[("--contention",)]["chip"]
    assert (off["contention"], on["contention"]) == (False, True)
    assert "link contention off" in off["notes"][1] and "link contention on XY routes" in on["notes"][1]
    assert on["latency_terms_s"]["contention"] == 0.0 and on["latency_s"] == pytest.approx(off["latency_s"])


@pytest.mark.parametrize("args, message", [
    (["--target", "loihi1", "--constant-set", "fast"],
     "neuromap: error: target 'loihi1': no constant set 'fast' (known: davies2018"),
    (["--target", "loihi1", "--step-time", "0"], "neuromap: error: --step-time must be a number of seconds > 0"),
])
def test_cli_refuses_a_bad_set_or_period_in_one_line(mlp_file, args, message):
    res = _run(mlp_file, *args)
    assert res.exit_code == 2 and res.output.startswith(message) and len(res.output.strip().splitlines()) == 1


def test_docs_estimator_lists_every_shipped_constant_as_the_target_files_give_it():
    """docs/estimator.md's tables of the Loihi sets: one row per key, with the file's typical [low, high]."""
    from pathlib import Path
    text = (Path(__file__).parent.parent / "docs" / "estimator.md").read_text()

    def shown(f: mappings.Figure) -> str:
        return f"{f.typical:g}" if f.low == f.high == f.typical else f"{f.typical:g} [{f.low:g}, {f.high:g}]"

    for name in ("loihi1", "loihi2"):
        for c in mappings.load_target(name).constant_sets.values():
            section = text.split(f"### `{name}` / `{c.name}`")[1].split("\n### ")[0]
            for key, figure in {**c.energy, **c.timing}.items():
                assert f"| `{key}` | {shown(figure)} |" in section, (name, c.name, key)


def test_more_chips_than_the_multichip_table_covers_are_refused_when_estimated(tmp_path):
    from pathlib import Path
    text = Path(TESTCHIP.source).read_text().replace("barrier_multichip_ns = [[2, 1000.0]]",
                                                     "barrier_multichip_ns = [[1, 1000.0]]")
    path = tmp_path / "short.toml"
    path.write_text(text)
    short = mappings.load_target(path)
    events = _counts([1, 1], np.zeros((2, 2)), synops=[[[0, 0]]])
    with pytest.raises(mappings.TargetError, match="constant set 'testchip': the barrier table ends at 1, the "
                                                   "network uses 2 chips"):
        estimate_chip(events, short, [Core(0, 0, 0, 0), Core(1, 1, 2, 0)])


def test_a_mapping_keeps_its_constant_sets_and_an_older_file_takes_the_shipped_ones():
    """A Mapping file stores its target's constant sets; a file written before them (with the old [energy] and
    [timing] tables) loads with the shipped target's sets, and one for an unshipped target is refused."""
    import io

    from neuromap.errors import FormatError
    from neuromap.mapping import Mapping, compile as compile_graph
    mapping = compile_graph(_conv_then_dense(), "testchip")
    again = Mapping.from_arrays(dict(np.load(io.BytesIO(mapping.to_bytes()))), "m.npz")
    assert again.target == mapping.target == TESTCHIP
    arrays = dict(np.load(io.BytesIO(mapping.to_bytes())))
    header = json.loads(str(arrays["__mapping__"][()]))
    old = {k: v for k, v in header["target"].items() if k not in ("estimator", "constant_sets")}
    old |= {"energy": {"synop_pj": 23.6}, "timing": {"synop_ns": 3.5}}
    arrays["__mapping__"] = np.array(json.dumps(header | {"target": old}))
    assert Mapping.from_arrays(arrays, "old.npz").target.constant_sets == TESTCHIP.constant_sets
    arrays["__mapping__"] = np.array(json.dumps(header | {"target": old | {"name": "mychip"}}))
    with pytest.raises(FormatError, match=r"old\.npz: written before constant sets, for target .mychip., which is not"):
        Mapping.from_arrays(arrays, "old.npz")


def test_a_mapping_written_before_the_mesh_keys_takes_them_from_the_shipped_set():
    """Files written before tile_injection_ns, link_ns, message_payload_bit_pj and management_power_mw existed
    load with the shipped set's figures for exactly those keys (the stored ones stay); a set that is not
    shipped is refused by name."""
    import io

    from neuromap.errors import FormatError
    from neuromap.mapping import Mapping, compile as compile_graph
    arrays = dict(np.load(io.BytesIO(compile_graph(_conv_then_dense(), "testchip").to_bytes())))
    header = json.loads(str(arrays["__mapping__"][()]))
    stored = header["target"]["constant_sets"]["testchip"]
    stored["energy"]["neuron_access_pj"]["typical"] = 51.0  # a stored figure that differs from the shipped one
    stored["energy"]["neuron_access_pj"]["high"] = 51.0
    for table, key in (("energy", "message_payload_bit_pj"), ("energy", "management_power_mw"),
                       ("timing", "tile_injection_ns"), ("timing", "link_ns")):
        del stored[table][key]
    arrays["__mapping__"] = np.array(json.dumps(header))
    sets = Mapping.from_arrays(arrays, "old.npz").target.constant_set("testchip")
    shipped = TESTCHIP.constant_set("testchip")
    assert sets.timing["tile_injection_ns"] == shipped.timing["tile_injection_ns"]
    assert sets.timing["link_ns"] == shipped.timing["link_ns"]
    assert sets.energy["message_payload_bit_pj"] == shipped.energy["message_payload_bit_pj"]
    assert sets.energy["management_power_mw"] == shipped.energy["management_power_mw"]
    assert sets.energy["neuron_access_pj"].typical == 51.0
    header["target"]["constant_sets"] = {"mine": stored}
    header["target"]["estimator"]["default_set"] = "mine"
    arrays["__mapping__"] = np.array(json.dumps(header))
    with pytest.raises(FormatError, match=r"old\.npz: constant set 'mine' of target 'testchip' was written before "
                                          r"\[energy\] message_payload_bit_pj existed"):
        Mapping.from_arrays(arrays, "old.npz")


@pytest.mark.parametrize("old, new, message", [
    ("neuron_access_pj = 50.0", "neuron_access_pj = 0.0",
     r"\[constant_sets.testchip.energy\] neuron_access_pj: must be a finite number > 0, got 0.0"),
    ("barrier_ns = [[1, 100.0], [4, 400.0]]", "barrier_ns = [[1, 0.0], [4, 400.0]]",
     r"barrier_ns\[0\]: must be a finite number > 0, got 0.0"),
    ("message_out_pj = 100.0", "message_out_pj = 2e6",
     r"message_out_pj: must be at most 1e\+06 \(1 uJ per event\), got 2000000.0"),
    ("management_pj_per_step = 1000.0", "management_pj_per_step = 2e9",
     r"management_pj_per_step: must be at most 1e\+09 \(1 mJ per step\), got 2000000000.0"),
    ("board_power_mw = 10.0", "board_power_mw = 1e7", r"board_power_mw: must be at most 1e\+06 \(1 kW\)"),
    ("spike_generation_ns = 30.0", "spike_generation_ns = 1" + "0" * 400,
     r"spike_generation_ns: must be a finite number >= 0, got inf"),
])
def test_constants_that_would_zero_or_overflow_an_estimate_are_refused(tmp_path, old, new, message):
    from pathlib import Path
    text = Path(TESTCHIP.source).read_text()
    assert old in text
    path = tmp_path / "chip.toml"
    path.write_text(text.replace(old, new))
    with pytest.raises(mappings.TargetError, match=message):
        mappings.load_target(path)


def test_the_estimate_names_every_term_its_set_leaves_out():
    """The x86 management energy per step and power while stepping are not modelled for Loihi 2 (no published
    figure): the estimate's JSON says so, with the file's reason and bound, as it does for every other zero
    "not modelled" figure of the set (read off mappings/targets/loihi2.toml by hand); testchip models every
    term and says nothing."""
    cores = [Core(0, 0, 0, 0)]
    loihi2 = estimate_chip(_one_core(), mappings.load_target("loihi2"), cores).to_dict()["notes"]
    left_out = [n.removeprefix("not included: ").split(" (")[0] for n in loihi2 if n.startswith("not included: ")]
    assert left_out == ["management_pj_per_step", "board_power_mw", "management_power_mw", "management_ns_per_step"]
    management = next(n for n in loihi2 if n.startswith("not included: management_pj_per_step"))
    assert "at most its dynamic 0.447 W (a bound" in management and "~70 mW" in management
    assert not [n for n in estimate_chip(_one_core(), TESTCHIP, cores).notes if n.startswith("not included")]
