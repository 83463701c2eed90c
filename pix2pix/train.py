"""Train mode: options -> (resume from) checkpoint -> loop over epochs -> checkpoints and summaries.

Options are merged in this order, later wins: defaults, a params file (``--params`` or
``params.yaml``/``params.json`` at the root of the input folder, so training parameters can be
versioned data), explicit flags. When ``output_dir`` already holds a run, its ``options.json``
is the base instead of the defaults, and a requested *model* option that differs from it is an
error: a checkpoint can only resume the architecture it was written for.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterator

from pix2pix.config import (DataConfig, ModelConfig, TrainConfig, aliases, build, from_dict,
                            save_options, saved_model_config, saved_train_options, to_dict)
from pix2pix import tracking
from pix2pix.errors import DataError, ModelError, UsageError

GROUPS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
PARAMS_NAMES = ("params.yaml", "params.yml", "params.json")


# --------------------------------------------------------------------------- options

def load_params(path: Path) -> dict[str, dict[str, Any]]:
    """Read a YAML or JSON params file into ``{"model": {...}, "data": {...}, "train": {...}}``.

    The file holds either those groups or flat keys, which go to the group that has the field.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise UsageError(f"{path}: cannot read params file ({e.strerror or e})") from None
    import yaml
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} "
                         f"({first})") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: expected a mapping of options, got {type(raw).__name__}")
    out: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}
    owner = {f.name: g for g, cls in GROUPS.items() for f in fields(cls)}
    alias = {a: n for cls in GROUPS.values() for a, n in aliases(cls).items()}
    owner.update({a: owner[n] for a, n in alias.items()})
    for key, value in raw.items():
        if key in GROUPS:
            if not isinstance(value, dict):
                raise UsageError(f"{path}: group {key!r} must be a mapping")
            value = {alias.get(k, k): v for k, v in value.items()}
            unknown = sorted(set(value) - {f.name for f in fields(GROUPS[key])})
            if unknown:
                raise UsageError(f"{path}: unknown {key} option(s) {', '.join(unknown)}")
            out[key].update(value)
        elif key in owner:
            out[owner[key]][alias.get(key, key)] = value
        else:
            raise UsageError(f"{path}: unknown option {key!r}; groups are model, data, train "
                             "or flat option names as in `pix2pix train --help`")
    return out


def find_params(input_dir: Path) -> Path | None:
    """``params.yaml``, ``params.yml`` or ``params.json`` at the root of the input folder."""
    return next((Path(input_dir) / n for n in PARAMS_NAMES if (Path(input_dir) / n).is_file()),
                None)


def resolve_options(*, input_dir: Path, output_dir: Path, params_file: Path | None,
                    given: dict[str, Any]) -> tuple[ModelConfig, DataConfig, TrainConfig]:
    """Merge defaults (or the saved options.json), params file and explicit flags.

    Args:
        given: flag name -> value for every option of the three configs; None = not given.

    Raises:
        UsageError: unknown or invalid values, or a model option contradicting the saved run.
    """
    params_file = params_file or find_params(input_dir)
    try:
        model, data, train = _resolve(input_dir=input_dir, output_dir=output_dir,
                                      params_file=params_file, given=given)
    except UsageError as e:
        if params_file is None or str(params_file) in str(e):
            raise
        _check_params_alone(params_file)  # the params file's own fault: name it
        raise
    if params_file is not None:
        try:
            check_options(model, train, data)
        except UsageError as e:  # "--max_steps -5: ..." from params.yaml: name the file
            name = str(e).removeprefix("--").split(" ", 1)[0].split(":", 1)[0]
            from_file = {k for grp in load_params(params_file).values() for k in grp}
            if str(e).startswith("--") and name in from_file and given.get(name) is None:
                raise UsageError(f"{params_file}: {str(e).removeprefix('--')}") from None
    return model, data, train


def _check_params_alone(params_file: Path) -> None:
    """Raises UsageError naming ``params_file`` if its values alone are invalid."""
    for group, values in load_params(params_file).items():
        try:
            from_dict(GROUPS[group], values, source=str(params_file))
        except UsageError as e:
            msg = str(e)
            if not msg.startswith(str(params_file)):  # e.g. "--max_steps -5: must not be ..."
                msg = f"{params_file}: {msg.removeprefix('--')}"
            raise UsageError(msg) from None


