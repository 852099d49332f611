"""The app's generated API types (mobile/src/api/schema.d.ts) match the backend's current OpenAPI."""

from __future__ import annotations

import json


def test_generated_types_match_the_backend_openapi(run_in_mobile, tmp_path):
    from backend.openapi import document_for_clients

    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(document_for_clients()))
    run_in_mobile("node", "scripts/gen-api.mjs", str(schema), "--check")
