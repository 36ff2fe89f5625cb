"""Progress bars: shown on a terminal, silent when piped or quiet; hwsim reports every sample once."""
import io

import numpy as np
from netgen import random_inputs, random_network

from hwsim.sim import simulate
from neuromap.progress import bar, is_quiet, quiet, set_quiet, track


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def on_terminal(monkeypatch) -> _Terminal:
    """A terminal as stderr, from here on. Called in the test body: pytest's capture puts its own sys.stderr
    back between a fixture's set-up and the call."""
    screen = _Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    return screen


def test_a_bar_is_drawn_on_a_terminal(monkeypatch):
    screen = on_terminal(monkeypatch)
    assert list(track(range(5), desc="training")) == list(range(5))
    assert "training" in screen.getvalue()


def test_quiet_silences_every_bar_and_restores(monkeypatch):
    screen = on_terminal(monkeypatch)
    with quiet():
        assert is_quiet()
        list(track(range(5), desc="training"))
        with bar(desc="hwsim", total=3) as b:
            b.update(3)
    assert screen.getvalue() == ""
    assert not is_quiet()


def test_a_caller_can_switch_its_own_bar_off(monkeypatch):
    screen = on_terminal(monkeypatch)
    with bar(desc="lava", total=2, enabled=False) as b:
        b.update(2)
    assert screen.getvalue() == ""


def test_set_quiet_lasts(monkeypatch):
    screen = on_terminal(monkeypatch)
    set_quiet(True)
    try:
        list(track(range(3), desc="sweep"))
    finally:
        set_quiet(False)
    assert screen.getvalue() == ""


def test_no_bar_when_stderr_is_not_a_terminal(capsys):
    list(track(range(3), desc="piped"))
    assert capsys.readouterr().err == ""


def test_hwsim_reports_each_chunk_of_samples_once():
    qnet = random_network(3)
    inputs = random_inputs(qnet, 3, batch=7, steps=4)
    done: list[int] = []
    chunked = simulate(qnet, inputs, 4, batch_size=3, progress=done.append)
    assert done == [3, 3, 1]
    whole = simulate(qnet, inputs, 4)
    for name, spikes in whole.spikes.items():
        np.testing.assert_array_equal(chunked.spikes[name], spikes)
