"""The report as one self-contained HTML page: inline CSS, figures inlined as base64 PNG, no script, no link
to anything outside the file, so it opens offline and can be mailed or attached as it is.

Every figure the page prints as a number comes from ``numbers(contents)`` by its key path (``"estimate.chip.
energy_j.total"``: the estimator's JSON object, ``neuromap estimate --json``, under ``estimate``) and carries
it in ``data-figure`` / ``data-value`` attributes, so a program (and the tests) can read back exactly what is
shown.
"""
from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping as MappingType
from typing import Any

from neuromap.neurons import model_for
from neuromap.passes.partition import RESOURCES
from neuromap.reporting.collect import Contents
from neuromap.reporting.figures import firing_rates

# section id -> its heading, in page order
SECTIONS = {
    "network": "Network",
    "fit": "Does it fit?",
    "chip-map": "Chip map",
    "quantization": "Quantization",
    "accuracy": "Accuracy",
    "activity": "Spikes and firing rates",
    "energy": "Energy and latency on the chip",
    "gpu": "Chip vs GPU",
    "sweep": "Accuracy vs time steps",
}
# the estimator's figures the page shows, as key paths into its JSON object
CHIP_FIGURES = ("energy_j.dynamic", "energy_j.static", "energy_j.total", "energy_band_j.low", "energy_band_j.high",
                "latency_s", "latency_band_s.low", "latency_band_s.high", "step_time_s", "throughput_per_s",
                "edp_js", "dominant_term", "constant_set", "label")
