"""Experiment tracking during training: TensorBoard summaries (the default) and, with
``--wandb PROJECT``, Weights & Biases (an optional extra)."""
from __future__ import annotations

from pathlib import Path

from pix2pix.config import TrainConfig
from pix2pix.errors import UsageError


def import_wandb():
    """The wandb module; UsageError when it is not installed (it is an optional extra)."""
    try:
        import wandb
    except ImportError:
        raise UsageError("--wandb: the wandb package is not installed; pip install "
                         "'pix2pix-pachyderm[wandb]', or drop --wandb") from None
    return wandb


class Wandb:
    """Weights & Biases logging beside TensorBoard: losses, learning rate and input | output |
    target samples. A resumed run goes on in the same wandb run (its id is kept in the
    output folder). WANDB_MODE=offline logs to ``output_dir/wandb`` only."""

    ID_FILE = "wandb_run_id"

    def __init__(self, train: TrainConfig, output_dir: Path, *, options: dict):
        self.wandb = wandb = import_wandb()
        id_file = Path(output_dir) / self.ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else wandb.util.generate_id()
        id_file.write_text(run_id + "\n")
        self.run = wandb.init(project=train.wandb, id=run_id, resume="allow",
                              dir=str(output_dir), config=options)

    def log(self, step: int, scalars: dict[str, float], lr: float | None = None, inp=None,
            fake=None, tar=None) -> None:
        data = dict(scalars)
        if lr is not None:
            data["lr"] = lr
        if inp is not None:
            import numpy as np
            row = np.concatenate([inp[0, ..., :3], fake[0, ..., :3], tar[0, ..., :3]], axis=1)
            data["samples"] = self.wandb.Image(
                np.round((np.clip(row, -1, 1) + 1) * 127.5).astype(np.uint8),
                caption="input | output | target")
        self.run.log(data, step=step)

    def finish(self) -> None:
        self.run.finish()


def summaries(step: int, scalars: dict[str, float], lr: float, inp, fake, tar) -> None:
    import tensorflow as tf
    for name, value in scalars.items():
        tf.summary.scalar(name, value, step=step)
    tf.summary.scalar("lr", lr, step=step)
    for name, images in (("input", inp), ("output", fake), ("target", tar)):
        tf.summary.image(name, (images[..., :3] + 1.0) / 2.0, step=step, max_outputs=3)
