"""Completes the generated OpenAPI document where FastAPI's inference falls short of the real contract.

The mobile app's TypeScript types are generated from this document (`mobile/`, openapi-typescript) and a
test fails when they drift, so the document must say what the API really accepts:

- ``POST /api/v1/cases`` takes a multipart ``metadata`` part that is JSON of `CaseCreate`. The route reads
  it as a string (to answer bad JSON with DermaLink's own ``validation_error`` naming ``metadata``), so
  FastAPI would document a bare string; here the part is documented as `CaseCreate` with the
  ``application/json`` encoding that OpenAPI 3.1 uses for a JSON part of a multipart body.
- ``If-Match`` is required wherever the API takes it (answering and closing a case). The routes declare
  it optional so that a missing header is refused by the service with ``412 precondition_failed`` and a
  sentence, rather than FastAPI's generic 422; the document marks it required.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from backend.cases.schemas import CaseCreate

REF = "#/components/schemas/{model}"


def install(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that completes FastAPI's document once and caches it."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            complete(generate())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any]) -> dict[str, Any]:
    _case_metadata(document)
    _if_match_required(document)
    return document


def _add_schema(document: dict[str, Any], model: type) -> str:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schema = model.model_json_schema(ref_template=REF)  # type: ignore[attr-defined]
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas[model.__name__] = schema
    return REF.format(model=model.__name__)


def _case_metadata(document: dict[str, Any]) -> None:
    content = document["paths"]["/api/v1/cases"]["post"]["requestBody"]["content"]["multipart/form-data"]
    body_name = content["schema"]["$ref"].rsplit("/", 1)[-1]
    properties = document["components"]["schemas"][body_name]["properties"]
    properties["metadata"] = {
        "$ref": _add_schema(document, CaseCreate),
        "description": "The clinical context: one multipart part of JSON (Content-Type application/json)",
    }
    content["encoding"] = {"metadata": {"contentType": "application/json"}}


def _if_match_required(document: dict[str, Any]) -> None:
    for path in document["paths"].values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "header" and parameter["name"].lower() == "if-match":
                    parameter["required"] = True
                    parameter["schema"] = {"type": "string", "maxLength": 40}
                    parameter["description"] = "The case's ETag (its version); without it: 412"


def document_for_clients() -> dict[str, Any]:
    """The document as clients see it, from an app on a throwaway data directory (nothing is started).

    ``python -m backend.openapi > openapi.json`` prints it: the input of the mobile app's type generator
    (``npm run gen:api -- openapi.json`` in ``mobile/``).
    """
    import tempfile

    from backend.config import Settings
    from backend.main import create_app

    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(data_dir=Path(data_dir), auto_migrate=False, create_demo_users=False))
        document = app.openapi()
        app.state.db.dispose()
        return document


if __name__ == "__main__":
    json.dump(document_for_clients(), sys.stdout, indent=1)
    sys.stdout.write("\n")
