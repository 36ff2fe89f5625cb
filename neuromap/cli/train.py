"""``neuromap train``: train an SNN with STOP (or the BPTT baseline) and export it to the IR.

    neuromap train --data digits --arch c16-p2-c32-p2 --method stop-wtl --steps 8 --out net.npz --json
"""
from __future__ import annotations

import functools

import click
import numpy as np
import torch

from neuromap import data
from neuromap.cli.common import SEED, checked_output, emit_json
from neuromap.errors import NeuromapError

MAX_THREADS = 1024   # torch's OpenMP pool allocates per thread: 10^9 aborted the process (libgomp out of memory)


@click.command("train")
@click.option("--data", "data_name", default="digits", show_default=True,
              help="digits, mnist5k, or an .npz with x (N, ...) and y (N,)")
@click.option("--arch", default="conv", show_default=True,
              help="preset (mlp, mlp2, conv) or layers like c16-p2-c32k5-p2-fc128")
@click.option("--method", type=click.Choice(["stop-wtl", "stop-wt", "stop-w", "bptt"]), default="stop-wtl",
              show_default=True, help="STOP variant (what it learns: Weights, Thresholds, Leaks) or BPTT")
@click.option("--encoding", type=click.Choice(["direct", "saccade"]), default="direct", show_default=True,
              help="direct: the image every step; saccade: ON/OFF events of the image moved along a triangle")
@click.option("--steps", type=click.IntRange(min=1), default=8, show_default=True, help="time steps T")
@click.option("--epochs", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="mini-batch size; with --workers the global batch, split across the workers")
@click.option("--lr", type=float, default=5e-3, show_default=True, help="Adam learning rate of the weights")
@click.option("--lr-theta", type=float, default=None, help="learning rate of the thresholds [default: --lr]")
@click.option("--lr-alpha", type=float, default=None, help="learning rate of the leaks [default: --lr]")
@click.option("--alpha", type=float, default=0.5, show_default=True, help="initial leak factor")
@click.option("--theta", type=float, default=1.0, show_default=True, help="initial threshold")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, callback=checked_output,
              help="save the exported IR graph (.npz)")
@click.option("--check-export/--no-check-export", default=True, show_default=True,
              help="run the exported graph in the torch simulator on the test set and compare predictions")
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=None,
              help="torch CPU threads (on a busy few-core machine 1 is often much faster)")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="data-parallel training in N local processes (torch.distributed, gloo; --threads torch "
                   "threads each, default 1): --batch-size stays the global batch, each worker takes 1/N of it, "
                   "and the result equals one process's up to float rounding. Under torchrun: one rank per "
                   "process, N = WORLD_SIZE, rank 0 alone prints and writes (docs/distributed.md)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object as the last line")
def train(data_name, arch, method, encoding, steps, epochs, batch_size, lr, lr_theta, lr_alpha, alpha, theta,
          seed, out, check_export, threads, workers, as_json):
    """Train a spiking network (STOP or BPTT) and export it to a neuromap graph."""
    from neuromap.backends import torch_sim
    from neuromap.frontends.stop import Trainer, build_model, saccade_events, to_graph
    from neuromap.frontends.stop.distributed import fit_parallel, is_rank_zero
    from neuromap.frontends.stop.export import simulation_input
    from neuromap.ir import save_graph

    if threads:
        torch.set_num_threads(threads)
    ds = data.load(data_name)
    encode, input_shape = None, ds.sample_shape
    if encoding == "saccade":
        if len(ds.sample_shape) != 3:
            raise NeuromapError(f"--encoding saccade needs images (C, H, W); {ds.name} has samples {ds.sample_shape}")
        encode = functools.partial(saccade_events, steps=steps)  # picklable: --workers sends it to each worker
        input_shape = (2 * ds.sample_shape[0], *ds.sample_shape[1:])
    model = build_model(arch, input_shape, ds.num_classes, seed=seed, alpha=alpha, theta=theta)
    trainer = Trainer(model, method, lr=lr, lr_theta=lr if lr_theta is None else lr_theta,
                      lr_alpha=lr if lr_alpha is None else lr_alpha)
    result = fit_parallel(trainer, ds.x_train, ds.y_train, ds.x_test, ds.y_test, steps=steps, epochs=epochs,
                          batch_size=batch_size, seed=seed, encode=encode, progress=not as_json, workers=workers,
                          threads=threads or 1)
    if not is_rank_zero():  # started by torchrun: rank 0 alone reports and writes
        return
    layers = [{"layer": i + 1, "alpha": layer.neuron.alpha.item(), "theta_min": layer.neuron.theta.min().item(),
               "theta_mean": layer.neuron.theta.mean().item(), "theta_max": layer.neuron.theta.max().item()}
              for i, layer in enumerate(model.layers)]
    graph = to_graph(model, steps=steps)
    report = {"data": ds.name, "arch": arch, "method": method, "encoding": encoding, "steps": steps,
              "epochs": epochs, "test_accuracy": round(100 * result.test_accuracy, 2), "seconds": result.seconds,
              "final_loss": float(np.mean(result.losses[-10:])), "layers": layers,
              "export": {"latency": graph.metadata["latency"], "run_steps": graph.metadata["run_steps"]}}
    click.echo(f"{method} on {ds.name} ({arch}, T={steps}, {encoding}): test accuracy "
               f"{100 * result.test_accuracy:.2f} % after {epochs} epochs in {result.seconds:.1f} s")
    for entry in layers:
        click.echo(f"  layer {entry['layer']}: alpha {entry['alpha']:.3f}, theta {entry['theta_min']:.3f}.."
                   f"{entry['theta_max']:.3f} (mean {entry['theta_mean']:.3f})")
    if out:
        report["export"]["path"] = str(save_graph(graph, out))
        click.echo(f"  exported graph -> {out}")
    if check_export:
        x_test = torch.as_tensor(ds.x_test)
        x_test = encode(x_test) if encode else x_test
        trained = model.predict(x_test, steps).numpy()
        x_sim, run_steps = simulation_input(model, x_test, steps)
        simulated = torch_sim.classify(graph, x_sim, run_steps)
        report["export"]["agreement"] = float(np.mean(simulated == trained))
        report["export"]["accuracy"] = round(100 * float(np.mean(simulated == ds.y_test)), 2)
        click.echo(f"  exported graph in torch_sim ({run_steps} steps = T + latency {graph.metadata['latency']}): "
                   f"accuracy {report['export']['accuracy']:.2f} %, agrees with the trained network on "
                   f"{100 * report['export']['agreement']:.1f}% of test samples")
    if as_json:
        emit_json(report)
