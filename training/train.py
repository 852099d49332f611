"""Training: two phases (head, then the top of the backbone), class weights, checkpoints, resume, logs.

A run directory holds ``config.json``, ``split.csv``, ``history_<phase>.csv`` (CSV logs),
``backup_<phase>/`` (resume state), ``best.weights.h5``, the final calibrated ``model.keras``,
``val_predictions.npz``, ``triage.json`` and ``run.json`` (what was done, with timings).
"""

from __future__ import annotations

import json
import os
import random
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from training import LABELS
from training.cache import cached_images
from training.config import TrainConfig
from training.data import Dataset, DatasetError
from training.split import Split


def set_seeds(seed: int) -> None:
    import keras

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)


def class_weights(labels: np.ndarray, mode: str, n_classes: int = len(LABELS)) -> dict[int, float] | None:
    """``balanced``: n / (k * count_c); ``sqrt``: its square root; normalised to mean 1 over samples."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    if (counts == 0).any():
        missing = [LABELS[i] for i in np.flatnonzero(counts == 0)]
        raise DatasetError(f"no training images for class(es) {missing}: cannot weight them")
    w = len(labels) / (n_classes * counts)
    if mode == "sqrt":
        w = np.sqrt(w)
    w = w / (w[labels].mean())
    return {i: float(v) for i, v in enumerate(w)}


def _schedule(cfg: TrainConfig, lr: float, epochs: int, steps_per_epoch: int, warmup_epochs: int = 0):
    import keras

    if cfg.lr_schedule == "cosine" and epochs > 0:
        warmup = min(warmup_epochs, max(epochs - 1, 0)) * steps_per_epoch
        if warmup:  # linear warm-up from 0, then cosine decay
            return keras.optimizers.schedules.CosineDecay(
                0.0,
                decay_steps=max((epochs * steps_per_epoch) - warmup, 1),
                alpha=0.05,
                warmup_target=lr,
                warmup_steps=warmup,
            )
        return keras.optimizers.schedules.CosineDecay(
            lr, decay_steps=max(epochs * steps_per_epoch, 1), alpha=0.05
        )
    if cfg.lr_schedule == "step":
        boundaries = [
            cfg.lr_step_epochs * steps_per_epoch * k - 1  # the step counter starts at 0
            for k in range(1, max(epochs // cfg.lr_step_epochs, 0) + 1)
        ]
        values = [lr * 0.5**k for k in range(len(boundaries) + 1)]
        if boundaries:
            return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    return lr


def _optimizer(cfg: TrainConfig, schedule):
    import keras

    if cfg.weight_decay:
        return keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)
    return keras.optimizers.Adam(schedule)


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, n_classes: int = len(LABELS)) -> float:
    recalls = [float((pred[y == c] == c).mean()) for c in range(n_classes) if (y == c).any()]
    return float(np.mean(recalls)) if recalls else 0.0


def _callbacks(
    model_to_save,
    run_dir: Path,
    phase: str,
    val_x,
    val_y,
    patience: int,
    batch_size: int,
    tensorboard: bool = False,
):
    import keras

    best_path = run_dir / "best.weights.h5"

    class ValMetrics(keras.callbacks.Callback):
        """Balanced accuracy on validation (the selection metric) and saving the best full model."""

        def __init__(self) -> None:
            super().__init__()
            # the best so far over all phases (and over an interrupted run of this phase, on resume)
            self.best = max(
                [json.loads(p.read_text())["val_bal_acc"] for p in run_dir.glob("best_*.json")], default=-1.0
            )
            self.state = run_dir / f"best_{phase}.json"

        def on_epoch_end(self, epoch, logs=None):
            probs = self.model.predict(val_x, batch_size=batch_size * 2, verbose=0)
            bal = balanced_accuracy(val_y, probs.argmax(1))
            logs["val_bal_acc"] = bal
            if bal > self.best:
                self.best = bal
                model_to_save.save_weights(best_path)
                self.state.write_text(json.dumps({"epoch": epoch + 1, "val_bal_acc": bal}))

    cbs = [
        ValMetrics(),
        keras.callbacks.CSVLogger(str(run_dir / f"history_{phase}.csv"), append=True),
        keras.callbacks.BackupAndRestore(str(run_dir / f"backup_{phase}")),
    ]
    if patience:
        cbs.append(keras.callbacks.EarlyStopping(monitor="val_bal_acc", mode="max", patience=patience))
    if tensorboard:
        cbs.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard" / phase)))
    return cbs


PHASE_NUMBER = {"head": 1, "finetune": 2}


def _resume_done(model, run_dir: Path, phase: str) -> bool:
    """Resuming a run directory: a finished phase is skipped (its best weights are loaded instead);
    an interrupted one continues from its ``backup_<phase>/`` state (keras BackupAndRestore)."""
    if (run_dir / f"{phase}.done").exists() and (run_dir / "best.weights.h5").exists():
        model.load_weights(run_dir / "best.weights.h5")
        return True
    return False


def _augmenter(cfg: TrainConfig):
    import keras

    layers = []
    if cfg.flip:
        layers.append(keras.layers.RandomFlip("horizontal_and_vertical", seed=cfg.seed))
    if cfg.rotation:
        layers.append(keras.layers.RandomRotation(cfg.rotation, fill_mode="reflect", seed=cfg.seed))
    if cfg.zoom:
        layers.append(keras.layers.RandomZoom(cfg.zoom, fill_mode="reflect", seed=cfg.seed))
    if cfg.brightness:
        layers.append(keras.layers.RandomBrightness(cfg.brightness, value_range=(0, 255), seed=cfg.seed))
    if cfg.contrast:
        layers.append(keras.layers.RandomContrast(cfg.contrast, seed=cfg.seed))
    return layers


def image_dataset(x: np.ndarray, y: np.ndarray, cfg: TrainConfig, training: bool):
    """tf.data pipeline on uint8 images; augmentation here, never inside the exported model."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((np.asarray(x), y.astype(np.int32)))
    if training:
        ds = ds.shuffle(len(x), seed=cfg.seed, reshuffle_each_iteration=True)
    ds = ds.batch(cfg.batch_size)
    if training:
        aug = _augmenter(cfg)

        def apply(images, labels):
            z = tf.cast(images, tf.float32)
            for layer in aug:
                z = layer(z, training=True)
            return tf.cast(tf.clip_by_value(tf.round(z), 0, 255), tf.uint8), labels

        if aug:
            ds = ds.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def dihedral_view(x: np.ndarray, k: int) -> np.ndarray:
    """View ``k`` (0-7) of a ``[N, H, W, C]`` batch: 0 identity, 1 h-flip, 2 v-flip, 3 180 degrees,
    4/6 rotations by 90/270 degrees, 5/7 the same flipped horizontally (square images for k >= 4)."""
    if k == 0:
        return x
    if k == 1:
        return x[:, :, ::-1]
    if k == 2:
        return x[:, ::-1]
    if k == 3:
        return x[:, ::-1, ::-1]
    rot = np.rot90(x, 1 if k in (4, 5) else 3, axes=(1, 2))
    return rot[:, :, ::-1] if k in (5, 7) else rot


