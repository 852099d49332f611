"""DermaLink backend: the FastAPI service, its domain packages and the `dermalink` CLI."""
