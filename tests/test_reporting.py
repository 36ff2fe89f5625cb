"""The report page without a browser: its sections, its figures (PNG), and its numbers against independent
references (the estimator's own JSON, the partition's counts, the causality of a run)."""
import base64
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner
from netgen import digits_mlp
from PIL import Image

import neuromap
from neuromap.api import estimate
from neuromap.cli import main
from neuromap.data import samples
from neuromap.errors import FormatError, UnsupportedError
from neuromap.ir import Graph, save_graph
from neuromap.reporting import report
from neuromap.reporting.collect import mapping_of, read_sweep_json, recorded_ann_accuracy
from neuromap.reporting.figures import DPI, SIZE, core_utilisation
from neuromap.reporting.page import SECTIONS

LIMIT, STEPS, SWEEP = 20, 12, (3, 4, 12)
SEED = 22   # an untrained net whose hwsim accuracy changes over the first steps (0, 0, 30, 25 %, ... 20 %)


class _Page(HTMLParser):
    """The parts of the page the tests read: sections, headings, legends, images, links, shown numbers."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict] = []
        self.images: list[dict] = []
        self.links: list[str] = []
        self.figures: dict[str, str] = {}
        self.tags: set[str] = set()
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append({"id": a["id"], "figure": "has-figure" in (a.get("class") or ""), "h2": "",
                                  "legend": ""})
        elif tag in ("h2", "p") and self.sections and (tag == "h2" or a.get("class") == "legend"):
            self._in = "h2" if tag == "h2" else "legend"
        elif tag == "img":
            self.images.append(a)
        elif tag == "a":
            self.links.append(a.get("href", ""))
        if "data-figure" in a:
            self.figures[a["data-figure"]] = a["data-value"]

    def handle_endtag(self, tag):
        if tag in ("h2", "p"):
            self._in = None

    def handle_data(self, data):
        if self._in:
            self.sections[-1][self._in] += data


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One report through the CLI (--json, --figures) on the digits MLP over three testchip cores."""
    folder = tmp_path_factory.mktemp("report")
    mapping = neuromap.compile(digits_mlp(seed=SEED, hidden=64), "testchip")
    mapping.save(folder / "mlp.map.npz")
    res = CliRunner().invoke(main, ["report", str(folder / "mlp.map.npz"), "--out", str(folder / "page.html"),
                                    "--limit", str(LIMIT), "--steps", str(STEPS), "--sweep", ",".join(map(str, SWEEP)),
                                    "--figures", str(folder / "figures"), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    page = _Page()
    page.feed((folder / "page.html").read_text(encoding="utf-8"))
    return mapping, summary, page, folder


def test_every_section_has_its_heading_legend_and_contents_entry(built):
    _, summary, page, _ = built
    assert [s["id"] for s in page.sections] == list(SECTIONS)
    for s in page.sections:
        assert s["h2"] == SECTIONS[s["id"]] and len(s["legend"]) > 40, s
    assert [f"#{key}" for key in SECTIONS] == page.links
    assert summary["page"].endswith("page.html") and summary["seconds"] > 0


def test_figures_are_inlined_pngs_one_per_figure_section(built):
    _, summary, page, folder = built
    assert len(page.images) == sum(s["figure"] for s in page.sections) == len(summary["figures"]) == 7
    assert {img["id"] for img in page.images} == {f"figure-{name}" for name in summary["figures"]}
    for img in page.images:
        name = img["id"].removeprefix("figure-")
        head, data = img["src"].split(",", 1)
        assert head == "data:image/png;base64"
        raw = base64.b64decode(data, validate=True)
        assert raw.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(folder / "figures" / f"{name}.png") as written:
            assert written.size == (SIZE[0] * DPI, SIZE[1] * DPI)   # every figure the same size
        assert (folder / "figures" / f"{name}.png").read_bytes() == raw


def test_page_is_self_contained(built):
    _, _, page, folder = built
    text = (folder / "page.html").read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    assert not page.tags & {"script", "link", "iframe", "object", "embed"}
    assert all(link.startswith("#") for link in page.links)


def _at(tree, path):
    for key in path.split("."):
        tree = tree[int(key)] if isinstance(tree, list) else tree[key]
    return tree


def test_numbers_in_the_page_are_the_estimators_json_for_the_same_inputs(built):
    mapping, summary, page, _ = built
    reference = json.loads(json.dumps(estimate(mapping, "digits", steps=STEPS, limit=LIMIT, gpu="h100").to_dict()))
    shown = {k[len("estimate."):]: v for k, v in page.figures.items() if k.startswith("estimate.")}
    assert {"chip.energy_j.total", "chip.energy_band_j.low", "chip.latency_s", "chip.latency_band_s.high",
            "samples", "steps"} <= set(shown)
    assert any(k.startswith("gpu.") for k in shown)
    for path, value in shown.items():
        expected = _at(reference, path)
        assert value == repr(expected), path
        assert _at(summary["numbers"]["estimate"], path) == expected, path
    # the hwsim accuracy (the backend interface's run) is the estimator's (its own simulate calls)
    assert summary["numbers"]["accuracy"]["hwsim"] == reference["accuracy"]
    assert page.figures["accuracy.hwsim"] == repr(reference["accuracy"])


def test_network_and_fit_figures_agree_with_the_partition(built):
    mapping, summary, page, _ = built
    resources = mapping.resources
    numbers = summary["numbers"]
    # synapses: nonzero integer weights of the network hwsim runs vs the partition's per-core counts
    assert numbers["network"]["synapses"] == resources["synapses"]
    assert numbers["network"]["neurons"] == resources["neurons"] == 74
    assert page.figures["fit.binding_constraint"] == repr(resources["binding_constraint"])
    assert numbers["fit"]["cores"] == 3
    share = core_utilisation(mapping)
    for k, (name, r) in enumerate(resources["per_resource"].items()):
        assert share[k].max() == pytest.approx(r["max_core_utilisation"])
        assert share[k].mean() == pytest.approx(r["utilisation"])
        assert page.figures[f"fit.per_resource.{name}.total"] == repr(r["total"])


def test_sweep_points_are_runs_of_that_many_steps(built):
    mapping, summary, _, _ = built
    numbers = summary["numbers"]
    sweep = numbers["sweep"]
    assert set(sweep) == {"float SNN (torch)", "quantized (hwsim)"}
    assert all(set(curve) == {str(t) for t in SWEEP} for curve in sweep.values())
    # the sweep reads one long run after t steps; a run of t steps, by itself, must give the same accuracy
    given = samples("digits", input_shape=(64,), outputs=10, steps=STEPS, limit=LIMIT)
    for t in SWEEP:
        for label, model, backend in (("quantized (hwsim)", mapping, "hwsim"), ("float SNN (torch)", mapping.graph,
                                                                                 "torch")):
            run = neuromap.run(model, given.x, t, backend=backend)
            assert sweep[label][str(t)] == round(100 * float((run.predictions() == given.y).mean()), 2), (label, t)
    assert sweep["quantized (hwsim)"][str(STEPS)] == numbers["accuracy"]["hwsim"] == 20.0
    assert sweep["float SNN (torch)"][str(STEPS)] == numbers["accuracy"]["torch"]


def test_firing_rates_are_the_runs_spike_counts(built):
    mapping, summary, _, _ = built
    x = samples("digits", input_shape=(64,), outputs=10, steps=STEPS, limit=LIMIT).x
    run = neuromap.run(mapping, x, STEPS, backend="hwsim", record=("spikes",))
    spikes = run.spike_counts()["if1"]
    assert summary["numbers"]["activity"]["firing_rate_hwsim"]["if1"] == pytest.approx(spikes / (LIMIT * STEPS * 64))


def test_ann_accuracy_is_read_from_a_converters_metadata():
    graph = digits_mlp()
    assert recorded_ann_accuracy(graph) is None
    tagged = Graph(graph.nodes, graph.edges, {"frontend": "rmp", "rmp": {"ann_accuracy": 91.5}})
    assert recorded_ann_accuracy(tagged) == 91.5
    assert recorded_ann_accuracy(Graph(graph.nodes, graph.edges, {"ann_accuracy": 250.0})) is None


def test_sweep_json_of_convert(tmp_path):
    path = tmp_path / "sweep.json"
    line = {"ann_accuracy": 95.0, "snn_accuracy": {"soft": {"8": 80.0, "16": 94.5}, "hard": {"8": 50.0, "16": 90}}}
    path.write_text("mlp on digits: ...\n" + json.dumps(line) + "\n")
    curves, ann = read_sweep_json(path)
    assert ann == 95.0
    assert curves == {"soft reset (sweep JSON)": {8: 80.0, 16: 94.5}, "hard reset (sweep JSON)": {8: 50.0, 16: 90.0}}
    for bad, field in (({"snn_accuracy": {"soft": {"0": 80.0}}}, "snn_accuracy.soft.0"),
                       ({"snn_accuracy": {"soft": {"8": 101}}}, "snn_accuracy.soft.8"),
                       ({"ann_accuracy": "high", "snn_accuracy": {"soft": {"8": 1}}}, "ann_accuracy"),
                       ({"accuracy": 3}, "snn_accuracy")):
        path.write_text(json.dumps(bad))
        with pytest.raises(FormatError) as caught:
            read_sweep_json(path)
        assert caught.value.field == field
    path.write_text("{not json")
    with pytest.raises(FormatError, match="last line is not JSON"):
        read_sweep_json(path)
    path.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(FormatError, match="pickle"):
        read_sweep_json(path)


def test_a_mapping_keeps_its_target():
    mapping = neuromap.compile(digits_mlp(), "loihi2")
    assert mapping_of(mapping, "loihi2") is mapping
    with pytest.raises(UnsupportedError, match="compiled for target 'loihi2', not 'loihi1'"):
        mapping_of(mapping, "loihi1")


@pytest.mark.parametrize("args, message", [
    (["--sweep", "8,x"], "--sweep: expected comma-separated integers"),
    (["--sweep", "0,8"], "--sweep: time steps must be at least 1"),
    (["--limit", "0"], "--limit"),
    (["--target", "loihi1"], "compiled for target 'loihi2', not 'loihi1'"),
])
def test_bad_options_are_one_error_line(tmp_path, args, message):
    neuromap.compile(digits_mlp(), "loihi2").save(tmp_path / "m.npz")
    res = CliRunner().invoke(main, ["report", str(tmp_path / "m.npz"), "--out", str(tmp_path / "r.html"), *args])
    assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_a_graph_file_is_compiled_for_the_target_with_a_conversions_sweep(tmp_path):
    save_graph(digits_mlp(), tmp_path / "g.npz")
    (tmp_path / "sweep.json").write_text(json.dumps({"ann_accuracy": 97.5, "snn_accuracy": {"soft": {"8": 90.0}}}))
    result = report(tmp_path / "g.npz", tmp_path / "r.html", limit=5, steps=4, target="testchip",
                    sweep_json=tmp_path / "sweep.json")
    assert result.numbers["run"]["target"] == "testchip"
    assert result.to_dict()["page"] == str(tmp_path / "r.html")
    assert result.numbers["accuracy"]["ann"] == 97.5       # no metadata: the sweep JSON's ANN
    assert result.numbers["sweep"] == {"soft reset (sweep JSON)": {"8": 90.0}} and "sweep" in result.figures
    assert np.isfinite(result.numbers["estimate"]["chip"]["energy_j"]["total"])


@pytest.mark.lava
@pytest.mark.slow
def test_lava_accuracy_with_lava_is_hwsims(tmp_path):
    # seed 8: an untrained net whose predictions vary over the 6 samples (4 of them right on hwsim)
    result = report(neuromap.compile(digits_mlp(seed=8), "loihi2"), tmp_path / "r.html", limit=6, steps=8, lava=True)
    accuracy = result.numbers["accuracy"]
    assert accuracy["lava"] == accuracy["hwsim"] == 66.67    # bit-exact engines: the same predictions
    page = _Page()
    page.feed((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert page.figures["accuracy.lava"] == "66.67"
    assert "sweep" not in result.figures and "No sweep was run" in (tmp_path / "r.html").read_text()


@pytest.mark.slow
def test_a_snntorch_nir_file_takes_the_nir_flags(tmp_path):
    import nir
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    # per-neuron beta/threshold: snnTorch 1.0's export of scalars fails NIR 1.0.8's type check
    net = torch.nn.Sequential(torch.nn.Linear(64, 16), snn.Leaky(beta=torch.full((16,), 0.9), threshold=torch.ones(16),
                                                                 init_hidden=True),
                              torch.nn.Linear(16, 10), snn.Leaky(beta=torch.full((10,), 0.9), threshold=torch.ones(10),
                                                                 init_hidden=True, output=True))
    path = tmp_path / "snntorch.nir"
    nir.write(path, export_to_nir(net, torch.zeros(1, 64), ignore_dims=[0]))
    common = ["--limit", "5", "--steps", "8"]
    res = CliRunner().invoke(main, ["report", str(path), "--out", str(tmp_path / "r.html"), *common])
    assert res.exit_code == 2 and "--dt" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["report", str(path), "--out", str(tmp_path / "r.html"), "--from", "snntorch",
                                    *common, "--json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output.strip().splitlines()[-1])["numbers"]
    ran = CliRunner().invoke(main, ["run", str(path), "--from", "snntorch", "--backend", "hwsim", *common, "--json"])
    assert shown["accuracy"]["hwsim"] == json.loads(ran.output.strip().splitlines()[-1])["accuracy"]
    assert shown["network"]["populations"] == 2