class _ViewSampler:
    """A keras PyDataset over cached activations: each epoch, a random view per image, shuffled."""

    def __new__(cls, views: list[np.ndarray], y: np.ndarray, weights: dict | None, batch: int, seed: int):
        import keras

        class Sampler(keras.utils.PyDataset):
            def __init__(self) -> None:
                super().__init__()
                self.rng = np.random.default_rng(seed)
                self.sw = (
                    np.array([weights[int(c)] for c in y], np.float32)
                    if weights
                    else np.ones(len(y), np.float32)
                )
                self.on_epoch_end()

            def __len__(self) -> int:
                return int(np.ceil(len(y) / batch))

            def on_epoch_end(self) -> None:
                self.order = self.rng.permutation(len(y))
                self.view = self.rng.integers(0, len(views), len(y))

            def __getitem__(self, i):
                idx = np.sort(self.order[i * batch : (i + 1) * batch])
                x = np.empty((len(idx), *views[0].shape[1:]), np.float32)
                for v in np.unique(self.view[idx]):
                    m = self.view[idx] == v
                    x[m] = views[v][idx[m]]
                return x, y[idx], self.sw[idx]

        return Sampler()


class _LazyView:
    """A dihedral view of an image array, materialised batch by batch."""

    def __init__(self, x: np.ndarray, k: int) -> None:
        self.x, self.k = x, k

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, s: slice) -> np.ndarray:
        return dihedral_view(np.asarray(self.x[s]), self.k)


def _activations(bottom, images, path: Path, batch: int, desc: str) -> np.ndarray:
    """Backbone activations at the cut, float16, cached on disk (resumable per file)."""
    if path.exists():
        arr = np.load(path, mmap_mode="r")
        if len(arr) == len(images):
            return arr
    from tqdm.auto import tqdm

    shape = tuple(int(d) for d in bottom.output.shape[1:])
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(images), *shape))
    for s in tqdm(range(0, len(images), batch), desc=desc, unit="batch", leave=False):
        out[s : s + batch] = bottom(np.ascontiguousarray(images[s : s + batch]), training=False).numpy()
    out.flush()
    del out
    tmp.rename(path)
    return np.load(path, mmap_mode="r")


