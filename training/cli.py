"""`dermalink train | evaluate | export` and `dermalink data validate | split | duplicates`.

Importing this module needs only the base dependencies: TensorFlow, scikit-learn and friends are
imported inside the command functions (the serving install has no TensorFlow).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from training import MODEL_NAME
from training.data import DatasetError
from training.paths import default_images, default_metadata, default_weights, model_repository

console = Console(stderr=True)

DATA_HELP = ("HAM10000_metadata.csv, an ISIC ground-truth CSV, a folder holding one, or a class-per-folder tree "
             "(default: $DERMALINK_SHARED/data/ham10000/HAM10000_metadata.csv)")
IMAGES_HELP = ("image folder(s) searched recursively for <image_id>.jpg (repeatable; default: "
               "$DERMALINK_SHARED/data/ham10000/images_200x150 for the default metadata, else the CSV's folder)")


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code=2)


def _load(data: Path | None, images: list[Path] | None, exclude: Path | None, require_all_classes: bool = True):
    from training.data import load_dataset

    if data is None:
        data = default_metadata()
        images = images or [default_images()]
    return load_dataset(data, images or None, exclude=exclude, require_all_classes=require_all_classes)


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Validate HAM10000-style data, split it by lesion, find duplicates.",
                           no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("validate")
    def data_validate(
        data: Path = typer.Option(None, "--data", help=DATA_HELP),
        images: list[Path] = typer.Option(None, "--images", help=IMAGES_HELP),
        exclude: Path = typer.Option(None, help="exclusion list: one image id per line (# comments)"),
    ) -> None:
        """Check the data before training: missing/unreadable images, unknown labels, duplicate ids, extras."""
        try:
            ds = _load(data, images, exclude)
        except DatasetError as exc:
            raise _fail(exc) from None
        console.print(ds.report.summary())
        console.print("[green]ok[/]")

    @data_app.command("split")
    def data_split(
        out: Path = typer.Option(Path("runs/split.csv"), help="where to write the split CSV"),
        data: Path = typer.Option(None, "--data", help=DATA_HELP),
        images: list[Path] = typer.Option(None, "--images", help=IMAGES_HELP),
        exclude: Path = typer.Option(None, help="exclusion list: one image id per line"),
        train: float = typer.Option(0.70, help="train fraction"),
        val: float = typer.Option(0.15, help="validation fraction"),
        test: float = typer.Option(0.15, help="test fraction"),
        seed: int = typer.Option(42, help="random seed"),
        image_level_split: bool = typer.Option(
            False, "--image-level-split",
            help="split images, not lesions: the seed study's LEAKY split (only to measure its inflation)"),
    ) -> None:
        """Write a stratified, lesion-grouped (default) train/val/test split to a CSV."""
        from training.split import make_split

        try:
            ds = _load(data, images, exclude)
            split = make_split(ds, (train, val, test), seed=seed, image_level=image_level_split)
        except DatasetError as exc:
            raise _fail(exc) from None
        split.save(out)
        console.print(split.summary())
        if image_level_split:
            console.print("[yellow]warning:[/] image-level split: images of one lesion are on several sides")
        console.print(f"wrote {out}")

    @data_app.command("duplicates")
    def data_duplicates(
        out: Path = typer.Option(Path("runs/duplicates.csv"), help="CSV listing every duplicate pair"),
        data: Path = typer.Option(None, "--data", help=DATA_HELP),
        images: list[Path] = typer.Option(None, "--images", help=IMAGES_HELP),
        threshold: int = typer.Option(4, help="max perceptual-hash Hamming distance (of 64 bits) for near duplicates"),
        write_exclusions: Path = typer.Option(
            None, help="also write an exclusion list (the second image of every exact-duplicate pair)"),
    ) -> None:
        """Find exact (MD5) and near (pHash) duplicate images; flag near duplicates across lesion ids."""
        from tqdm.auto import tqdm

        from training.duplicates import find_duplicates

        try:
            ds = _load(data, images, None)
        except DatasetError as exc:
            raise _fail(exc) from None
        with tqdm(total=len(ds), desc="hashing", unit="img") as bar:
            report = find_duplicates(ds.records, threshold, progress=bar.update)
        report.save(out, {r.image_id: r.lesion_id for r in ds.records})
        console.print(report.summary())
        if write_exclusions:
            ids = sorted({o for g in report.exact_groups for o in g[1:]})
            write_exclusions.write_text("# exact duplicates (dermalink data duplicates)\n" + "".join(f"{i}\n" for i in ids))
            console.print(f"wrote {len(ids)} id(s) to {write_exclusions}")
        console.print(f"wrote {out}")

    @app.command("train")
    def train_cmd(
        out: Path = typer.Option(Path("runs/default"), help="run directory (checkpoints, logs, model)"),
        preset: str = typer.Option("default", help="hyperparameter preset: default | paper | default-full"),
        data: Path = typer.Option(None, "--data", help=DATA_HELP),
        images: list[Path] = typer.Option(None, "--images", help=IMAGES_HELP),
        exclude: Path = typer.Option(None, help="exclusion list: one image id per line"),
        split_file: Path = typer.Option(None, "--split", help="split CSV (default: make a lesion-grouped one)"),
        image_level_split: bool = typer.Option(False, "--image-level-split",
                                               help="make the study's leaky image-level split instead"),
        weights: str = typer.Option(None, help="ImageNet MobileNetV2 .h5 (no top); 'imagenet' downloads; "
                                    "default: $DERMALINK_SHARED/weights/mobilenet_v2/<file for alpha>"),
        alpha: float = typer.Option(None, help="MobileNetV2 width multiplier (preset: 1.0)"),
        image_size: int = typer.Option(None, help="input size in pixels (preset: 224)"),
        batch_size: int = typer.Option(None, help="batch size"),
        head_epochs: int = typer.Option(None, help="phase 1 epochs (head on the frozen backbone)"),
        finetune_epochs: int = typer.Option(None, help="phase 2 epochs (top of the backbone)"),
        finetune_after: str = typer.Option(None, help="cut: fine-tune after block_12|block_13|block_14|block_15; "
                                           "'all' for the whole backbone; 'none' for no phase 2"),
        strategy: str = typer.Option(None, help="'cached' (backbone activations computed once; CPU) or 'full'"),
        cached_flips: int = typer.Option(None, help="cached strategy: 1, 2 or 4 flipped copies of the training set"),
        seed: int = typer.Option(None, help="random seed"),
        cache_dir: Path = typer.Option(Path("runs/cache"), help="decoded-image cache folder"),
        run_eagerly: bool = typer.Option(False, help="eager Keras (faster on tiny data, no graph tracing)"),
    ) -> None:
        """Train MobileNetV2 on HAM10000-style data (two-phase transfer learning by default)."""
        from training.config import get_preset
        from training.model import check_weights
        from training.split import Split, make_split

        try:
            base = get_preset(preset)
            cut = {"all": None, "none": ""}.get(finetune_after, finetune_after)
            cfg = base.replace(alpha=alpha, image_size=image_size, batch_size=batch_size, head_epochs=head_epochs,
                               finetune_epochs=finetune_epochs, strategy=strategy, cached_flips=cached_flips,
                               seed=seed)
            if finetune_after is not None:
                cfg = _with_cut(cfg, cut)
            w = weights or str(default_weights(cfg.alpha))
            if w != "imagenet":
                check_weights(Path(w), cfg.alpha)
            ds = _load(data, images, exclude)
            if split_file:
                split = Split.load(split_file)
            else:
                split = make_split(ds, seed=cfg.seed, image_level=image_level_split)
        except DatasetError as exc:
            raise _fail(exc) from None
        console.print(ds.report.summary())
        console.print(split.summary())
        console.print(f"config: {cfg}")
        from training.train import train

        try:
            info = train(cfg, ds, split, w, out, cache_dir=cache_dir, run_eagerly=run_eagerly)
        except DatasetError as exc:
            raise _fail(exc) from None
        console.print(f"[green]done[/]: validation balanced accuracy {info['val_bal_acc']:.3f}, "
                      f"temperature {info['temperature']:.3f}; model in {out / 'model.keras'}")

    @app.command("evaluate")
    def evaluate_cmd(
        model: Path = typer.Option(None, help="a run directory (model.keras), a .keras file, a model.onnx, or a "
                                   "model-repository model folder (default: the shipped model)"),
        data: Path = typer.Option(None, "--data", help=DATA_HELP),
        images: list[Path] = typer.Option(None, "--images", help=IMAGES_HELP),
        split_file: Path = typer.Option(None, "--split", help="split CSV; with --subset evaluates that part only"),
        subset: str = typer.Option("test", help="which part of --split to evaluate: train | val | test"),
        out: Path = typer.Option(None, help="report folder (Markdown + PNG); default: print only"),
        baseline: bool = typer.Option(False, help="also fit the SVM baseline on the split's train part and "
                                      "compare with McNemar's test (needs --split)"),
        compare_run: list[Path] = typer.Option(None, help="other run dirs (e.g. the leaky split) for the report"),
        bootstrap: int = typer.Option(1000, help="bootstrap resamples for the 95% intervals"),
        cache_dir: Path = typer.Option(Path("runs/cache"), help="decoded-image cache folder"),
        run_dir: Path = typer.Option(None, "--run", help="training run directory (for the training curves)"),
    ) -> None:
        """Evaluate a model on any labelled data: metrics with bootstrap CIs, calibration, plots, report."""
        from training.evaluate import evaluate

        try:
            ds = _load(data, images, None, require_all_classes=False)
            result = evaluate(model, ds, split_file=split_file, subset=subset if split_file else None, out=out,
                              baseline=baseline, compare_runs=compare_run or [], n_boot=bootstrap,
                              cache_dir=cache_dir, run_dir=run_dir)
        except DatasetError as exc:
            raise _fail(exc) from None
        console.print(result["text"])

    @app.command("export")
    def export_cmd(
        run: Path = typer.Option(Path("runs/default"), help="run directory with model.keras and triage.json"),
        repository: Path = typer.Option(model_repository(), help="Triton model repository"),
        name: str = typer.Option(MODEL_NAME, help="model name in the repository"),
        version: str = typer.Option("1", help="model version folder"),
        data: Path = typer.Option(None, "--data", help=DATA_HELP + " (real images for the parity check)"),
        images: list[Path] = typer.Option(None, "--images", help=IMAGES_HELP),
        parity_images: int = typer.Option(64, help="real images used for the Keras-vs-ONNX parity check"),
        tolerance: float = typer.Option(1e-4, help="max absolute difference allowed between Keras and ONNX"),
        tflite: Path = typer.Option(None, help="also write TFLite float16 and int8 models to this folder"),
        max_batch_size: int = typer.Option(32, help="Triton max_batch_size"),
    ) -> None:
        """Export to ONNX + Triton config + labels (+ TFLite); fail unless ONNX matches Keras on real images."""
        from training.export import export

        try:
            ds = _load(data, images, None, require_all_classes=False)
            result = export(run, repository, name, version, ds, n_parity=parity_images, tolerance=tolerance,
                            tflite_dir=tflite, max_batch_size=max_batch_size)
        except DatasetError as exc:
            raise _fail(exc) from None
        console.print(result["text"])


def _with_cut(cfg, cut):
    import dataclasses

    return dataclasses.replace(cfg, finetune_after=cut, finetune_epochs=0 if cut == "" else cfg.finetune_epochs)
