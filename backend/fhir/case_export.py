"""A case as a FHIR R4 `Bundle` (type ``collection``) for the hospital's record.

The bundle holds: the `Patient` (identity only when the caller may read it; otherwise only the
pseudonymous id), the clinic as `Organization`, the staff involved as `Practitioner`, one `Consent` per
consent scope with a history, one `Media` per image (by reference to the authenticated image URL, never
inline), the classifier as `Device`, one `Observation` per AI result (the 7 probabilities as components,
the triage level, a decision-support note), a `DiagnosticReport` for the dermatologist's answer, and
`Provenance` for who did what. Every resource is validated with the `fhir.resources` R4B models before
it leaves (`validate`), so an invalid resource is a server error here, not a surprise in the EHR.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from sqlmodel import Session, select

from backend.audit.service import record
from backend.cases.models import AnalysisResult, Answer, Case, CaseImage
from backend.cases.schemas import DISCLAIMER
from backend.cases.service import CaseService
from backend.consent import service as consent
from backend.consent.models import ConsentDocument, Scope
from backend.core.actor import Actor
from backend.core.clock import utcnow
from backend.fhir import codes, lesion_export
from backend.lesions.models import Lesion, LesionChange
from backend.patients.models import Patient
from backend.patients.service import PatientService, visible_patients
from backend.users.models import Clinic, User


def instant(moment: datetime) -> str:
    """FHIR instants need an offset; the database may hand back naive UTC times (SQLite)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.isoformat()


def ref(resource: dict[str, Any]) -> dict[str, str]:
    return {"reference": f"urn:uuid:{resource['id']}"}


def validate(resource: dict[str, Any]) -> dict[str, Any]:
    """Validate with the R4B model of its type and return the resource as the model serialises it."""
    model = get_fhir_model_class(resource["resourceType"])
    return model.model_validate(resource).model_dump(mode="json", exclude_none=True)


