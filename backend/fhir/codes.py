"""Every code DermaLink writes into FHIR resources, in one place (the table in docs/fhir.md mirrors it).

Only SNOMED CT ids we are confident of are emitted. A class or site without a confident single SNOMED CT
concept is sent with DermaLink's own code (system `local_system(...)`) and a text, never with a guessed
id: a receiving system can map those codes with a ConceptMap once a terminologist has chosen the
concepts. HAM10000's classes are groups (e.g. ``bkl`` holds seborrhoeic keratoses, solar lentigines and
lichen-planus-like keratoses), so even a correct SNOMED CT id for one member would overstate what the
model says; `Concept.equivalence` records how the code relates to the class.
"""

from __future__ import annotations

from dataclasses import dataclass

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
MEDIA_TYPE = "http://terminology.hl7.org/CodeSystem/media-type"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
PURPOSE_OF_USE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PROVENANCE_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
AUDIT_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
AUDIT_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
NETWORK_TYPE = "http://terminology.hl7.org/CodeSystem/network-type"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SECURITY_ROLE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"

BALP_PROFILE = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit"


@dataclass(frozen=True)
class Concept:
    code: str
    display: str
    system: str = SNOMED
    # How the SNOMED CT concept relates to DermaLink's class: "equivalent", "narrower" (the concept is
    # one member of the class), or "" for DermaLink's own codes.
    equivalence: str = "equivalent"


# The model's 7 classes (HAM10000's `dx`) and the dermatologist's "other".
LESION_CLASSES: dict[str, tuple[str, Concept | None]] = {
    "akiec": (
        "Actinic keratosis or intraepithelial carcinoma (Bowen's disease)",
        Concept("201101007", "Actinic keratosis", equivalence="narrower"),
    ),
    "bcc": ("Basal cell carcinoma", Concept("254701007", "Basal cell carcinoma of skin")),
    "bkl": ("Benign keratosis-like lesion (seborrhoeic keratosis, solar lentigo, LPLK)", None),
    "df": ("Dermatofibroma", None),
    "mel": ("Melanoma", Concept("372244006", "Malignant melanoma")),
    "nv": ("Melanocytic naevus", None),
    "vasc": ("Vascular lesion (angioma, angiokeratoma, pyogenic granuloma, haemorrhage)", None),
    "other": ("Other diagnosis (see text)", None),
}

# HAM10000's `localization` vocabulary (the case's `site`).
BODY_SITES: dict[str, Concept | None] = {
    "abdomen": Concept("113345001", "Abdominal structure"),
    "acral": None,  # palms and soles: no single SNOMED CT body structure
    "back": Concept("77568009", "Structure of back of trunk"),
    "chest": Concept("51185008", "Thoracic structure"),
    "ear": Concept("117590005", "Ear structure"),
    "face": Concept("89545001", "Face structure"),
    "foot": Concept("56459004", "Foot structure"),
    "genital": None,  # not confident of one concept for both sexes' external genitalia
    "hand": Concept("85562004", "Hand structure"),
    "lower extremity": Concept("61685007", "Lower limb structure"),
    "neck": Concept("45048000", "Neck structure"),
    "scalp": Concept("41695006", "Scalp structure"),
    "trunk": Concept("22943007", "Trunk structure"),
    "upper extremity": Concept("53120007", "Upper limb structure"),
    "unknown": None,
}

CONSULT_NOTE = Concept("11488-4", "Consult note", LOINC)
PATIENT_CONSENT = Concept("59284-0", "Patient Consent", LOINC)
PROBABILITY_UNIT = {"unit": "1", "system": UCUM, "code": "1"}  # a probability is dimensionless
AGE_UNIT = {"unit": "a", "system": UCUM, "code": "a"}

MANAGEMENT = {
    "reassure": "Reassure",
    "monitor": "Monitor and review",
    "excise_or_biopsy": "Excise or biopsy",
    "urgent_referral": "Urgent referral",
}
TRIAGE = {"urgent": "Urgent", "review": "Review by a dermatologist", "routine": "Routine"}
CONSENT_SCOPES = {
    # DermaLink scope: (display, HL7 consent scope, v3 purpose of use)
    "ai_analysis": ("AI analysis of lesion images", "treatment", "TREAT"),
    "specialist_sharing": ("Sharing with a remote dermatologist", "patient-privacy", "TREAT"),
    "research": ("De-identified images for research", "research", "HRESCH"),
}


def local_system(base: str, name: str) -> str:
    """A DermaLink code system URI under the deployment's FHIR base (e.g. ``<base>/CodeSystem/triage``)."""
    return f"{base.rstrip('/')}/CodeSystem/{name}"


def coding(concept: Concept) -> dict[str, str]:
    return {"system": concept.system, "code": concept.code, "display": concept.display}


def lesion_concept(base: str, label: str, text: str | None = None) -> dict:
    """The class as a CodeableConcept: DermaLink's code always, SNOMED CT where confident."""
    display, snomed = LESION_CLASSES.get(label, (label, None))
    codings = [{"system": local_system(base, "lesion-class"), "code": label, "display": display}]
    if snomed is not None:
        codings.append(coding(snomed))
    return {"coding": codings, "text": text or display}


def body_site(base: str, site: str | None) -> dict | None:
    if not site or site == "unknown":
        return None
    codings = [{"system": local_system(base, "body-site"), "code": site, "display": site}]
    snomed = BODY_SITES.get(site)
    if snomed is not None:
        codings.append(coding(snomed))
    return {"coding": codings, "text": site}


def local_concept(base: str, system: str, code: str, display: str) -> dict:
    return {
        "coding": [{"system": local_system(base, system), "code": code, "display": display}],
        "text": display,
    }