def _resolve(*, input_dir: Path, output_dir: Path, params_file: Path | None,
             given: dict[str, Any]) -> tuple[ModelConfig, DataConfig, TrainConfig]:
    requested = load_params(params_file) if params_file else {g: {} for g in GROUPS}
    source = {k: str(params_file) for grp in requested.values() for k in grp}
    for group, cls in GROUPS.items():
        for f in fields(cls):
            if given.get(f.name) is not None:
                requested[group][f.name] = given[f.name]
                source[f.name] = f"--{f.name}"

    saved_path = Path(output_dir) / "options.json"
    if not saved_path.is_file():
        model, data, train = (build(cls, requested[g], source="options")
                              for g, cls in GROUPS.items())
        return model, data, train

    from pix2pix.model.trainer import read_options
    saved = read_options(output_dir)
    model = saved_model_config(saved["model"], source=str(saved_path))
    wanted = from_dict(ModelConfig, requested["model"], source="options")
    for key in requested["model"]:
        have, want = getattr(model, key), getattr(wanted, key)
        if have != want:
            raise UsageError(
                f"{source[key]}: {key}={want} contradicts {key}={have} of the run in "
                f"{output_dir} (options.json); drop the option to resume that run, or train "
                "the new architecture into another --output_dir")
    data = build(DataConfig, requested["data"], saved.get("data"), source=str(saved_path))
    saved_train = saved_train_options(saved.get("train"))
    train = build(TrainConfig, requested["train"], saved_train, source=str(saved_path))
    if train.ema_decay > 0 and not float(saved_train["ema_decay"]) > 0:
        raise UsageError(
            f"{source.get('ema_decay', 'ema_decay')}: the run in {output_dir} was trained "
            "without a weight average (ema_decay 0 in options.json), so its checkpoints have "
            "none to resume; drop the option, or give --ema_decay 0")
    if "max_epochs" in requested["train"] and "max_steps" not in requested["train"]:
        # A new epoch limit replaces a saved step limit (which would otherwise win).
        train = dataclasses.replace(train, max_steps=None)
    return model, data, train


def check_options(model: ModelConfig, train: TrainConfig, data: DataConfig | None = None) -> None:
    """Refuse values the networks or the loop cannot use, naming the option."""
    from pix2pix.model.networks import generator_size_error, patch_grid, scale_sizes
    data = data or DataConfig()
    if (why := generator_size_error(model)) is not None:
        raise UsageError(why)
    positive = {"ngf": model.ngf, "ndf": model.ndf, "input_nc": model.input_nc,
                "output_nc": model.output_nc, "batch_size": train.batch_size,
                "save_freq": train.save_freq, "keep_checkpoints": train.keep_checkpoints,
                "lr": train.lr, "clip_grad": train.clip_grad, "norm_epsilon": model.norm_epsilon,
                "num_D": model.num_D, "lr_decay_iters": train.lr_decay_iters,
                "val_freq": train.val_freq, "display_freq": train.display_freq,
                "patches_per_image": data.patches_per_image}
    non_negative = {"max_steps": train.max_steps, "max_epochs": train.max_epochs,
                    "summary_freq": train.summary_freq, "l1_weight": train.l1_weight,
                    "gan_weight": train.gan_weight, "lr_decay_epochs": train.lr_decay_epochs,
                    "lambda_gp": train.lambda_gp, "lambda_feat": train.lambda_feat,
                    "lambda_perceptual": train.lambda_perceptual}
    for name, value in positive.items():
        if value is not None and value <= 0:
            raise UsageError(f"--{name} {value}: must be greater than 0")
    for name, value in non_negative.items():
        if value is not None and value < 0:
            raise UsageError(f"--{name} {value}: must not be negative")
    for name in ("beta1", "ema_decay"):
        if not 0 <= getattr(train, name) < 1:
            raise UsageError(f"--{name} {getattr(train, name)}: must be in [0, 1)")
    if not 0 <= data.val_fraction < 1:
        raise UsageError(f"--val_fraction {data.val_fraction}: must be in [0, 1)")
    if data.val_fraction and data.val_dir:
        raise UsageError("--val_fraction and --val_dir: give one validation set, not both")
    if train.lr_policy == "plateau" and not (data.val_fraction or data.val_dir):
        raise UsageError("--lr_policy plateau watches a validation L1: give --val_fraction "
                         "(e.g. 0.1) or --val_dir")
    coarsest = scale_sizes(model)[-1]
    if patch_grid(coarsest, model.netd_receptive_field) < 1:
        raise UsageError(f"--num_D {model.num_D}: the coarsest discriminator would see "
                         f"{coarsest}x{coarsest} pairs, too small for the "
                         f"{model.netd_receptive_field}-pixel PatchGAN; lower --num_D or "
                         "--netd_receptive_field, or raise --crop_size")
    if train.perceptual_loss == "vgg19":
        if model.output_nc != 3:
            raise UsageError(f"--perceptual_loss vgg19 compares RGB images; output_nc is "
                             f"{model.output_nc}")
        from pix2pix.model.perceptual import weights_path
        weights_path(train.vgg_weights)
    if train.wandb is not None:
        if not train.wandb.strip():
            raise UsageError("--wandb: give a project name")
        tracking.import_wandb()