class CaseExporter:
    def __init__(self, cases: CaseService, patients: PatientService, system_base: str) -> None:
        self.cases = cases
        self.patients = patients
        self.base = system_base.rstrip("/")

    def mrn_system(self, clinic_id: uuid.UUID) -> str:
        """The clinic's MRN identifier system (a deployment can map it to the hospital's own URI)."""
        return f"{self.base}/clinic/{clinic_id}/mrn"

    def export(self, session: Session, actor: Actor, case_id: uuid.UUID, api_base: str) -> dict[str, Any]:
        """The case as a validated Bundle (a dict ready for JSON). Same visibility and audit as
        ``GET /cases/{id}``; reading the patient's identity is audited as ``patient.read``."""
        case = self.cases.get(session, actor, case_id, audit=False)
        record(
            session,
            actor.ctx,
            "case.view",
            resource_type="case",
            resource_id=case.id,
            patient_id=case.patient_id,
            detail={"format": "fhir"},
        )
        resources: list[dict[str, Any]] = []
        organization = self._organization(session, case.clinic_id)
        patient = self._patient(session, actor, case, organization)
        resources += [organization, patient]
        practitioners: dict[uuid.UUID, dict[str, Any]] = {}

        def practitioner(user_id: uuid.UUID) -> dict[str, Any]:
            if user_id not in practitioners:
                user = session.get(User, user_id)
                practitioners[user_id] = {
                    "resourceType": "Practitioner",
                    "id": str(user_id),
                    "identifier": [{"system": f"{self.base}/user", "value": str(user_id)}],
                    "name": [{"text": user.full_name if user else "unknown"}],
                }
            return practitioners[user_id]

        resources += self._consents(session, case, patient)
        images = list(
            session.exec(select(CaseImage).where(CaseImage.case_id == case.id).order_by(CaseImage.position))
        )
        media = [
            self._media(case, image, patient, practitioner(case.created_by), api_base) for image in images
        ]
        resources += media
        media_by_image = {image.id: m for image, m in zip(images, media, strict=True)}
        results = list(session.exec(select(AnalysisResult).where(AnalysisResult.case_id == case.id)))
        devices: dict[tuple[str, str], dict[str, Any]] = {}
        observations = []
        for result in results:
            key = (result.model_name, result.model_version)
            if key not in devices:
                devices[key] = self._device(*key)
            observations.append(
                self._observation(case, result, patient, devices[key], media_by_image.get(result.image_id))
            )
        resources += list(devices.values()) + observations
        lesion = session.get(Lesion, case.lesion_id) if case.lesion_id else None
        if lesion is not None:
            structure = lesion_export.body_structure(self.base, lesion, patient)
            for observation in observations:
                observation["focus"] = [ref(structure)]
            resources.append(structure)
            change = session.exec(
                select(LesionChange).where(LesionChange.followup_case_id == case.id)
            ).first()
            if change is not None:
                issued = instant(change.created_at)
                resources.append(
                    lesion_export.change_observation(self.base, change, patient, structure, issued)
                )
        provenance = [
            self._provenance(media, practitioner(case.created_by), "author", case.created_at),
        ]
        for device in devices.values():
            targets = [o for o in observations if o["device"]["reference"] == ref(device)["reference"]]
            provenance.append(self._provenance(targets, device, "performer", targets[0]["issued"]))
        answer = session.exec(select(Answer).where(Answer.case_id == case.id)).first()
        if answer is not None:
            dermatologist = practitioner(answer.dermatologist_id)
            report = self._report(session, case, answer, patient, dermatologist, observations, media)
            resources.append(report)
            provenance.append(self._provenance([report], dermatologist, "author", answer.created_at))
        resources += list(practitioners.values()) + [p for p in provenance if p["target"]]
        bundle = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "identifier": {"system": f"{self.base}/case", "value": str(case.id)},
            "type": "collection",
            "timestamp": instant(utcnow()),
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": validate(r)} for r in resources],
        }
        return Bundle.model_validate(bundle).model_dump(mode="json", exclude_none=True)

    # -- resources -----------------------------------------------------------------------------
    def _organization(self, session: Session, clinic_id: uuid.UUID) -> dict[str, Any]:
        clinic = session.get(Clinic, clinic_id)
        return {
            "resourceType": "Organization",
            "id": str(clinic_id),
            "identifier": [{"system": f"{self.base}/clinic", "value": str(clinic_id)}],
            "name": clinic.name if clinic else "unknown clinic",
        }

    def _patient(
        self, session: Session, actor: Actor, case: Case, organization: dict[str, Any]
    ) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "Patient",
            "id": str(case.patient_id),
            "identifier": [{"system": f"{self.base}/patient", "value": str(case.patient_id)}],
            "managingOrganization": ref(organization),
        }
        if case.sex in ("male", "female"):
            resource["gender"] = case.sex
        visible = session.exec(visible_patients(actor).where(Patient.id == case.patient_id)).first()
        if visible is None:  # erased, or a caller who may see the case but not who it is
            return resource
        _, identity = self.patients.read(session, actor, case.patient_id)  # audited as patient.read
        resource["identifier"].append(
            {
                "use": "usual",
                "type": {"coding": [{"system": codes.IDENTIFIER_TYPE, "code": "MR"}], "text": "MRN"},
                "system": self.mrn_system(case.clinic_id),
                "value": identity.medical_record_number,
                "assigner": ref(organization),
            }
        )
        resource["name"] = [{"text": identity.full_name}]
        resource["birthDate"] = identity.date_of_birth.isoformat()
        if identity.contact:
            system = "email" if "@" in identity.contact else "phone"
            resource["telecom"] = [{"system": system, "value": identity.contact}]
        return resource

    def _consents(self, session: Session, case: Case, patient: dict[str, Any]) -> list[dict[str, Any]]:
        """One Consent per scope: the latest grant, ``inactive`` with the period's end once withdrawn or
        superseded by a version that requires re-consent."""
        latest_grant: dict[str, Any] = {}
        ended: dict[str, datetime] = {}
        for event in consent.history(session, case.patient_id):
            if event.kind == consent.GRANT:
                latest_grant[event.scope] = event
                ended.pop(event.scope, None)
            elif event.scope in latest_grant:
                ended[event.scope] = event.recorded_at
        state = consent.status(session, case.patient_id)
        out = []
        for scope, event in latest_grant.items():
            display, hl7_scope, purpose = codes.CONSENT_SCOPES[scope]
            document = session.get(ConsentDocument, event.document_id) if event.document_id else None
            active = state[Scope(scope)][0] is not None
            period: dict[str, str] = {"start": instant(event.recorded_at)}
            if scope in ended:
                period["end"] = instant(ended[scope])
            resource: dict[str, Any] = {
                "resourceType": "Consent",
                "id": str(event.id),
                "status": "active" if active else "inactive",
                "scope": {"coding": [{"system": codes.CONSENT_SCOPE, "code": hl7_scope}]},
                "category": [{"coding": [codes.coding(codes.PATIENT_CONSENT)]}],
                "patient": ref(patient),
                "dateTime": instant(event.recorded_at),
                "extension": [
                    {
                        "url": f"{self.base}/StructureDefinition/consent-method",
                        "valueCode": event.method or "verbal",
                    }
                ],
                "provision": {
                    "type": "permit",
                    "period": period,
                    "purpose": [{"system": codes.PURPOSE_OF_USE, "code": purpose}],
                    "code": [codes.local_concept(self.base, "consent-scope", scope, display)],
                },
            }
            if document is not None:
                resource["policy"] = [
                    {"uri": f"{self.base}/consent-documents/{document.id}|{document.version}"}
                ]
                resource["sourceAttachment"] = {
                    "contentType": "text/plain",
                    "language": document.language,
                    "title": f"{document.title} (version {document.version})",
                    "url": f"{self.base}/consent-documents/{document.id}",
                }
            else:
                resource["policyRule"] = {"text": "DermaLink consent"}
            if event.witness_name:
                resource["verification"] = [
                    {"verified": True, "verificationDate": instant(event.recorded_at)}
                ]
            out.append(resource)
        return out

    def _media(
        self,
        case: Case,
        image: CaseImage,
        patient: dict[str, Any],
        operator: dict[str, Any],
        api_base: str,
    ) -> dict[str, Any]:
        url = f"{api_base.rstrip('/')}/api/v1/cases/{case.id}/images/{image.id}"
        resource: dict[str, Any] = {
            "resourceType": "Media",
            "id": str(image.id),
            "identifier": [{"system": f"{self.base}/image-sha256", "value": image.sha256}],
            "status": "completed",
            "type": {"coding": [{"system": codes.MEDIA_TYPE, "code": "image", "display": "Image"}]},
            "modality": {
                "coding": [{"system": codes.DICOM, "code": "XC", "display": "External-camera Photography"}]
            },
            "subject": ref(patient),
            "createdDateTime": instant(image.created_at),
            "operator": ref(operator),
            "width": image.width,
            "height": image.height,
            # The image itself stays behind DermaLink's authorisation: a reference, never inline data.
            "content": {
                "contentType": "image/jpeg",
                "url": url,
                "title": f"lesion image {image.position + 1}",
            },
        }
        site = codes.body_site(self.base, case.site)
        if site:
            resource["bodySite"] = site
        return resource

    def _device(self, model_name: str, model_version: str) -> dict[str, Any]:
        return {
            "resourceType": "Device",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.base}/model/{model_name}/{model_version}")),
            "deviceName": [{"name": model_name, "type": "model-name"}],
            "version": [{"value": model_version}],
            "type": {"text": "Skin lesion image classifier (software, decision support)"},
            "note": [{"text": DISCLAIMER}],
        }

    def _observation(
        self,
        case: Case,
        result: AnalysisResult,
        patient: dict[str, Any],
        device: dict[str, Any],
        media: dict[str, Any] | None,
    ) -> dict[str, Any]:
        components = [
            {
                "code": codes.lesion_concept(self.base, label),
                "valueQuantity": {"value": round(float(probability), 6), **codes.PROBABILITY_UNIT},
            }
            for label, probability in sorted(result.probabilities.items())
        ]
        if case.triage_level:
            components.append(
                {
                    "code": codes.local_concept(self.base, "observation", "triage-level", "Triage level"),
                    "valueCodeableConcept": codes.local_concept(
                        self.base, "triage", case.triage_level, codes.TRIAGE.get(case.triage_level, "")
                    ),
                }
            )
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": str(result.id),
            "status": "final",
            "category": [{"coding": [{"system": codes.OBSERVATION_CATEGORY, "code": "imaging"}]}],
            "code": codes.local_concept(
                self.base, "observation", "ai-lesion-classification", "AI classification of a lesion image"
            ),
            "subject": ref(patient),
            "effectiveDateTime": instant(result.created_at),
            "issued": instant(result.created_at),
            "valueCodeableConcept": codes.lesion_concept(self.base, result.top_label),
            "method": {"text": f"{result.model_name} {result.model_version}"},
            "device": ref(device),
            "component": components,
            "note": [{"text": f"Decision support only. {DISCLAIMER}"}],
        }
        site = codes.body_site(self.base, case.site)
        if site:
            resource["bodySite"] = site
        if media is not None:
            resource["derivedFrom"] = [ref(media)]
        return resource

    def _report(
        self,
        session: Session,
        case: Case,
        answer: Answer,
        patient: dict[str, Any],
        dermatologist: dict[str, Any],
        observations: list[dict[str, Any]],
        media: list[dict[str, Any]],
    ) -> dict[str, Any]:
        note = None
        if answer.note_sealed:
            note = self.cases.vault.decrypt(
                session, case.patient_id, f"answer:{answer.id}", answer.note_sealed
            ).decode()
        diagnosis = codes.lesion_concept(self.base, answer.diagnosis, answer.diagnosis_text)
        management = codes.MANAGEMENT.get(answer.management, answer.management)
        plan = management + (
            f", follow up in {answer.follow_up_weeks} weeks" if answer.follow_up_weeks else ""
        )
        conclusion = f"{diagnosis['text']}. Management: {plan}." + (f" {note}" if note else "")
        extension = [
            {
                "url": f"{self.base}/StructureDefinition/management",
                "valueCoding": {
                    "system": codes.local_system(self.base, "management"),
                    "code": answer.management,
                    "display": management,
                },
            }
        ]
        if answer.follow_up_weeks:
            extension.append(
                {
                    "url": f"{self.base}/StructureDefinition/follow-up",
                    "valueDuration": {
                        "value": answer.follow_up_weeks,
                        "unit": "wk",
                        "system": codes.UCUM,
                        "code": "wk",
                    },
                }
            )
        return {
            "resourceType": "DiagnosticReport",
            "id": str(answer.id),
            "extension": extension,
            "status": "final",
            "code": {"coding": [codes.coding(codes.CONSULT_NOTE)], "text": "Teledermatology consultation"},
            "subject": ref(patient),
            "effectiveDateTime": instant(answer.created_at),
            "issued": instant(answer.created_at),
            "performer": [ref(dermatologist)],
            "resultsInterpreter": [ref(dermatologist)],
            "result": [ref(o) for o in observations],
            "media": [{"link": ref(m)} for m in media],
            "conclusion": conclusion,
            "conclusionCode": [diagnosis],
        }

    def _provenance(
        self, targets: list[dict[str, Any]], agent: dict[str, Any], role: str, at: datetime | str
    ) -> dict[str, Any]:
        return {
            "resourceType": "Provenance",
            "id": str(uuid.uuid4()),
            "target": [ref(t) for t in targets],
            "recorded": at if isinstance(at, str) else instant(at),
            "activity": {"coding": [{"system": codes.DATA_OPERATION, "code": "CREATE"}]},
            "agent": [
                {
                    "type": {"coding": [{"system": codes.PROVENANCE_PARTICIPANT, "code": role}]},
                    "who": ref(agent),
                }
            ],
        }
