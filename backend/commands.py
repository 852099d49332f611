"""The backend's CLI commands (serve, admin, audit, ...), registered on the main `dermalink` app."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str = typer.Option("127.0.0.1", help="Address to bind."),
        port: int = typer.Option(8000, help="Port to bind."),
        workers: int = typer.Option(1, help="Uvicorn worker processes."),
        reload: bool = typer.Option(False, help="Reload on code changes (development)."),
    ) -> None:
        """Run the API (and the web app at /) with uvicorn."""
        import uvicorn

        uvicorn.run("backend.main:create_app", factory=True, host=host, port=port, workers=workers, reload=reload)
