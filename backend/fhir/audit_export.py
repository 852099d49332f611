"""DermaLink audit events as FHIR R4 `AuditEvent`s in the shape of IHE Basic Audit Log Patterns (BALP).

BALP's basic pattern: ``type`` (a RESTful interaction, or DICOM's User Authentication for sign-in
events) with the interaction as ``subtype``; ``action`` C/R/U/D/E; ``recorded``; ``outcome`` 0/4/8;
an ``agent`` for the user who asked (``requestor``, their network address) and one for DermaLink as the
data custodian; ``source`` naming DermaLink as the application server; an ``entity`` for the data
touched, and for patient data a second ``entity`` with role Patient. DermaLink's own action name stays
as a second ``subtype`` coding so nothing is lost in translation. The hash chain stays in DermaLink
(`dermalink audit verify`); each exported event carries its chain hash as an entity detail.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle

from backend.audit.models import AuditEvent
from backend.fhir import codes
from backend.fhir.case_export import instant, validate

OUTCOMES = {"allowed": "0", "denied": "4", "failed": "8"}
AUTH_TYPES = {  # DICOM (DCM) codes for security events
    "auth.login": ("110122", "Login"),
    "auth.logout": ("110123", "Logout"),
}
# The last dotted part of DermaLink's action -> (FHIR restful interaction, BALP action code)
INTERACTIONS = {
    "create": ("create", "C"),
    "grant": ("create", "C"),
    "publish": ("create", "C"),
    "answer": ("create", "C"),
    "view": ("read", "R"),
    "read": ("read", "R"),
    "image_view": ("read", "R"),
    "break_glass": ("read", "R"),
    "list": ("search-type", "E"),
    "search": ("search-type", "E"),
    "export": ("search-type", "E"),
    "update": ("update", "U"),
    "withdraw": ("update", "U"),
    "claim": ("update", "U"),
    "release": ("update", "U"),
    "transition": ("update", "U"),
    "route": ("update", "U"),
    "erase": ("delete", "D"),
}


def audit_event(row: AuditEvent, base: str) -> dict[str, Any]:
    """One DermaLink audit event as a validated BALP-shaped AuditEvent."""
    base = base.rstrip("/")
    local = {"system": codes.local_system(base, "audit-action"), "code": row.action}
    verb = row.action.split(".", 1)[-1]
    if row.action.startswith("auth."):
        dcm_code, dcm_display = AUTH_TYPES.get(row.action, ("110114", "User Authentication"))
        event_type = {"system": codes.DICOM, "code": "110114", "display": "User Authentication"}
        subtype = [{"system": codes.DICOM, "code": dcm_code, "display": dcm_display}, local]
        action = "E"
    else:
        interaction, action = INTERACTIONS.get(verb, ("operation", "E"))
        event_type = {"system": codes.AUDIT_EVENT_TYPE, "code": "rest", "display": "Restful Operation"}
        subtype = [{"system": codes.RESTFUL_INTERACTION, "code": interaction}, local]

    user_agent: dict[str, Any] = {
        "type": {"coding": [{"system": codes.SECURITY_ROLE, "code": "humanuser", "display": "human user"}]},
        "requestor": True,
    }
    if row.actor_id is not None:
        user_agent["who"] = {"identifier": {"system": f"{base}/user", "value": str(row.actor_id)}}
    else:
        user_agent["who"] = {"display": "anonymous or system"}
    if row.actor_role:
        user_agent["role"] = [{"text": row.actor_role}]
    if row.client_address:
        user_agent["network"] = {"address": row.client_address, "type": "2"}  # 2: IP address
    custodian = {
        "type": {"coding": [{"system": codes.PARTICIPATION_TYPE, "code": "CST", "display": "custodian"}]},
        "who": {"display": "DermaLink"},
        "requestor": False,
    }

    entities: list[dict[str, Any]] = []
    data_entity: dict[str, Any] = {
        "type": {"system": codes.AUDIT_ENTITY_TYPE, "code": "2", "display": "System Object"},
        "role": {"system": codes.OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
        "detail": [
            {"type": "dermalink-chain-hash", "valueString": row.hash},
            {"type": "dermalink-seq", "valueString": str(row.seq)},
        ],
    }
    if row.resource_type:
        what: dict[str, Any] = {"system": f"{base}/{row.resource_type}"}
        if row.resource_id:
            what["value"] = row.resource_id
        data_entity["what"] = {"identifier": what}
    if row.detail and row.detail != "{}":  # kept verbatim: a long detail was cut at 4000 characters
        data_entity["detail"].append({"type": "dermalink-detail", "valueString": row.detail})
    if row.request_id:
        data_entity["detail"].append({"type": "request-id", "valueString": row.request_id})
    entities.append(data_entity)
    if row.patient_id:
        entities.append(
            {
                "what": {"reference": f"Patient/{row.patient_id}"},
                "type": {"system": codes.AUDIT_ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": codes.OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )

    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(row.id),
        "meta": {"profile": [codes.BALP_PROFILE]},
        "type": event_type,
        "subtype": subtype,
        "action": action,
        "recorded": instant(row.occurred_at),
        "outcome": OUTCOMES.get(row.outcome, "8"),
        "agent": [user_agent, custodian],
        "source": {
            "observer": {"display": "DermaLink"},
            "type": [{"system": codes.AUDIT_SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": entities,
    }
    if row.reason:
        if row.outcome == "allowed":
            resource["purposeOfEvent"] = [{"text": row.reason}]
        else:
            resource["outcomeDesc"] = row.reason
    if row.action == "patient.break_glass":
        resource["purposeOfEvent"] = [
            {"coding": [{"system": codes.PURPOSE_OF_USE, "code": "BTG", "display": "break the glass"}]}
            | ({"text": row.reason} if row.reason else {})
        ]
    return validate(resource)


def audit_bundle(rows: list[AuditEvent], base: str, next_url: str | None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"fullUrl": f"urn:uuid:{row.id}", "resource": audit_event(row, base), "search": {"mode": "match"}}
            for row in rows
        ],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return Bundle.model_validate(bundle).model_dump(mode="json", exclude_none=True)