# --------------------------------------------------------------------------- loop

@dataclass
class TrainResult:
    step: int             # global step reached (= the step of the last checkpoint)
    total_steps: int      # planned steps
    checkpoint: str       # path prefix of the last checkpoint
    resumed_from: int     # step the run started at (0 for a fresh run)
    signal: int | None    # the signal that stopped the run early, if any


class _StopFlag:
    signum: int | None = None


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[_StopFlag]:
    """SIGINT/SIGTERM ask the loop to stop after the current step (it then saves a checkpoint);
    a second signal interrupts at once. Only the main thread can install handlers."""
    flag = _StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.signum is not None:
            raise KeyboardInterrupt
        flag.signum = signum
        print(f"\n{signal.Signals(signum).name}: saving a checkpoint and stopping "
              "(signal again to abort without saving)", file=sys.stderr, flush=True)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class _Progress:
    """tqdm bar with img/s on a terminal; otherwise one plain line every ``every`` steps."""

    def __init__(self, *, start: int, total: int, batch_size: int, every: int, tty: bool):
        self.start, self.total, self.bs, self.every = start, total, batch_size, max(1, every)
        self.t0 = time.perf_counter()
        self.bar = None
        if tty:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True,
                            file=sys.stderr)

    def update(self, step: int, losses: Callable[[], dict[str, float]]) -> None:
        done = step - self.start
        rate = done * self.bs / max(time.perf_counter() - self.t0, 1e-9)
        if self.bar is not None:
            self.bar.update(1)
            if done % 10 == 0 or step == self.total:
                vals = losses()
                self.bar.set_postfix(img_s=f"{rate:.2f}", g_l1=f"{vals['g_l1']:.3f}",
                                     d=f"{vals['d_loss']:.3f}")
        elif step % self.every == 0 or step == self.total:
            vals = losses()
            eta = (self.total - step) * self.bs / rate if rate else float("nan")
            print(f"step {step}/{self.total}  g_gan {vals['g_gan']:.4f}  g_l1 {vals['g_l1']:.4f}  "
                  f"d {vals['d_loss']:.4f}  {rate:.2f} img/s  eta {_hms(eta)}",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def train(*, input_dir: Path, output_dir: Path, model: ModelConfig, data: DataConfig,
          train: TrainConfig, progress: bool | None = None,
          dataset_fn: Callable | None = None) -> TrainResult:
    """Train (or resume training) pix2pix on the pairs in ``input_dir`` into ``output_dir``.

    Writes ``options.json``, ``checkpoints/`` (every ``save_freq`` steps, at the end, and on
    SIGINT/SIGTERM) and TensorBoard summaries in ``logs/``.

    Args:
        progress: a tqdm bar (True) or plain log lines (False); None: bar only on a terminal.
        dataset_fn: ``make_dataset`` replacement for tests (same signature).
    """
    import secrets

    import tensorflow as tf

    from pix2pix.model.losses import learning_rate
    from pix2pix.model.schedule import Plateau
    from pix2pix.model.trainer import (CHECKPOINT_SUBDIR, Trainer, checkpoint_manager,
                                       restore_latest)
    if dataset_fn is None:
        from pix2pix.data.dataset import make_dataset as dataset_fn

    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise DataError(f"{input_dir}: input folder not found")
    if train.max_steps is None and train.max_epochs is None:
        raise UsageError("give --max_steps or --max_epochs")
    check_options(model, train, data)
    val_ds = validation_set(input_dir, data=data, crop_size=model.crop_size,
                            dataset_fn=dataset_fn)
    holdout = "exclude" if data.val_fraction else None
    # An unseeded run draws one seed, so its epochs too go round a patch grid in turn.
    run_seed = train.seed if train.seed is not None else secrets.randbits(30)

    def epoch_dataset(epoch: int):
        kw = {"holdout": holdout} if holdout else {}
        return dataset_fn(input_dir, data=data, crop_size=model.crop_size,
                          batch_size=train.batch_size, training=True, seed=run_seed + epoch,
                          **kw)

    if train.seed is not None:
        tf.keras.utils.set_random_seed(train.seed)
    ds, n_pairs = epoch_dataset(0)
    cardinality = int(ds.cardinality())
    per_pair = data.patches_per_image if data.preprocess == "patches" else 1
    steps_per_epoch = (cardinality if cardinality >= 0
                       else math.ceil(n_pairs * per_pair / train.batch_size))
    if steps_per_epoch <= 0:
        raise DataError(f"{input_dir}: {n_pairs} usable pair(s), fewer than one batch of "
                        f"{train.batch_size}; lower --batch_size or add pairs")
    total = train.max_steps if train.max_steps is not None else train.max_epochs * steps_per_epoch
    decay = decay_steps(train, total=total, steps_per_epoch=steps_per_epoch)
    val_every = train.val_freq or steps_per_epoch

    output_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(model, train)
    manager = checkpoint_manager(trainer.checkpoint, output_dir, keep=train.keep_checkpoints,
                                 step=trainer.step)
    restored = restore_latest(trainer.checkpoint, output_dir / CHECKPOINT_SUBDIR)
    plateau = None
    if train.lr_policy == "plateau":
        # Attached after the restore: a checkpoint that holds a plateau state restores it now
        # (deferred restoration), one written under another policy leaves it fresh.
        plateau = trainer.checkpoint.plateau = Plateau(train.lr)

    def rate(step: int) -> float:
        if plateau is not None:
            return plateau.rate()
        return learning_rate(step, base=train.lr, policy=train.lr_policy, total_steps=total,
                             decay_steps=decay)

    tracker = (tracking.Wandb(train, output_dir, options=to_dict(model, data, train))
               if train.wandb else None)
    save_options(output_dir / "options.json", model=model, data=data, train=train)
    start = step = int(trainer.step.numpy())
    print(f"{'resuming at step ' + str(step) + ' from ' + restored if restored else 'training'}: "
          f"{n_pairs} pairs, {steps_per_epoch} steps/epoch, {total} steps, "
          f"{trainer.dtype} -> {output_dir}",
          file=sys.stderr, flush=True)

    writer = tf.summary.create_file_writer(str(output_dir / "logs"))
    tty = sys.stderr.isatty() if progress is None else progress
    bar = _Progress(start=step, total=total, batch_size=train.batch_size,
                    every=train.summary_freq or 100, tty=tty)
    last_saved = step if restored else -1
    with _stop_on_signals() as stop, writer.as_default():
        # An exception (a second signal included) skips the final save: the last periodic
        # checkpoint stays the one a re-run resumes from.
        epoch, offset = divmod(step, steps_per_epoch)
        while step < total and stop.signum is None:
            batches = ds if epoch == 0 else epoch_dataset(epoch)[0]
            before = step
            for inp, tar, _name in batches.skip(offset):
                lr = rate(step)
                losses, fake = trainer.train_step(inp, tar, tf.constant(lr, tf.float32))
                step += 1
                scalars = lambda: {k: float(v) for k, v in losses.items()}  # noqa: E731
                if val_ds is not None and step % val_every == 0:
                    _validate(step, trainer, val_ds, plateau, tracker)
                if train.summary_freq and (step % train.summary_freq == 0 or step == 1):
                    tracking.summaries(step, scalars(), lr, inp, fake, tar)
                if tracker is not None and (step % train.display_freq == 0 or step == 1):
                    tracker.log(step, scalars(), lr, inp, fake, tar)
                if step % train.save_freq == 0:
                    _save(manager, step, last_saved)
                    last_saved = step
                bar.update(step, scalars)
                if step >= total or stop.signum is not None:
                    break
            if step == before and offset == 0:
                raise DataError(f"{input_dir}: epoch {epoch} yielded no batch (every pair "
                                "skipped as unreadable?)")
            epoch, offset = epoch + 1, 0
        bar.close()
        if step != last_saved:
            _save(manager, step, last_saved)
        writer.flush()
    if tracker is not None:
        tracker.finish()
    return TrainResult(step=step, total_steps=total, checkpoint=manager.latest_checkpoint,
                       resumed_from=start, signal=stop.signum)


def _save(manager, step: int, last_saved: int) -> None:
    """``manager.save`` with a full disk or an unwritable folder as one ModelError line; the
    failed save's temp folder is removed and the previous checkpoint stays the newest."""
    import tensorflow as tf
    try:
        manager.save(checkpoint_number=step)
    except tf.errors.OpError as e:
        import re
        import shutil
        shutil.rmtree(Path(manager.directory) / f"ckpt-{step}_temp", ignore_errors=True)
        # "{{function_node ...}} <file>; No space left on device [Op:SaveV2]" -> the reason
        why = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", str(e).strip().splitlines()[0])
        kept = (f"the checkpoint of step {last_saved} is kept" if last_saved > 0
                else "no checkpoint was written")
        raise ModelError(f"{manager.directory}: cannot save the checkpoint of step {step} "
                         f"({why.rsplit('; ', 1)[-1]}); {kept}; free space or fix the folder "
                         "and run the same command to resume") from None


def validation_set(input_dir: Path, *, data: DataConfig, crop_size: int,
                   dataset_fn: Callable):
    """The validation pairs (``data.val_dir``, or the ``val_fraction`` of ``input_dir`` held
    back), in inference form; None when neither is given.

    Raises:
        UsageError: val_dir missing, or inside input_dir (its pairs would be trained on too).
    """
    if data.val_dir:
        val_dir = Path(data.val_dir)
        if not val_dir.is_dir():
            raise UsageError(f"--val_dir {val_dir}: folder not found")
        if val_dir.resolve().is_relative_to(Path(input_dir).resolve()):
            raise UsageError(f"--val_dir {val_dir} lies inside --input_dir {input_dir}, so its "
                             "pairs would be trained on too; move it out, or use "
                             "--val_fraction")
        return dataset_fn(val_dir, data=data, crop_size=crop_size, batch_size=1,
                          training=False, seed=0)[0]
    if data.val_fraction:
        return dataset_fn(input_dir, data=data, crop_size=crop_size, batch_size=1,
                          training=False, seed=0, holdout="only")[0]
    return None


def _validate(step: int, trainer, val_ds, plateau, tracker) -> None:
    """Validation L1 to TensorBoard (and wandb), and to the plateau schedule."""
    import tensorflow as tf
    val_l1 = trainer.validation_l1(val_ds)
    tf.summary.scalar("val_l1", val_l1, step=step)
    if tracker is not None:
        tracker.log(step, {"val_l1": val_l1})
    if plateau is not None and plateau.observe(val_l1):
        from pix2pix.model.schedule import PATIENCE, THRESHOLD
        print(f"step {step}: validation L1 {val_l1:.4f}, not {THRESHOLD:.0%} below its best "
              f"{float(plateau.best.numpy()):.4f} for {PATIENCE + 1} validations; learning "
              f"rate now {plateau.rate():.3g}", file=sys.stderr, flush=True)


def decay_steps(train: TrainConfig, *, total: int, steps_per_epoch: int) -> int:
    """Steps of linear decay at the end of the run (lr_policy linear), or steps between two
    x0.1 steps (lr_policy step).

    An epoch-bounded run decays over its last ``lr_decay_epochs`` epochs (the paper's code: 100
    constant + 100 decaying), or steps every ``lr_decay_iters`` epochs. A step-bounded run
    (``--max_steps``) takes the same fraction of its steps, ``lr_decay_epochs / max_epochs``
    (half, by default) or ``lr_decay_iters / max_epochs`` (a quarter): counting in epochs there
    would make the decay longer than the run and start it at a fraction of the rate.
    """
    epochs = train.lr_decay_iters if train.lr_policy == "step" else train.lr_decay_epochs
    if train.max_steps is None:
        return epochs * steps_per_epoch
    fraction = min(1.0, epochs / train.max_epochs) if train.max_epochs else 1.0
    return max(1, round(total * fraction))
