"""`dermalink`: the one command-line entry point for every job a user runs.

Each domain registers its own commands here; heavy imports (TensorFlow, tritonclient) happen
inside the command functions so that `dermalink --help` and `dermalink serve` stay light.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="dermalink",
    help="DermaLink teledermatology platform: serve, train, evaluate, export, bench and administer.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


_registered = False


def _register_all() -> None:
    """Add every domain's commands once (tests and `main` may both call this)."""
    global _registered
    if _registered:
        return
    _registered = True
    from backend import commands, triton_cli
    from backend.cluster import cli as cluster_cli
    from backend.lesions import cli as lesions_cli

    triton_cli.register(app)
    commands.register(app)
    cluster_cli.register(app)
    lesions_cli.register(app)
    try:
        from training.cli import register as register_training
    except ImportError:  # the training package is optional in a serving-only install
        return
    register_training(app)


def main() -> None:
    _register_all()
    app()


if __name__ == "__main__":
    main()