def train(
    cfg: TrainConfig,
    dataset: Dataset,
    split: Split,
    weights: Path | str | None,
    run_dir: Path,
    *,
    cache_dir: Path | None = None,
    run_eagerly: bool = False,
    verbose: int = 1,
    tensorboard: bool = False,
) -> dict:
    """Train a model per ``cfg`` on ``split`` (train/val) and write the run directory. Returns run.json."""
    import keras

    from training.calibration import fit_temperature
    from training.model import backbone_split, bake_temperature, build_model, head_model, unfreeze
    from training.triage import choose_thresholds

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / "split.csv").exists():  # resuming: the run must keep its split and configuration
        if Split.load(run_dir / "split.csv").assignment != split.assignment:
            raise DatasetError(
                f"{run_dir} was trained on another split: resume with --split {run_dir}/split.csv"
            )
        if (run_dir / "config.json").exists() and TrainConfig.from_json(run_dir / "config.json") != cfg:
            raise DatasetError(f"{run_dir} was trained with another configuration (see its config.json)")
    (run_dir / "config.json").write_text(cfg.to_json())
    split.save(run_dir / "split.csv")
    set_seeds(cfg.seed)
    started = time.time()
    timings: dict[str, float] = {}

    parts = {s: dataset.subset(split.ids(s)) for s in ("train", "val")}
    for s, d in parts.items():
        if not len(d):
            raise DatasetError(f"the {s} split is empty")
    y = {s: np.array(d.label_indices) for s, d in parts.items()}
    cw = class_weights(y["train"], cfg.class_weights)
    t = time.time()
    x = {s: cached_images(d.records, cfg.image_size, cache_dir) for s, d in parts.items()}
    timings["decode_s"] = time.time() - t

    model = build_model(cfg, weights)
    steps = int(np.ceil(len(y["train"]) / cfg.batch_size))
    loss = keras.losses.SparseCategoricalCrossentropy()
    if cfg.label_smoothing:
        loss = _smoothed_loss(cfg.label_smoothing)

    def phase(name: str, epochs: int, trainer, val_x, batch_size: int, setup) -> None:  # type: ignore[no-untyped-def]
        """One training phase: skipped when a resumed run already finished it (its best weights are
        loaded); otherwise ``setup()`` (unfreezing, data) returns ``(lr schedule, fit args, fit kwargs)``,
        then compile, fit with the checkpoint/early-stopping callbacks, keep the best weights, mark done."""
        start = time.time()
        if epochs and not _resume_done(model, run_dir, name):
            schedule, args, kwargs = setup()
            trainer.compile(
                _optimizer(cfg, schedule), loss=loss, metrics=["accuracy"], run_eagerly=run_eagerly
            )
            callbacks = _callbacks(
                model,
                run_dir,
                name,
                val_x,
                y["val"],
                cfg.early_stopping_patience,
                batch_size,
                tensorboard=tensorboard,
            )
            trainer.fit(*args, epochs=epochs, verbose=verbose, callbacks=callbacks, **kwargs)
            model.load_weights(run_dir / "best.weights.h5")
            (run_dir / f"{name}.done").write_text(f"phase {PHASE_NUMBER[name]} finished\n")
        timings[f"{name}_s"] = time.time() - start

    if cfg.strategy == "cached":
        after = cfg.finetune_after or "block_13"
        bottom, top = backbone_split(model, after)
        t = time.time()
        cache = run_dir / "activations"
        cache.mkdir(exist_ok=True)
        train_acts = [
            _activations(
                bottom,
                _LazyView(x["train"], k),
                cache / f"train_view{k}.npy",
                64,
                f"backbone activations train view {k}",
            )
            for k in range(cfg.cached_views)
        ]
        val_acts = _activations(bottom, x["val"], cache / "val_view0.npy", 64, "backbone activations val")
        timings["activations_s"] = time.time() - t
        a_val = np.asarray(val_acts)

        # phase 1: the head on pooled features of the frozen top (computed once)
        t = time.time()
        feat_in = keras.Input(tuple(a_val.shape[1:]))
        pool_top = keras.Model(
            feat_in, model.get_layer("pool")(top.get_layer("backbone_top")(feat_in, training=False))
        )
        f_train = np.concatenate([pool_top.predict(a, batch_size=256, verbose=0) for a in train_acts])
        y_train = np.concatenate([y["train"]] * len(train_acts))
        f_val = pool_top.predict(a_val, batch_size=256, verbose=0)
        features_s = time.time() - t
        phase(
            "head",
            cfg.head_epochs,
            head_model(model, f_train.shape[1]),
            f_val,
            cfg.head_batch_size,
            lambda: (
                _schedule(cfg, cfg.head_lr, cfg.head_epochs, -(-len(f_train) // cfg.head_batch_size)),
                (f_train, y_train),
                {
                    "batch_size": cfg.head_batch_size,
                    "class_weight": cw,
                    "validation_data": (f_val, y["val"]),
                    "shuffle": True,
                },
            ),
        )
        timings["head_s"] += features_s

        # phase 2: fine-tune the blocks after the cut on the cached activations
        def finetune_on_views():  # type: ignore[no-untyped-def]
            unfreeze(model, cfg.finetune_after)
            sampler = _ViewSampler(
                [np.asarray(a) for a in train_acts], y["train"], cw, cfg.batch_size, cfg.seed
            )
            schedule = _schedule(cfg, cfg.finetune_lr, cfg.finetune_epochs, len(sampler), cfg.warmup_epochs)
            return schedule, (sampler,), {"validation_data": (a_val, y["val"])}

        phase(
            "finetune",
            cfg.finetune_epochs if cfg.finetune_after else 0,
            top,
            a_val,
            cfg.batch_size,
            finetune_on_views,
        )
    else:
        train_ds = image_dataset(x["train"], y["train"], cfg, training=True)
        val_x = np.asarray(x["val"])
        val_ds = image_dataset(val_x, y["val"], cfg, training=False)
        fit_kwargs = {"class_weight": cw, "validation_data": val_ds}
        phase(
            "head",
            cfg.head_epochs,
            model,
            val_x,
            cfg.batch_size,
            lambda: (_schedule(cfg, cfg.head_lr, cfg.head_epochs, steps), (train_ds,), fit_kwargs),
        )

        def finetune_on_images():  # type: ignore[no-untyped-def]
            unfreeze(model, cfg.finetune_after)
            return (
                _schedule(cfg, cfg.finetune_lr, cfg.finetune_epochs, steps, cfg.warmup_epochs),
                (train_ds,),
                fit_kwargs,
            )

        phase(
            "finetune",
            cfg.finetune_epochs if cfg.finetune_after != "" else 0,
            model,
            val_x,
            cfg.batch_size,
            finetune_on_images,
        )

    # calibration (temperature fitted on validation) baked into the model, then triage thresholds
    for layer in model.layers:
        layer.trainable = False
    val_probs_raw = model.predict(np.asarray(x["val"]), batch_size=64, verbose=0)
    temperature = fit_temperature(val_probs_raw, y["val"])
    bake_temperature(model, temperature)
    val_probs = model.predict(np.asarray(x["val"]), batch_size=64, verbose=0)
    model.save(run_dir / "model.keras")
    np.savez(
        run_dir / "val_predictions.npz",
        image_ids=np.array(parts["val"].image_ids),
        lesions=np.array([r.lesion_id for r in parts["val"].records]),
        y=y["val"],
        probs=val_probs,
        probs_uncalibrated=val_probs_raw,
    )
    lesions = np.array([r.lesion_id for r in parts["val"].records])
    triage = choose_thresholds(val_probs, y["val"], groups=lesions)
    (run_dir / "triage.json").write_text(json.dumps(triage, indent=2))
    timings["total_s"] = time.time() - started
    info = {
        "command": " ".join(shlex.quote(a) for a in ["dermalink", *sys.argv[1:]]) if sys.argv else "",
        "config": json.loads(cfg.to_json()),
        "split_kind": split.kind,
        "n": {s: len(v) for s, v in y.items()},
        "class_weights": cw,
        "temperature": temperature,
        "val_bal_acc": balanced_accuracy(y["val"], val_probs.argmax(1)),
        "weights": str(weights),
        "timings": timings,
        "data_source": dataset.report.source,
    }
    (run_dir / "run.json").write_text(json.dumps(info, indent=2))
    return info


def _smoothed_loss(smoothing: float):
    import keras

    # reduction=None: one loss per sample, so that class weights (sample weights) apply per sample
    cce = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing, reduction=None)

    def loss(y_true, y_pred):
        from keras import ops

        onehot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), len(LABELS))
        return cce(onehot, y_pred)

    return loss
