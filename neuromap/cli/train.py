"""``neuromap train``: train an SNN with STOP (or the BPTT baseline) and export it to the IR.

    neuromap train --data digits --arch c16-p2-c32-p2 --method stop-wtl --steps 8 --out net.npz --json
"""
from __future__ import annotations

import click
import numpy as np
import torch

from neuromap import data
from neuromap.cli.common import SEED, checked_device, checked_output, checked_output_folder, emit_json
from neuromap.errors import NeuromapError

MAX_THREADS = 1024   # torch's OpenMP pool allocates per thread: 10^9 aborted the process (libgomp out of memory)


@click.command("train")
@click.option("--data", "data_name", default="digits", show_default=True,
              help="digits, mnist5k, or an .npz with x (N, ...) and y (N,)")
@click.option("--arch", default="conv", show_default=True,
              help="preset (mlp, mlp2, conv, vgg11, resnet18) or layers like c16-m2-r32s2-p2-fc128 (c conv, "
                   "r residual block, p/m average/max pool, g global pool, fc dense)")
@click.option("--method", type=click.Choice(["stop-wtl", "stop-wt", "stop-w", "bptt"]), default="stop-wtl",
              show_default=True, help="STOP variant (what it learns: Weights, Thresholds, Leaks) or BPTT")
@click.option("--encoding", type=click.Choice(["direct", "saccade"]), default="direct", show_default=True,
              help="direct: the image every step; saccade: ON/OFF events of the image moved along a triangle")
@click.option("--steps", type=click.IntRange(min=1), default=8, show_default=True, help="time steps T")
@click.option("--epochs", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
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
# -- deep STOP and training that scales (the deep-stop block)
@click.option("--width", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="multiply every layer's channels/units (e.g. 0.125 for a small vgg11/resnet18)")
@click.option("--bias/--no-bias", default=False, show_default=True, help="biases on the spiking layers")
@click.option("--calibrate", is_flag=True,
              help="data-dependent init: scale each layer's weights to a current spread of its threshold "
                   "(deep nets such as vgg11 and resnet18 stay silent without it)")
@click.option("--device", default="cpu", show_default=True, callback=checked_device,
              help="where to train: cpu, cuda, cuda:N")
@click.option("--amp", is_flag=True,
              help="bfloat16 autocast for the synaptic ops (membranes, traces, loss stay float32)")
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile each layer's membrane update")
@click.option("--checkpoint", type=click.Path(file_okay=False), default=None, callback=checked_output_folder,
              help="folder for a checkpoint after every epoch (model, optimizer, RNG state, epoch)")
@click.option("--resume", is_flag=True, help="continue from the --checkpoint folder's last epoch")
# -- end of the deep-stop block
@click.option("--json", "as_json", is_flag=True, help="print one JSON object as the last line")
def train(data_name, arch, method, encoding, steps, epochs, batch_size, lr, lr_theta, lr_alpha, alpha, theta,
          seed, out, check_export, threads, width, bias, calibrate, device, amp, compile_model, checkpoint, resume,
          as_json):
    """Train a spiking network (STOP or BPTT) and export it to a neuromap graph."""
    from neuromap.backends import torch_sim
    from neuromap.frontends.stop import Trainer, build_model, fit, saccade_events, to_graph
    from neuromap.frontends.stop.export import simulation_input
    from neuromap.ir import save_graph

    if threads:
        torch.set_num_threads(threads)
    ds = data.load(data_name)
    encode, input_shape = None, ds.sample_shape
    if encoding == "saccade":
        if len(ds.sample_shape) != 3:
            raise NeuromapError(f"--encoding saccade needs images (C, H, W); {ds.name} has samples {ds.sample_shape}")
        encode = lambda xb: saccade_events(xb, steps)  # noqa: E731 (a one-line transform)
        input_shape = (2 * ds.sample_shape[0], *ds.sample_shape[1:])
    model = build_model(arch, input_shape, ds.num_classes, seed=seed, alpha=alpha, theta=theta, width=width,
                        bias=bias).to(device)
    if calibrate:
        sample = torch.as_tensor(ds.x_train[:256])
        model.calibrate_((encode(sample) if encode else sample).to(device), None if encode else steps)
    trainer = Trainer(model, method, lr=lr, lr_theta=lr if lr_theta is None else lr_theta,
                      lr_alpha=lr if lr_alpha is None else lr_alpha, amp=amp, compile=compile_model)
    result = fit(trainer, ds.x_train, ds.y_train, ds.x_test, ds.y_test, steps=steps, epochs=epochs,
                 batch_size=batch_size, seed=seed, encode=encode, progress=not as_json, checkpoint=checkpoint,
                 resume=resume)
    model = model.cpu()
    layers = [{"layer": i + 1, "alpha": layer.neuron.alpha.item(), "theta_min": layer.neuron.theta.min().item(),
               "theta_mean": layer.neuron.theta.mean().item(), "theta_max": layer.neuron.theta.max().item()}
              for i, layer in enumerate(model.layers)]
    graph = to_graph(model, steps=steps)
    report = {"data": ds.name, "arch": arch, "method": method, "encoding": encoding, "steps": steps,
              "epochs": epochs, "test_accuracy": round(100 * result.test_accuracy, 2), "seconds": result.seconds,
              "final_loss": float(np.mean(result.losses[-10:])), "layers": layers, "device": device,
              "amp": amp, "start_epoch": result.start_epoch, "peak_memory_bytes": result.peak_memory_bytes,
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
