"""``neuromap train``: train an SNN with STOP (or the BPTT baseline) and export it to the IR
(``neuromap.train``)."""
from __future__ import annotations

import click

from neuromap.cli.choices import TRAIN_ENCODINGS
from neuromap.cli.common import (
    TRAINING_HELP,
    checked_device,
    checked_output,
    checked_output_folder,
    data_option,
    emit_json,
    encoding_option,
    json_option,
    quiet_option,
    say,
    seed_option,
    steps_option,
)

MAX_THREADS = 1024   # torch's OpenMP pool allocates per thread: 10^9 aborted the process (libgomp out of memory)

@click.command("train")
@data_option(help=TRAINING_HELP)
@click.option("--arch", default="conv", show_default=True,
              help="Preset (mlp, mlp2, conv, vgg11, resnet18) or layers like c16-m2-r32s2-p2-fc128 (c conv, "
                   "r residual block, p/m average/max pool, g global pool, fc dense).")
@click.option("--method", type=click.Choice(["stop-wtl", "stop-wt", "stop-w", "bptt"]), default="stop-wtl",
              show_default=True, help="STOP variant (what it learns: Weights, Thresholds, Leaks) or BPTT.")
@encoding_option(TRAIN_ENCODINGS)
@steps_option(8, "of training (the exported graph runs T + its latency)")
@click.option("--epochs", type=click.IntRange(min=1), default=8, show_default=True, help="Training epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Mini-batch size; with --workers the global batch, split across the workers.")
@click.option("--lr", type=float, default=5e-3, show_default=True, help="Adam learning rate of the weights.")
@click.option("--lr-theta", type=float, default=None, help="Learning rate of the thresholds [default: --lr].")
@click.option("--lr-alpha", type=float, default=None, help="Learning rate of the leaks [default: --lr].")
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="Initial leak factor.")
@click.option("--theta", type=click.FloatRange(min=1e-3), default=1.0, show_default=True,
              help="Initial threshold (at least the trainer's floor, 1e-3).")
@seed_option("the initialisation and the batch order")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, callback=checked_output,
              help="Write the exported IR graph here (.npz).")
@click.option("--check-export/--no-check-export", default=True, show_default=True,
              help="Run the exported graph in the torch simulator on the test set and compare predictions.")
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=None,
              help="torch CPU threads (on a busy few-core machine 1 is often much faster).")
@click.option("--width", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Multiply every layer's channels/units (e.g. 0.125 for a small vgg11/resnet18).")
@click.option("--bias/--no-bias", default=False, show_default=True, help="Biases on the spiking layers.")
@click.option("--calibrate", is_flag=True,
              help="Data-dependent init: scale each layer's weights to a current spread of its threshold "
                   "(deep nets such as vgg11 and resnet18 stay silent without it).")
@click.option("--device", default="cpu", show_default=True, callback=checked_device,
              help="Where to train: cpu, cuda, cuda:N.")
@click.option("--amp", is_flag=True,
              help="bfloat16 autocast for the synaptic ops (membranes, traces, loss stay float32).")
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile each layer's membrane update.")
@click.option("--checkpoint", type=click.Path(file_okay=False), default=None, callback=checked_output_folder,
              help="Folder for a checkpoint after every epoch (model, optimiser, RNG state, epoch).")
@click.option("--resume", is_flag=True, help="Continue from the --checkpoint folder's last epoch.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Data-parallel training in N local processes (torch.distributed, gloo; --threads torch "
                   "threads each, default 1): --batch-size stays the global batch, each worker takes 1/N of it, "
                   "and the result equals one process's up to float rounding. Under torchrun: one rank per "
                   "process, N = WORLD_SIZE, rank 0 alone prints and writes (docs/distributed.md).")
@json_option
@quiet_option
def train(data: str, arch: str, method: str, encoding: str, steps: int, epochs: int, batch_size: int, lr: float,
          lr_theta: float | None, lr_alpha: float | None, alpha: float, theta: float, seed: int, out: str | None,
          check_export: bool, threads: int | None, width: float, bias: bool, calibrate: bool, device: str,
          amp: bool, compile_model: bool, checkpoint: str | None, resume: bool, workers: int | None,
          as_json: bool) -> None:
    """Train a spiking network (STOP or BPTT) on DATA and export it to a neuromap graph.

    \b
    Examples:
      neuromap train --data digits --arch conv --method stop-wtl --out out/stop.npz
      neuromap train --data mnist5k --arch vgg11 --width 0.125 --calibrate --checkpoint out/ckpt --resume
      neuromap train --data digits --arch conv --workers 2 --batch-size 64 --out out/stop.npz
    """
    from neuromap import api
    from neuromap.frontends.stop.distributed import is_rank_zero

    r = api.train(data, arch=arch, method=method, encoding=encoding, steps=steps, epochs=epochs,
                  batch_size=batch_size, lr=lr, lr_theta=lr_theta, lr_alpha=lr_alpha, alpha=alpha, theta=theta,
                  seed=seed, out=out, check_export=check_export, threads=threads, width=width, bias=bias,
                  calibrate=calibrate, device=device, amp=amp, compile_model=compile_model, checkpoint=checkpoint,
                  resume=resume, workers=workers, progress=not as_json)
    if not is_rank_zero():  # started by torchrun: rank 0 alone reports
        return
    say(f"{method} on {r.data} ({arch}, T={steps}, {encoding}): test accuracy {r.test_accuracy:.2f} % after "
        f"{epochs} epochs in {r.seconds:.1f} s")
    for entry in r.layers:
        say(f"  layer {entry['layer']}: alpha {entry['alpha']:.3f}, theta {entry['theta_min']:.3f}.."
            f"{entry['theta_max']:.3f} (mean {entry['theta_mean']:.3f})")
    if out:
        say(f"  exported graph -> {out}")
    if check_export:
        say(f"  exported graph in torch_sim ({r.export['run_steps']} steps = T + latency {r.export['latency']}): "
            f"accuracy {r.export['accuracy']:.2f} %, agrees with the trained network on "
            f"{100 * r.export['agreement']:.1f}% of test samples")
    if as_json:
        emit_json(r.to_dict())
