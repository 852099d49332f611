"""`dermalink train | evaluate | export` and `dermalink data validate | split | duplicates`.

Importing this module needs only the base dependencies: TensorFlow, scikit-learn and friends are
imported inside the command functions (the serving install has no TensorFlow).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from training import MODEL_NAME
from training.data import DatasetError
from training.paths import default_images, default_metadata, default_weights, model_repository

console = Console(stderr=True)
DEFAULT_REPOSITORY = model_repository()

DATA_HELP = (
    "HAM10000_metadata.csv, an ISIC ground-truth CSV, a folder holding one, or a class-per-folder tree "
    "(default: $DERMALINK_SHARED/data/ham10000/HAM10000_metadata.csv)"
)
IMAGES_HELP = (
    "image folder(s) searched recursively for <image_id>.jpg (repeatable; default: "
    "$DERMALINK_SHARED/data/ham10000/images_200x150 for the default metadata, else the CSV's folder)"
)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False)
    return typer.Exit(code=2)


def _load(
    data: Path | None,
    images: list[Path] | None,
    exclude: Path | None,
    require_all_classes: bool = True,
    allow_missing: bool = False,
):
    from training.data import load_dataset

    if data is None:
        data = default_metadata()
        images = images or [default_images()]
    return load_dataset(
        data,
        images or None,
        exclude=exclude,
        require_all_classes=require_all_classes,
        allow_missing=allow_missing,
    )


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(
        help="Validate HAM10000-style data, split it by lesion, find duplicates.", no_args_is_help=True
    )
    app.add_typer(data_app, name="data")

    @data_app.command("validate")
    def data_validate(
        data: Annotated[Path | None, typer.Option("--data", help=DATA_HELP)] = None,
        images: Annotated[list[Path] | None, typer.Option("--images", help=IMAGES_HELP)] = None,
        exclude: Annotated[
            Path | None, typer.Option(help="exclusion list: one image id per line (# comments)")
        ] = None,
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
        out: Annotated[Path, typer.Option(help="where to write the split CSV")] = Path("runs/split.csv"),
        data: Annotated[Path | None, typer.Option("--data", help=DATA_HELP)] = None,
        images: Annotated[list[Path] | None, typer.Option("--images", help=IMAGES_HELP)] = None,
        exclude: Annotated[Path | None, typer.Option(help="exclusion list: one image id per line")] = None,
        train: Annotated[float, typer.Option(help="train fraction")] = 0.70,
        val: Annotated[float, typer.Option(help="validation fraction")] = 0.15,
        test: Annotated[float, typer.Option(help="test fraction")] = 0.15,
        seed: Annotated[int, typer.Option(help="random seed")] = 42,
        image_level_split: Annotated[
            bool,
            typer.Option(
                "--image-level-split",
                help="split images, not lesions: the seed study's LEAKY split (only to measure its inflation)",
            ),
        ] = False,
        duplicates: Annotated[
            Path | None,
            typer.Option(
                help="a `data duplicates` CSV: keep every listed pair on the same side of the split"
            ),
        ] = None,
    ) -> None:
        """Write a stratified, lesion-grouped (default) train/val/test split to a CSV."""
        from training.split import make_split, read_duplicate_pairs

        try:
            ds = _load(data, images, exclude)
            pairs = read_duplicate_pairs(duplicates) if duplicates else None
            split = make_split(
                ds, (train, val, test), seed=seed, image_level=image_level_split, keep_together=pairs
            )
        except DatasetError as exc:
            raise _fail(exc) from None
        split.save(out)
        console.print(split.summary())
        if image_level_split:
            console.print("[yellow]warning:[/] image-level split: images of one lesion are on several sides")
        console.print(f"wrote {out}")

    @data_app.command("duplicates")
    def data_duplicates(
        out: Annotated[Path, typer.Option(help="CSV listing every duplicate pair")] = Path(
            "runs/duplicates.csv"
        ),
        data: Annotated[Path | None, typer.Option("--data", help=DATA_HELP)] = None,
        images: Annotated[list[Path] | None, typer.Option("--images", help=IMAGES_HELP)] = None,
        threshold: Annotated[
            int, typer.Option(help="max perceptual-hash Hamming distance (of 64 bits) for near duplicates")
        ] = 4,
        pixel_threshold: Annotated[
            float,
            typer.Option(
                help="max mean difference of standardised 32x32 thumbnails confirming a pHash match"
            ),
        ] = 0.12,
        write_exclusions: Annotated[
            Path | None,
            typer.Option(
                help="also write an exclusion list (the second image of every exact-duplicate pair)"
            ),
        ] = None,
    ) -> None:
        """Find exact (MD5) and near (pHash) duplicate images; flag near duplicates across lesion ids."""
        from tqdm.auto import tqdm

        from training.duplicates import find_duplicates

        try:
            ds = _load(data, images, None)
        except DatasetError as exc:
            raise _fail(exc) from None
        with tqdm(total=len(ds), desc="hashing", unit="img") as bar:
            report = find_duplicates(
                ds.records, threshold, progress=bar.update, pixel_threshold=pixel_threshold
            )
        report.save(out, {r.image_id: r.lesion_id for r in ds.records})
        console.print(report.summary())
        if write_exclusions:
            ids = sorted({o for g in report.exact_groups for o in g[1:]})
            write_exclusions.write_text(
                "# exact duplicates (dermalink data duplicates)\n" + "".join(f"{i}\n" for i in ids)
            )
            console.print(f"wrote {len(ids)} id(s) to {write_exclusions}")
        console.print(f"wrote {out}")

    @app.command("train")
    def train_cmd(
        out: Annotated[Path, typer.Option(help="run directory (checkpoints, logs, model)")] = Path(
            "runs/default"
        ),
        preset: Annotated[
            str,
            typer.Option(
                help="hyperparameter preset: default | paper | default-full | v2-block8 | v2-block8-cpu"
            ),
        ] = "default",
        config: Annotated[
            Path | None,
            typer.Option(
                help="a run's config.json: train with exactly that configuration (instead of --preset)"
            ),
        ] = None,
        data: Annotated[Path | None, typer.Option("--data", help=DATA_HELP)] = None,
        images: Annotated[list[Path] | None, typer.Option("--images", help=IMAGES_HELP)] = None,
        exclude: Annotated[Path | None, typer.Option(help="exclusion list: one image id per line")] = None,
        split_file: Annotated[
            Path | None, typer.Option("--split", help="split CSV (default: make a lesion-grouped one)")
        ] = None,
        image_level_split: Annotated[
            bool, typer.Option("--image-level-split", help="make the study's leaky image-level split instead")
        ] = False,
        duplicates: Annotated[
            Path | None,
            typer.Option(
                help="a `data duplicates` CSV: keep every listed pair on the same side of the split"
            ),
        ] = None,
        weights: Annotated[
            str | None,
            typer.Option(
                help="ImageNet MobileNetV2 .h5 (no top); 'imagenet' downloads; "
                "default: $DERMALINK_SHARED/weights/mobilenet_v2/<file for alpha>"
            ),
        ] = None,
        alpha: Annotated[
            float | None, typer.Option(help="MobileNetV2 width multiplier (preset: 1.0)")
        ] = None,
        image_size: Annotated[int | None, typer.Option(help="input size in pixels (preset: 224)")] = None,
        batch_size: Annotated[int | None, typer.Option(help="batch size")] = None,
        head_epochs: Annotated[
            int | None, typer.Option(help="phase 1 epochs (head on the frozen backbone)")
        ] = None,
        finetune_epochs: Annotated[
            int | None, typer.Option(help="phase 2 epochs (top of the backbone)")
        ] = None,
        finetune_after: Annotated[
            str | None,
            typer.Option(
                help="cut: fine-tune after block_6|block_8|block_9|block_12|block_13|block_14|block_15; "
                "'all' for the whole backbone; 'none' for no phase 2"
            ),
        ] = None,
        strategy: Annotated[
            str | None, typer.Option(help="'cached' (backbone activations computed once; CPU) or 'full'")
        ] = None,
        cached_views: Annotated[
            int | None,
            typer.Option(
                help="cached strategy: 1, 2, 4 or 8 flipped/rotated views per "
                "training image (one drawn at random per image and epoch)"
            ),
        ] = None,
        seed: Annotated[int | None, typer.Option(help="random seed")] = None,
        cache_dir: Annotated[Path, typer.Option(help="decoded-image cache folder")] = Path("runs/cache"),
        tensorboard: Annotated[
            bool, typer.Option(help="also write TensorBoard logs to <out>/tensorboard/<phase>")
        ] = False,
        run_eagerly: Annotated[
            bool, typer.Option(help="eager Keras (faster on tiny data, no graph tracing)")
        ] = False,
    ) -> None:
        """Train MobileNetV2 on HAM10000-style data (two-phase transfer learning by default)."""
        from training.config import TrainConfig, get_preset
        from training.model import check_weights
        from training.split import Split, make_split, read_duplicate_pairs

        try:
            if config is not None:
                if not config.exists():
                    raise DatasetError(f"configuration file {config} does not exist")
                base = TrainConfig.from_json(config)
            else:
                base = get_preset(preset)
            cut = {"all": None, "none": ""}.get(finetune_after, finetune_after)
            cfg = base.replace(
                alpha=alpha,
                image_size=image_size,
                batch_size=batch_size,
                head_epochs=head_epochs,
                finetune_epochs=finetune_epochs,
                strategy=strategy,
                cached_views=cached_views,
                seed=seed,
            )
            if finetune_after is not None:
                cfg = _with_cut(cfg, cut)
            w = weights or str(default_weights(cfg.alpha))
            if w != "imagenet":
                check_weights(Path(w), cfg.alpha)
            ds = _load(data, images, exclude)
            if split_file:
                split = Split.load(split_file)
            else:
                pairs = read_duplicate_pairs(duplicates) if duplicates else None
                split = make_split(ds, seed=cfg.seed, image_level=image_level_split, keep_together=pairs)
        except DatasetError as exc:
            raise _fail(exc) from None
        console.print(ds.report.summary())
        console.print(split.summary())
        console.print(f"config: {cfg}")
        from training.train import train

        try:
            info = train(
                cfg, ds, split, w, out, cache_dir=cache_dir, run_eagerly=run_eagerly, tensorboard=tensorboard
            )
        except DatasetError as exc:
            raise _fail(exc) from None
        console.print(
            f"[green]done[/]: validation balanced accuracy {info['val_bal_acc']:.3f}, "
            f"temperature {info['temperature']:.3f}; model in {out / 'model.keras'}"
        )

    @app.command("evaluate")
    def evaluate_cmd(
        model: Annotated[
            Path | None,
            typer.Option(
                help="a run directory (model.keras), a .keras file, a model.onnx, or a "
                "model-repository model folder (default: the shipped model)"
            ),
        ] = None,
        data: Annotated[Path | None, typer.Option("--data", help=DATA_HELP)] = None,
        images: Annotated[list[Path] | None, typer.Option("--images", help=IMAGES_HELP)] = None,
        split_file: Annotated[
            Path | None, typer.Option("--split", help="split CSV; with --subset evaluates that part only")
        ] = None,
        subset: Annotated[
            str, typer.Option(help="which part of --split to evaluate: train | val | test")
        ] = "test",
        out: Annotated[
            Path | None, typer.Option(help="report folder (Markdown + PNG); default: print only")
        ] = None,
        baseline: Annotated[
            bool,
            typer.Option(
                help="also fit the SVM baseline on the split's train part and "
                "compare with McNemar's test (needs --split)"
            ),
        ] = False,
        compare_run: Annotated[
            list[Path] | None, typer.Option(help="other run dirs (e.g. the leaky split) for the report")
        ] = None,
        bootstrap: Annotated[int, typer.Option(help="bootstrap resamples for the 95% intervals")] = 1000,
        cache_dir: Annotated[Path, typer.Option(help="decoded-image cache folder")] = Path("runs/cache"),
        run_dir: Annotated[
            Path | None, typer.Option("--run", help="training run directory (for the training curves)")
        ] = None,
        allow_missing: Annotated[
            bool,
            typer.Option(
                help="evaluate the listed images that exist (e.g. a folder of originals) instead of failing"
            ),
        ] = False,
        model_card: Annotated[
            bool, typer.Option(help="also write MODEL_CARD.md to --out (uses --run and <out>/export.json)")
        ] = False,
    ) -> None:
        """Evaluate a model on any labelled data: metrics with bootstrap CIs, calibration, plots, report."""
        from training.evaluate import evaluate

        try:
            ds = _load(data, images, None, require_all_classes=False, allow_missing=allow_missing)
            result = evaluate(
                model,
                ds,
                split_file=split_file,
                subset=subset if split_file else None,
                out=out,
                baseline=baseline,
                compare_runs=compare_run or [],
                n_boot=bootstrap,
                cache_dir=cache_dir,
                run_dir=run_dir,
                model_card=model_card,
            )
        except DatasetError as exc:
            raise _fail(exc) from None
        console.print(result["text"])

    @app.command("export")
    def export_cmd(
        run: Annotated[Path, typer.Option(help="run directory with model.keras and triage.json")] = Path(
            "runs/default"
        ),
        repository: Annotated[Path, typer.Option(help="Triton model repository")] = DEFAULT_REPOSITORY,
        name: Annotated[str, typer.Option(help="model name in the repository")] = MODEL_NAME,
        version: Annotated[str, typer.Option(help="model version folder")] = "1",
        data: Annotated[
            Path | None, typer.Option("--data", help=DATA_HELP + " (real images for the parity check)")
        ] = None,
        images: Annotated[list[Path] | None, typer.Option("--images", help=IMAGES_HELP)] = None,
        parity_images: Annotated[
            int, typer.Option(help="real images used for the Keras-vs-ONNX parity check")
        ] = 64,
        tolerance: Annotated[
            float, typer.Option(help="max absolute difference allowed between Keras and ONNX")
        ] = 1e-4,
        tflite: Annotated[
            Path | None, typer.Option(help="also write TFLite float16 and int8 models to this folder")
        ] = None,
        max_batch_size: Annotated[int, typer.Option(help="Triton max_batch_size")] = 32,
        cam: Annotated[
            bool, typer.Option(help="add the class-activation maps output `class_maps` (heatmaps)")
        ] = True,
        report_dir: Annotated[
            Path | None, typer.Option(help="write export.json (parity, sizes, TFLite numbers) to this folder")
        ] = None,
    ) -> None:
        """Export to ONNX + Triton config + labels (+ TFLite); fail unless ONNX matches Keras on real images."""
        from training.export import export

        try:
            ds = _load(data, images, None, require_all_classes=False)
            result = export(
                run,
                repository,
                name,
                version,
                ds,
                n_parity=parity_images,
                tolerance=tolerance,
                tflite_dir=tflite,
                max_batch_size=max_batch_size,
                cam=cam,
            )
        except DatasetError as exc:
            raise _fail(exc) from None
        if report_dir is not None:
            import json

            report_dir.mkdir(parents=True, exist_ok=True)
            info = {k: v for k, v in result.items() if k != "text"}
            (report_dir / "export.json").write_text(json.dumps(info, indent=2) + "\n")
        console.print(result["text"])


def _with_cut(cfg, cut):
    import dataclasses

    return dataclasses.replace(
        cfg, finetune_after=cut, finetune_epochs=0 if cut == "" else cfg.finetune_epochs
    )
