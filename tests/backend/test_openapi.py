"""The OpenAPI document says what the API really accepts (the mobile app's types are generated from it)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_case_metadata_is_documented_as_case_create_json(client: TestClient):
    document = client.get("/openapi.json").json()
    assert all(_resolve(document, ref) for ref in _refs(document))  # no dangling reference
    content = document["paths"]["/api/v1/cases"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert content["encoding"]["metadata"]["contentType"] == "application/json"
    body = _resolve(document, content["schema"]["$ref"])
    assert set(body["required"]) == {"metadata", "images"}
    metadata = _resolve(document, body["properties"]["metadata"]["$ref"])
    assert metadata["title"] == "CaseCreate" and metadata["required"] == ["patient_id"]
    assert {"age", "sex", "site", "history", "concern", "wants_specialist", "notes"} <= set(
        metadata["properties"]
    )
    history = _resolve(document, metadata["properties"]["history"]["$ref"])
    assert history["type"] == "object"


def test_if_match_is_required_wherever_it_is_taken(client: TestClient):
    document = client.get("/openapi.json").json()
    taking = {
        (method, path): parameter
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "If-Match"
    }
    assert set(taking) == {
        ("post", "/api/v1/cases/{case_id}/answer"),
        ("post", "/api/v1/cases/{case_id}/close"),
    }
    assert all(p["required"] and p["schema"]["type"] == "string" for p in taking.values())
    # The route itself answers a missing If-Match with 412 (tests/backend/cases/test_flow.py), not 422:
    # sign-in is needed before that check, so an anonymous request is refused first.
    missing = client.post("/api/v1/cases/00000000-0000-0000-0000-000000000000/close")
    assert missing.status_code == 401
