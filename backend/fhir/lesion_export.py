"""A tracked lesion as FHIR: the lesion is a `BodyStructure`, the change measured at a follow-up an
`Observation` whose components are the measurements (`backend.lesions.change`), focused on it.

A pair that could not be compared is exported with ``dataAbsentReason`` and the reason in words, never
with numbers. Codes are DermaLink's own (`codes.local_concept`); the body site reuses `codes.body_site`.
"""

from __future__ import annotations

from typing import Any

from backend.fhir import codes
from backend.lesions.models import Lesion, LesionChange
from backend.lesions.schemas import CHANGE_DISCLAIMER

DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
DIMENSIONLESS = codes.PROBABILITY_UNIT
MEASUREMENTS = (  # (field of the measurements, code, display, unit)
    ("area_ratio", "area-ratio", "Lesion area, follow-up / previous", DIMENSIONLESS),
    ("diameter_change", "diameter-change", "Relative change of the largest diameter", DIMENSIONLESS),
    ("irregularity_change", "irregularity-change", "Change of border irregularity", DIMENSIONLESS),
    ("asymmetry_change", "asymmetry-change", "Change of asymmetry", DIMENSIONLESS),
    ("colour_delta_e", "colour-delta-e", "Colour difference (CIEDE2000) of the lesion", DIMENSIONLESS),
    ("colour_count_change", "colour-count-change", "Change in dermoscopic colours present", DIMENSIONLESS),
    ("change_score", "change-score", "Largest change relative to its significant amount", DIMENSIONLESS),
)


def body_structure(base: str, lesion: Lesion, patient: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "BodyStructure",
        "id": str(lesion.id),
        "identifier": [{"system": f"{base}/lesion", "value": str(lesion.id)}],
        "active": True,
        "morphology": codes.local_concept(base, "lesion", "skin-lesion", "Skin lesion followed over time"),
        "patient": {"reference": f"urn:uuid:{patient['id']}"},
    }
    site = codes.body_site(base, lesion.site)
    if site:
        resource["location"] = site
    if lesion.label:
        resource["description"] = lesion.label
    return resource


def change_observation(
    base: str, change: LesionChange, patient: dict[str, Any], structure: dict[str, Any], issued: str
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(change.id),
        "status": "final",
        "category": [{"coding": [{"system": codes.OBSERVATION_CATEGORY, "code": "imaging"}]}],
        "code": codes.local_concept(base, "observation", "lesion-change", "Measured change of a skin lesion"),
        "subject": {"reference": f"urn:uuid:{patient['id']}"},
        "focus": [{"reference": f"urn:uuid:{structure['id']}"}],
        "effectiveDateTime": issued,
        "issued": issued,
        "note": [{"text": f"Compared with the photo of case {change.baseline_case_id}. {CHANGE_DISCLAIMER}"}],
    }
    if change.status != "measured":
        resource["dataAbsentReason"] = {
            "coding": [{"system": DATA_ABSENT_REASON, "code": "not-performed"}],
            "text": change.reason or "the photos could not be compared",
        }
        return resource
    resource["component"] = [
        {
            "code": codes.local_concept(base, "lesion-change", code, display),
            "valueQuantity": {"value": round(float(change.measurements[field]), 6), **unit},
        }
        for field, code, display, unit in MEASUREMENTS
    ]
    significant = change.measurements.get("significant") or []
    resource["interpretation"] = [
        codes.local_concept(
            base,
            "lesion-change-interpretation",
            "significant" if significant else "not-significant",
            f"Significant change: {', '.join(significant)}" if significant else "No significant change",
        )
    ]
    return resource
