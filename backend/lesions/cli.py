"""`dermalink lesions …`: how well measured change separates real change from re-photographing."""

from __future__ import annotations

import os
from pathlib import Path

import typer

lesions_app = typer.Typer(help="Lesion tracking: evaluate the change measurement.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(lesions_app, name="lesions")


@lesions_app.command("evaluate-change")
def evaluate_change(
    data: Path = typer.Option(
        None, help="A HAM10000 copy (default: $DERMALINK_SHARED/data/ham10000, else ../shared/data/ham10000)."
    ),
    pairs: int = typer.Option(
        100, min=5, help="Same-lesion photo pairs to use (each gives four comparisons)."
    ),
    out: Path = typer.Option(Path("docs"), help="Where lesion_change_eval.md and its plot go."),
    seed: int = typer.Option(0, help="Which pairs and which synthetic camera moves."),
) -> None:
    """Compare real same-lesion photo pairs (no real change) and synthetic changes (the lesion grew or
    darkened) on HAM10000's 200×150 images, and report how well the change score separates them."""
    from rich.progress import Progress

    from backend.lesions import evaluate

    root = data or Path(os.environ.get("DERMALINK_SHARED", "../shared")) / "data" / "ham10000"
    metadata = root / "HAM10000_metadata.csv"
    if not metadata.is_file():
        raise typer.BadParameter(
            f"{metadata} not found: pass --data with a HAM10000 copy", param_hint="--data"
        )
    chosen = evaluate.same_lesion_pairs(metadata, pairs, seed=seed)
    with Progress() as progress:
        task = progress.add_task("comparing photo pairs", total=len(chosen) * 4)
        outcomes = evaluate.evaluate(
            root / "images_200x150", chosen, seed=seed, progress=lambda: progress.advance(task)
        )
    command = f"dermalink lesions evaluate-change --pairs {pairs} --seed {seed}"
    report = evaluate.write_report(outcomes, out, command)
    typer.echo(report.read_text())
    typer.echo(f"written: {report}")
