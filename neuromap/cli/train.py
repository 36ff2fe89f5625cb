"""``neuromap train``: train an SNN with STOP (or the BPTT baseline) and export it to the IR
(``neuromap.train``)."""
from __future__ import annotations

import click

from neuromap.cli.choices import TRAIN_ENCODINGS
from neuromap.cli.common import (
    TRAINING_HELP,
    checked_output,
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
              help="Preset (mlp, mlp2, conv) or layers like c16-p2-c32k5-p2-fc128.")
@click.option("--method", type=click.Choice(["stop-wtl", "stop-wt", "stop-w", "bptt"]), default="stop-wtl",
              show_default=True, help="STOP variant (what it learns: Weights, Thresholds, Leaks) or BPTT.")
@encoding_option(TRAIN_ENCODINGS)
@steps_option(8, "of training (the exported graph runs T + its latency)")
@click.option("--epochs", type=click.IntRange(min=1), default=8, show_default=True, help="Training epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Mini-batch size.")
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
@json_option
@quiet_option
def train(data: str, arch: str, method: str, encoding: str, steps: int, epochs: int, batch_size: int, lr: float,
          lr_theta: float | None, lr_alpha: float | None, alpha: float, theta: float, seed: int, out: str | None,
          check_export: bool, threads: int | None, as_json: bool) -> None:
    """Train a spiking network (STOP or BPTT) on DATA and export it to a neuromap graph.

    \b
    Examples:
      neuromap train --data digits --arch conv --method stop-wtl --out out/stop.npz
      neuromap train --data digits --arch c16-p2-c32-p2 --steps 8 --encoding saccade --json
      neuromap train --data mnist5k --arch mlp2 --method bptt --epochs 4 --threads 1
    """
    from neuromap import api

    r = api.train(data, arch=arch, method=method, encoding=encoding, steps=steps, epochs=epochs,
                  batch_size=batch_size, lr=lr, lr_theta=lr_theta, lr_alpha=lr_alpha, alpha=alpha, theta=theta,
                  seed=seed, out=out, check_export=check_export, threads=threads, progress=not as_json)
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
