"""What the clinician sees of the triage names the rules that applied, not the server's file system."""

from __future__ import annotations

from tests.backend.cases.conftest import submit


def test_triage_detail_names_the_models_rules_without_server_paths(client, consenting, lesion_jpeg, settings):
    response = submit(client, consenting, [lesion_jpeg])
    assert response.status_code == 201, response.text
    case = client.get(
        f"/api/v1/cases/{response.json()['id']}", headers=consenting["clinic"].clinician.headers
    ).json()
    detail = case["triage"]["detail"]
    assert detail["rules_source"] == f"{settings.model_name}/triage.json"
    text = response.text + str(case)
    for server_path in (str(settings.model_repository), str(settings.data_dir), "/work/", "/home/", "/tmp/"):
        assert server_path not in text, server_path
