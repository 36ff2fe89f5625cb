"""Plots: written in the format their suffix names; bad requests are one-line errors."""
import pytest
from click.testing import CliRunner

from neuromap.cli import main
from neuromap.errors import NeuromapError
from neuromap.reporting import plot_accuracy_vs_steps

CURVES = {"soft reset": {8: 80.0, 16: 91.5, 32: 93.0}, "hard reset": {8: 60.0, 16: 85.0, 32: 92.0}}


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_accuracy_curve_is_written_in_the_suffixs_format(tmp_path, suffix, magic):
    path = plot_accuracy_vs_steps(CURVES, tmp_path / f"sub/curve{suffix}", reference=93.5)
    assert path.read_bytes().startswith(magic)


def test_bad_plot_requests(tmp_path):
    with pytest.raises(NeuromapError, match="plots are written as"):
        plot_accuracy_vs_steps(CURVES, tmp_path / "curve.jpg")
    with pytest.raises(NeuromapError, match="no points"):
        plot_accuracy_vs_steps({"soft": {}}, tmp_path / "curve.png")
    res = CliRunner().invoke(main, ["convert", "--plot", str(tmp_path / "c.png")])
    assert res.exit_code == 2 and "give --sweep" in res.output