GPU_FIGURES = ("device", "network", "precision", "batch", "energy_j.total", "energy_band_j.low",
               "energy_band_j.high", "latency_s", "source")

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; margin: 0; }
header { background: #20364f; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; } header p { margin: 0; opacity: .85; }
main { max-width: 960px; margin: 0 auto; padding: 8px 32px 48px; }
nav { background: #f3f5f8; border-radius: 6px; padding: 10px 18px; margin: 18px 0; }
nav ol { margin: 0; padding-left: 20px; columns: 3; } nav a { color: #20364f; }
section { border-top: 1px solid #dde2e8; padding-top: 6px; margin-top: 26px; }
h2 { font-size: 20px; margin: 10px 0 4px; color: #20364f; }
p.legend { color: #4a5563; margin: 4px 0 10px; font-size: 14px; }
img { display: block; width: 900px; max-width: 100%; height: auto; margin: 8px 0; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13.5px; }
th, td { border-bottom: 1px solid #e4e8ee; padding: 3px 10px; text-align: left; vertical-align: top; }
th { background: #f3f5f8; } td:first-child { white-space: nowrap; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #6b7380; font-size: 13px; } .binding { font-weight: 600; color: #9c2f12; }
dl.legend { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; font-size: 13px; color: #4a5563; }
dl.legend dt { font-weight: 600; }
"""

QUANT_COLUMNS = {
    "projection": "the lowered projection (a chain of synaptic nodes) and the population it feeds",
    "exp": "weight exponent: a weight is its integer mantissa times 2^exp",
    "scale": "λ, weight units per float unit of membrane (largest over the population's channels)",
    "max |err|": "largest |w - q·2^exp/λ| over the projection's weights, in float weight units",
    "weights": "weights in the projection; clipped: beyond the mantissa range; to zero: nonzero weights that "
               "rounded to 0",
    "vth": "the population's integer threshold range and its largest relative rounding error",
    "worst |u|": "a bound on the synaptic current in state units; beyond the state width it could wrap",
}


def _at(tree: Any, path: str) -> Any:
    for key in path.split("."):
        tree = tree[int(key)] if isinstance(tree, list) else tree[key]
    return tree


def _subset(tree: Any, paths: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in paths:
        *parents, leaf = path.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = _at(tree, path)
    return out


def _shown_gpu_points(points: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The table's GPU points: each network and precision at batch 1 and at its largest batch, by their index
    in the estimator's ``gpu`` list."""
    largest: dict[tuple, int] = {}
    for p in points:
        key = (p["network"], p["precision"], p["source"])
        largest[key] = max(largest.get(key, 0), p["batch"])
    return {str(i): _subset(p, GPU_FIGURES) for i, p in enumerate(points)
            if p["batch"] in (1, largest[(p["network"], p["precision"], p["source"])])}


def numbers(contents: Contents) -> dict[str, Any]:
    """Every figure the page shows, nested by section (the report's ``numbers``; JSON-ready)."""
    mapping, est = contents.mapping, contents.estimate
    graph = mapping.graph
    qnet = mapping.netdesc()
    resources = mapping.resources
    populations = [n for n in graph.order if graph.nodes[n].is_neuron]
    synapses = {p: int(sum(pr.weights.nnz for pr in qnet.projections if pr.dst == p)) for p in populations}
    return {
        "run": {"data": contents.samples.name, "split": contents.samples.split, "samples": len(contents.samples.y),
                "steps": contents.samples.steps, "target": mapping.target.name},
        "network": {"nodes": len(graph.nodes), "populations": len(populations),
                    "neurons": int(sum(math.prod(graph.nodes[p].output_shape) for p in populations)),
                    "synapses": int(sum(synapses.values())), "synapses_per_population": synapses},
        "fit": {"fits": True, "cores": resources["cores"], "chips": resources["chips"],
                "lower_bound_cores": resources["lower_bound_cores"],
                "binding_constraint": resources["binding_constraint"],
                "per_resource": {r: dict(resources["per_resource"][r]) for r in RESOURCES}},
        "accuracy": {key: a.value for key, a in contents.accuracy.items()},
        "activity": {"firing_rate_hwsim": firing_rates(contents.hwsim),
                     "firing_rate_torch": firing_rates(contents.torch)},
        "estimate": {"accuracy": est["accuracy"], "samples": est["samples"], "steps": est["steps"],
                     "chip": _subset(est["chip"], CHIP_FIGURES), "gpu": _shown_gpu_points(est["gpu"])},
        "sweep": {label: {str(t): a for t, a in curve.items()} for label, curve in contents.sweep.items()},
    }


def si(value: float, unit: str) -> str:
    """``value`` with the engineering prefix that keeps 1 to 3 digits before the point."""
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"),
                          (1e-12, "p")):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


class _Writer:
    """Builds the HTML, every figure printed through ``num`` from the ``numbers`` tree."""

    def __init__(self, shown: dict[str, Any]) -> None:
        self.shown = shown
        self.parts: list[str] = []

    def num(self, path: str, unit: str = "", *, digits: str = "") -> str:
        value = _at(self.shown, path)
        if value is None:
            text = "—"
        elif isinstance(value, str):
            text = html.escape(value)
        elif digits:
            text = f"{value:{digits}}" + (f" {unit}" if unit else "")
        elif unit in ("J", "s", "J s", "/s"):
            text = si(float(value), unit)
        else:
            text = f"{value:,}" + (f" {unit}" if unit else "")
        return f'<span data-figure="{html.escape(path)}" data-value="{html.escape(repr(value))}">{text}</span>'

    def add(self, text: str) -> None:
        self.parts.append(text)

    def table(self, head: list[str], rows: list[list[str]], numeric: tuple[int, ...] = ()) -> None:
        """A table; the ``numeric`` columns are right-aligned."""
        def cell(tag: str, k: int, text: str) -> str:
            return f'<{tag} class="n">{text}</{tag}>' if k in numeric else f"<{tag}>{text}</{tag}>"

        self.add("<table><tr>" + "".join(cell("th", k, h) for k, h in enumerate(head)) + "</tr>"
                 + "".join("<tr>" + "".join(cell("td", k, c) for k, c in enumerate(row)) + "</tr>" for row in rows)
                 + "</table>")


def _img(name: str, data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img id="figure-{name}" alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _section(w: _Writer, key: str, legend: str, figure: tuple[str, bytes] | None = None) -> None:
    has = ' class="has-figure"' if figure else ""
    w.add(f'<section id="{key}"{has}><h2>{SECTIONS[key]}</h2><p class="legend">{legend}</p>')
    if figure:
        w.add(_img(figure[0], figure[1], f"{SECTIONS[key]}: {legend}"))


def _network(w: _Writer, contents: Contents) -> None:
    graph = contents.mapping.graph
    _section(w, "network", f"{w.num('network.nodes')} nodes, {w.num('network.populations')} neuron populations, "
             f"{w.num('network.neurons')} neurons and {w.num('network.synapses')} synapses on the chip (nonzero "
             "integer weights, bias axons included); each population's model and the cores it sits on.")
    cores_of = {p: len(set(contents.mapping.neuron_cores(p).tolist())) for p in graph.order
                if graph.nodes[p].is_neuron}
    rows = []
    for name in graph.order:
        node = graph.nodes[name]
        neuron = node.is_neuron
        rows.append([html.escape(name), type(node).__name__, "&times;".join(map(str, node.output_shape)),
                     f"{math.prod(node.output_shape):,}" if neuron else "",
                     w.num(f"network.synapses_per_population.{name}") if neuron else "",
                     html.escape(model_for(node).hwsim_model) if neuron else "", f"{cores_of[name]}" if neuron else ""])
    w.table(["node", "kind", "shape", "neurons", "synapses in", "hwsim model", "cores"], rows, (3, 4, 6))
    w.add(f'<p class="note">Compiled for {html.escape(contents.mapping.target.name)} '
          f"({contents.mapping.resources['placement']} placement).</p></section>")


def _fit(w: _Writer, contents: Contents, figure: bytes) -> None:
    binding = contents.mapping.resources["binding_constraint"]
    _section(w, "fit", f"It fits: {w.num('fit.cores')} core(s) on {w.num('fit.chips')} chip(s), at least "
             f"{w.num('fit.lower_bound_cores')} by the totals. The binding constraint (the fullest resource on most "
             f"cores) is <span class=\"binding\">{w.num('fit.binding_constraint')}</span>. The heat map is each "
             "core's use of each resource as a share of its capacity.", ("resources", figure))
    rows = []
    for r in RESOURCES:
        name = r.replace("_", " ")
        rows.append([f'<span class="binding">{name}</span>' if r == binding else name,
                     w.num(f"fit.per_resource.{r}.total"), w.num(f"fit.per_resource.{r}.per_core"),
                     w.num(f"fit.per_resource.{r}.utilisation", digits=".2%"),
                     w.num(f"fit.per_resource.{r}.max_core_utilisation", digits=".2%"),
                     w.num(f"fit.per_resource.{r}.lower_bound_cores")])
    w.table(["resource", "total", "per core", "utilisation (all cores)", "fullest core", "cores needed"], rows,
            (1, 2, 3, 4, 5))
    w.add("</section>")


def _quantization(w: _Writer, contents: Contents, figure: bytes) -> None:
    _section(w, "quantization", "How the float weights and thresholds became the target's integers, per "
             "population and incoming projection (the compiler's quantization report). Left: the largest "
             "rounding error relative to the largest weight; right: the share of weights clipped or rounded "
             "to zero.", ("quantization", figure))
    rows = []
    for layer in contents.mapping.quantization_report:
        vth = layer["vth_range"]
        for p in layer["projections"]:
            rows.append([html.escape(f"{p['name']} → {layer['population']}"), f"{p['weight_exp']}",
                         f"{layer['scale_max']:.5g}", f"{p['max_abs_error']:.3g}",
                         f"{p['weights']:,} / {p['clipped']:,} / {p['rounded_to_zero']:,}",
                         f"{vth[0]:,}..{vth[1]:,} (≤ {layer['vth_max_rel_error']:.2g})",
                         f"{layer['worst_case_current']:,}"])
            if layer["notes"]:
                rows.append([f'<span class="note">{html.escape("; ".join(layer["notes"]))}</span>', *[""] * 6])
    w.table(["projection", "exp", "scale", "max |err|", "weights / clipped / to zero", "vth (rel. err)",
             "worst |u|"], rows, (1, 2, 3, 4, 5, 6))
    w.add('<dl class="legend">' + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
                                          for k, v in QUANT_COLUMNS.items()) + "</dl></section>")


def _accuracy(w: _Writer, contents: Contents) -> None:
    _section(w, "accuracy", f"Top-1 accuracy on {w.num('run.samples')} samples ({w.num('run.split')} split of "
             f"{w.num('run.data')}), {w.num('run.steps')} time steps; every engine sees the same inputs.")
    w.table(["engine", "accuracy", "where it comes from"],
            [[html.escape(a.label), w.num(f"accuracy.{key}", "%", digits=".2f") if a.value is not None else "—",
              f'<span class="note">{html.escape(a.note)}</span>'] for key, a in contents.accuracy.items()], (1,))
    w.add("</section>")


def _energy(w: _Writer, figure: bytes) -> None:
    c = "estimate.chip."
    _section(w, "energy", f"Energy and latency per inference on the chip, modelled from hwsim's event counts on "
             f"{w.num('estimate.samples')} samples &times; {w.num('estimate.steps')} steps with the constant set "
             f"{w.num(c + 'constant_set')} ({w.num(c + 'label')}). Bands: every constant at its low, then its high "
             f"value. The largest term is {w.num(c + 'dominant_term')}.", ("energy", figure))
    w.table(["figure", "typical", "band [low, high]"], [
        ["energy, dynamic", w.num(c + "energy_j.dynamic", "J"), ""],
        ["energy, static", w.num(c + "energy_j.static", "J"), ""],
        ["energy, total", w.num(c + "energy_j.total", "J"),
         f"[{w.num(c + 'energy_band_j.low', 'J')}, {w.num(c + 'energy_band_j.high', 'J')}]"],
        ["latency", w.num(c + "latency_s", "s"),
         f"[{w.num(c + 'latency_band_s.low', 's')}, {w.num(c + 'latency_band_s.high', 's')}]"],
        ["time step", w.num(c + "step_time_s", "s"), ""],
        ["throughput", w.num(c + "throughput_per_s", "/s"), ""],
        ["energy &times; delay", w.num(c + "edp_js", "J s"), ""]], (1, 2))
    w.add("</section>")


def _gpu(w: _Writer, shown: dict[str, Any], figure: bytes) -> None:
    _section(w, "gpu", f"The same network on the GPU profile {w.num('estimate.gpu.' + next(iter(shown)) + '.device')}"
             " (modelled: a roofline per layer plus kernel launches), as the one-pass ANN and as the SNN run densely "
             "over T steps, in fp32 and the best tensor-core precision, over the batch sweep; the chip (dashed, "
             "its band grey) runs one sample at a time.", ("gpu", figure))
    rows = []
    for i in shown:
        g = f"estimate.gpu.{i}."
        rows.append([f"{w.num(g + 'network')} {w.num(g + 'precision')}", w.num(g + "batch"),
                     w.num(g + "energy_j.total", "J"),
                     f"[{w.num(g + 'energy_band_j.low', 'J')}, {w.num(g + 'energy_band_j.high', 'J')}]",
                     w.num(g + "latency_s", "s"), w.num(g + "source")])
    w.table(["GPU network, precision", "batch", "energy per inference", "band", "latency of the batch", "source"],
            rows, (1, 2, 3, 4))
    w.add("</section>")


def render(contents: Contents, figures: MappingType[str, bytes]) -> tuple[str, dict[str, Any]]:
    """The page's HTML and the ``numbers`` it shows. ``figures``: PNG bytes by name (``resources``,
    ``chip_map``, ``quantization``, ``activity``, ``energy``, ``gpu`` and, with a sweep, ``sweep``)."""
    shown = numbers(contents)
    w = _Writer(shown)
    title = f"neuromap report: {contents.source}"
    w.add(f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
          f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>')
    w.add(f"<header><h1>{html.escape(title)}</h1><p>target {w.num('run.target')} · data {w.num('run.data')} "
          f"({w.num('run.split')} split, {w.num('run.samples')} samples) · {w.num('run.steps')} time steps</p>"
          "</header><main>")
    w.add("<nav><strong>Contents</strong><ol>" + "".join(f'<li><a href="#{key}">{heading}</a></li>'
                                                          for key, heading in SECTIONS.items()) + "</ol></nav>")
    _network(w, contents)
    _fit(w, contents, figures["resources"])
    _section(w, "chip-map", "Where the cores sit: the global mesh chip by chip (frames), each core coloured by its "
             "fullest resource, arrows for the links that carry the most spike messages; right, the messages "
             "between every pair of cores per inference, from hwsim's event counts (a core's own messages on the "
             "diagonal).", ("chip_map", figures["chip_map"]))
    w.add("</section>")
    _quantization(w, contents, figures["quantization"])
    _accuracy(w, contents)
    _section(w, "activity", "Left: the spikes of the first sample on hwsim, one row per neuron, populations "
             "stacked. Right: each population's firing rate over all samples and steps, on hwsim and in the float "
             "SNN: where they differ, quantization changed the dynamics.", ("activity", figures["activity"]))
    w.add("</section>")
    _energy(w, figures["energy"])
    _gpu(w, shown["estimate"]["gpu"], figures["gpu"])
    if "sweep" in figures:
        _section(w, "sweep", "Accuracy after T time steps, for each curve that was measured (--sweep: the float SNN "
                 "and hwsim on the report's samples; --sweep-json: a conversion's soft and hard reset on its test "
                 "split); dashed: the ANN.", ("sweep", figures["sweep"]))
    else:
        _section(w, "sweep", "No sweep was run: give --sweep 8,16,32 (or a neuromap convert --sweep JSON with "
                 "--sweep-json FILE) for the accuracy against T.")
    w.add("</section></main></body></html>")
    return "".join(w.parts), shown
