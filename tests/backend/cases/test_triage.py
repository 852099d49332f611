"""The triage decision table (`backend.cases.triage.decide`), rule by rule, and once per rule through the
API with real HAM10000 images and the shipped model.

Rules fire in order and the first decides: malignancy_score (the learned referral rule, when the model
ships one) or malignant_probability, clinician_concern_high (urgent);
low_confidence, poor_image_quality, clinician_requests_specialist (review); else no_rule_fired (routine).
"""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from PIL import Image

from backend.cases.models import TriageLevel
from backend.cases.triage import ImageEvidence, ReferralModel, TriageRules, decide
from tests.backend.cases.conftest import KERATOSIS, MELANOMA, NEVUS, submit
from tests.backend.conftest import audit_rows

LABELS = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
# Thresholds that are exact in binary floating point, so the boundary rows test `>=` and `<` exactly.
RULES = TriageRules(malignant_threshold=0.375, low_confidence_threshold=0.5, source="test table")


def image(*, ok: bool = True, **probabilities: float) -> ImageEvidence:
    """Evidence for one image; classes not named share what is left equally (never the top class)."""
    rest = [c for c in LABELS if c not in probabilities]
    left = (1.0 - sum(probabilities.values())) / len(rest)
    return ImageEvidence({**dict.fromkeys(rest, left), **probabilities}, ok)


CONFIDENT_BENIGN = image(nv=0.875)  # malignant 3 × 0.125 / 6 = 0.0625, top 0.875
UNSURE_BENIGN = image(nv=0.375, bkl=0.3125)  # top 0.375 < 0.5, malignant 3 × 0.0625 = 0.1875
MALIGNANT = image(mel=0.5, nv=0.25)  # malignant 0.5 + 2 × 0.05 = 0.6

TABLE = [
    # id, images, concern, wants_specialist, level, rule
    ("nothing fires", [CONFIDENT_BENIGN], "low", False, "routine", "no_rule_fired"),
    ("moderate concern alone", [CONFIDENT_BENIGN], "moderate", False, "routine", "no_rule_fired"),
    ("malignant", [MALIGNANT], "low", False, "urgent", "malignant_probability"),
    (
        "malignant exactly at threshold",
        [image(mel=0.25, bcc=0.125, nv=0.625)],
        "low",
        False,
        "urgent",
        "malignant_probability",
    ),
    (
        "malignant just below threshold",
        [image(mel=0.25, bcc=0.0625, akiec=0.0, nv=0.6875)],
        "low",
        False,
        "routine",
        "no_rule_fired",
    ),
    (
        "malignant summed over mel+bcc+akiec",
        [image(mel=0.125, bcc=0.125, akiec=0.125, nv=0.625)],
        "low",
        False,
        "urgent",
        "malignant_probability",
    ),
    ("concern high", [CONFIDENT_BENIGN], "high", False, "urgent", "clinician_concern_high"),
    ("low confidence", [UNSURE_BENIGN], "low", False, "review", "low_confidence"),
    (
        "top probability exactly at the confidence threshold",
        [image(nv=0.5, bkl=0.4375)],
        "low",
        False,
        "routine",
        "no_rule_fired",
    ),
    ("poor quality", [image(ok=False, nv=0.875)], "low", False, "review", "poor_image_quality"),
    ("wants a specialist", [CONFIDENT_BENIGN], "low", True, "review", "clinician_requests_specialist"),
    # rule order: the earlier rule names the decision
    ("malignant before concern", [MALIGNANT], "high", True, "urgent", "malignant_probability"),
    ("concern before low confidence", [UNSURE_BENIGN], "high", True, "urgent", "clinician_concern_high"),
    (
        "low confidence before poor quality",
        [image(ok=False, nv=0.375, bkl=0.3125)],
        "low",
        True,
        "review",
        "low_confidence",
    ),
    (
        "poor quality before the clinician's request",
        [image(ok=False, nv=0.875)],
        "low",
        True,
        "review",
        "poor_image_quality",
    ),
    (
        "malignant on an unsure, poor image",
        [image(ok=False, mel=0.4375, nv=0.25)],
        "low",
        True,
        "urgent",
        "malignant_probability",
    ),
    # several images: the most malignant, the least confident, any poor one decides
    (
        "one malignant image among benign ones",
        [CONFIDENT_BENIGN, MALIGNANT, CONFIDENT_BENIGN],
        "low",
        False,
        "urgent",
        "malignant_probability",
    ),
    (
        "one unsure image among confident ones",
        [CONFIDENT_BENIGN, UNSURE_BENIGN],
        "low",
        False,
        "review",
        "low_confidence",
    ),
    (
        "one poor image among good ones",
        [CONFIDENT_BENIGN, image(ok=False, nv=0.875)],
        "low",
        False,
        "review",
        "poor_image_quality",
    ),
    ("four confident benign images", [CONFIDENT_BENIGN] * 4, "low", False, "routine", "no_rule_fired"),
]


@pytest.mark.parametrize(
    ("images", "concern", "wants_specialist", "level", "rule"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_decision_table(images, concern, wants_specialist, level, rule):
    decision = decide(RULES, images, concern=concern, wants_specialist=wants_specialist)
    assert (decision.level, decision.rule) == (TriageLevel(level), rule)


def test_detail_records_the_evidence_of_every_image():
    poor = image(ok=False, nv=0.875)
    decision = decide(
        RULES, [CONFIDENT_BENIGN, MALIGNANT, UNSURE_BENIGN, poor], concern="low", wants_specialist=False
    )
    assert decision.detail == {
        "malignant_probability": 0.6,  # the highest of the four
        "malignant_threshold": 0.375,
        "lowest_top_probability": 0.375,  # the lowest of the four
        "low_confidence_threshold": 0.5,
        "poor_quality_images": 1,
        "rules_source": "test table",
    }


def test_malignant_classes_come_from_the_rules():
    only_mel = TriageRules(
        malignant_threshold=0.375, low_confidence_threshold=0.5, malignant_classes=("mel",)
    )
    bcc_heavy = image(bcc=0.5, nv=0.375)
    assert decide(RULES, [bcc_heavy], concern="low", wants_specialist=False).rule == "malignant_probability"
    assert decide(only_mel, [bcc_heavy], concern="low", wants_specialist=False).rule == "no_rule_fired"


def test_overrides_replace_only_what_they_name(tmp_path):
    path = tmp_path / "triage.json"
    path.write_text(
        json.dumps(
            {"malignant_threshold": 0.25, "low_confidence_threshold": 0.75, "malignant_classes": ["mel"]}
        )
    )
    shipped = TriageRules.from_file(path)
    assert (shipped.malignant_threshold, shipped.low_confidence_threshold) == (0.25, 0.75)
    # the model folder and file, never a server path (it is shown to clinicians in the triage detail)
    source = f"{tmp_path.name}/triage.json"
    assert shipped.malignant_classes == ("mel",) and shipped.source == source
    assert shipped.with_overrides(None, None) is shipped
    stricter = shipped.with_overrides(0.5, None)
    assert (stricter.malignant_threshold, stricter.low_confidence_threshold) == (0.5, 0.75)
    assert stricter.malignant_classes == ("mel",) and stricter.source == f"{source} with settings overrides"
    looser = shipped.with_overrides(None, 0.25)
    assert (looser.malignant_threshold, looser.low_confidence_threshold) == (0.25, 0.25)
    evidence = [image(mel=0.375, nv=0.625)]  # malignant 0.375: over 0.25, under 0.5
    assert decide(shipped, evidence, concern="low", wants_specialist=False).rule == "malignant_probability"
    # no longer urgent; top 0.625 < 0.75 makes it the next rule's
    assert decide(stricter, evidence, concern="low", wants_specialist=False).rule == "low_confidence"
    unsure = [image(nv=0.625, bkl=0.25)]  # top 0.625: under 0.75, over 0.25
    assert decide(shipped, unsure, concern="low", wants_specialist=False).rule == "low_confidence"
    assert decide(looser, unsure, concern="low", wants_specialist=False).rule == "no_rule_fired"
    assert TriageRules.from_file(tmp_path / "missing.json") == TriageRules()  # built-in defaults


# -- the learned referral rule -------------------------------------------------------------------------
# score = sigmoid(log p(mel) - log p(nv)) >= 0.5, i.e. refer exactly when p(mel) >= p(nv): easy to reason
# about, and the boundary (p(mel) == p(nv): score exactly 0.5) is exact in floating point.
LEARNED = dataclasses.replace(
    RULES, referral=ReferralModel(coefficients={"mel": 1.0, "nv": -1.0}, intercept=0.0, threshold=0.5)
)


@pytest.mark.parametrize(
    ("evidence", "rule"),
    [
        # the summed rule would refer this confident nevus (malignant 0.25 + 0.125 + 0.03125 >= 0.375)
        ([image(nv=0.5, bcc=0.25, akiec=0.125)], "no_rule_fired"),
        # the summed rule would not refer this (0.2 + 2 x 0.025 < 0.375): more melanoma than nevus mass
        ([image(mel=0.2, nv=0.1, bkl=0.6)], "malignancy_score"),
        ([image(mel=0.25, nv=0.25, bkl=0.5)], "malignancy_score"),  # exactly at the threshold
        ([CONFIDENT_BENIGN, image(mel=0.5, nv=0.25)], "malignancy_score"),  # any image decides
    ],
    ids=["benign mass elsewhere", "melanoma over nevus", "at threshold", "one of two images"],
)
def test_the_learned_referral_rule_replaces_the_summed_one(evidence, rule):
    decision = decide(LEARNED, evidence, concern="low", wants_specialist=False)
    assert decision.rule == rule
    assert decision.level == (TriageLevel.urgent if rule == "malignancy_score" else TriageLevel.routine)
    scores = [LEARNED.referral.score(i.probabilities) for i in evidence]
    assert decision.detail["malignancy_score"] == round(max(scores), 4)
    assert decision.detail["malignancy_score_threshold"] == 0.5
    assert "malignant_probability" in decision.detail  # still recorded for the clinician


def test_referral_model_from_triage_json_and_the_override_that_turns_it_off(tmp_path):
    path = tmp_path / "triage.json"
    block = {"labels": ["mel", "nv"], "coefficients": [1.0, -1.0], "intercept": 0.0, "threshold": 0.5}
    path.write_text(
        json.dumps({"malignant_threshold": 0.375, "low_confidence_threshold": 0.5, "referral_model": block})
    )
    rules = TriageRules.from_file(path)
    assert rules.referral == LEARNED.referral
    assert rules.with_overrides(None, 0.25).referral == LEARNED.referral  # only the named threshold changes
    summed = rules.with_overrides(0.5, None)  # an operator's malignant threshold means the summed rule
    assert summed.referral is None and summed.malignant_threshold == 0.5
    evidence = [image(mel=0.2, nv=0.1, bkl=0.6)]
    assert decide(rules, evidence, concern="low", wants_specialist=False).rule == "malignancy_score"
    assert decide(summed, evidence, concern="low", wants_specialist=False).rule == "no_rule_fired"
    path.write_text(
        json.dumps(
            {
                "malignant_threshold": 0.3,
                "low_confidence_threshold": 0.5,
                "referral_model": {**block, "coefficients": [1.0]},
            }
        )
    )
    with pytest.raises(ValueError, match="one coefficient per label"):
        TriageRules.from_file(path)


def test_referral_score_is_finite_at_the_extremes():
    model = ReferralModel(coefficients={"mel": 50.0, "nv": -50.0}, intercept=0.0, threshold=0.5)
    assert model.score({"mel": 1.0, "nv": 0.0}) == pytest.approx(1.0)
    assert model.score({"mel": 0.0, "nv": 1.0}) == pytest.approx(0.0)


# -- through the API, with the shipped model and real images -------------------------------------------


@pytest.fixture
def shipped_rules(app) -> TriageRules:  # type: ignore[no-untyped-def]
    rules = app.state.services.analyzer.rules
    if "triage.json" not in rules.source:
        pytest.fail(f"these tests need the shipped model's triage.json, got {rules.source}", pytrace=False)
    return rules


def referral_score(rules: TriageRules, result: dict) -> float:
    """The shipped model's learned referral score of one analysed image."""
    assert rules.referral is not None, "the shipped triage.json carries the learned referral rule"
    return rules.referral.score(result["probabilities"])


def small(jpeg: bytes) -> bytes:
    """The same photo at 196×147: below the 150 px quality floor, so it fails the quality check."""
    with Image.open(io.BytesIO(jpeg)) as im:
        out = io.BytesIO()
        im.resize((196, 147)).save(out, format="JPEG", quality=95)
        return out.getvalue()


def _case(client, consenting, images, **metadata):  # type: ignore[no-untyped-def]
    response = submit(client, consenting, images, **metadata)
    assert response.status_code == 201, response.text
    case = response.json()
    assert case["analysis"]["status"] == "done", case["analysis"]
    return case


def _queue(client, dermatologist) -> list[str]:  # type: ignore[no-untyped-def]
    return [i["case_id"] for i in client.get("/api/v1/queue", headers=dermatologist.headers).json()["items"]]


def test_a_melanoma_is_urgent_by_the_model(
    app, client, consenting, dermatologist, melanoma_jpeg, shipped_rules
):
    case = _case(client, consenting, [melanoma_jpeg])
    (result,) = case["analysis"]["results"]
    assert result["top_label"] == "mel"
    score = referral_score(shipped_rules, result)
    assert score >= shipped_rules.referral.threshold
    assert (case["triage"]["level"], case["triage"]["rule"]) == ("urgent", "malignancy_score")
    assert case["triage"]["detail"]["malignancy_score"] == round(score, 4)
    assert case["triage"]["detail"]["malignant_probability"] == round(result["malignant_probability"], 4)
    assert case["state"] == "awaiting_specialist" and _queue(client, dermatologist) == [case["id"]]
    (analysed,) = audit_rows(app, action="case.analyse", resource_id=case["id"])
    assert (analysed.actor_id, analysed.outcome, analysed.patient_id) == (None, "allowed", consenting["id"])
    assert json.loads(analysed.detail)["level"] == "urgent"
    assert json.loads(analysed.detail)["rule"] == "malignancy_score"


def test_a_nevus_is_routine_and_not_queued(app, client, consenting, dermatologist, nevus_jpeg, shipped_rules):
    case = _case(client, consenting, [nevus_jpeg])
    (result,) = case["analysis"]["results"]
    assert result["top_label"] == "nv" and result["top_probability"] >= shipped_rules.low_confidence_threshold
    assert referral_score(shipped_rules, result) < shipped_rules.referral.threshold
    assert (case["triage"]["level"], case["triage"]["rule"]) == ("routine", "no_rule_fired")
    assert case["state"] == "analysed" and case["triage"]["sharing_consent_missing"] is False
    assert _queue(client, dermatologist) == []
    assert audit_rows(app, action="case.route") == []  # nothing to route, nothing denied


def test_high_concern_makes_a_nevus_urgent(client, consenting, dermatologist, nevus_jpeg, shipped_rules):
    case = _case(client, consenting, [nevus_jpeg], concern="high")
    assert (case["triage"]["level"], case["triage"]["rule"]) == ("urgent", "clinician_concern_high")
    assert _queue(client, dermatologist) == [case["id"]]


def test_an_unsure_model_sends_the_case_for_review(
    client, consenting, dermatologist, keratosis_jpeg, shipped_rules
):
    case = _case(client, consenting, [keratosis_jpeg])
    (result,) = case["analysis"]["results"]
    assert result["top_probability"] < shipped_rules.low_confidence_threshold, KERATOSIS
    assert referral_score(shipped_rules, result) < shipped_rules.referral.threshold, KERATOSIS
    assert (case["triage"]["level"], case["triage"]["rule"]) == ("review", "low_confidence")
    assert _queue(client, dermatologist) == [case["id"]]


def test_a_poor_photo_is_reviewed_and_the_clinician_is_told(
    client, consenting, dermatologist, nevus_jpeg, shipped_rules
):
    case = _case(client, consenting, [nevus_jpeg, small(nevus_jpeg)])
    assert [i["quality"]["ok"] for i in case["images"]] == [True, False]
    assert "low resolution" in case["images"][1]["quality"]["reasons"][0]
    assert all(r["top_label"] == "nv" for r in case["analysis"]["results"]), NEVUS
    assert (case["triage"]["level"], case["triage"]["rule"]) == ("review", "poor_image_quality")
    assert case["triage"]["detail"]["poor_quality_images"] == 1
    assert _queue(client, dermatologist) == [case["id"]]


def test_the_clinicians_request_sends_a_nevus_for_review(
    client, consenting, dermatologist, nevus_jpeg, shipped_rules
):
    case = _case(client, consenting, [nevus_jpeg], wants_specialist=True)
    assert (case["triage"]["level"], case["triage"]["rule"]) == ("review", "clinician_requests_specialist")
    assert _queue(client, dermatologist) == [case["id"]]


def test_one_melanoma_among_nevi_makes_the_case_urgent(
    client, consenting, nevus_jpeg, melanoma_jpeg, shipped_rules
):
    case = _case(client, consenting, [nevus_jpeg, melanoma_jpeg, nevus_jpeg])
    assert [r["top_label"] for r in case["analysis"]["results"]] == ["nv", "mel", "nv"], MELANOMA
    assert (case["triage"]["level"], case["triage"]["rule"]) == ("urgent", "malignancy_score")


def test_settings_override_the_shipped_thresholds(
    app, client, consenting, dermatologist, melanoma_jpeg, shipped_rules, monkeypatch
):
    """An override that no image can reach turns the model's urgent call off; the clinician's rules remain."""
    monkeypatch.setattr(app.state.services.analyzer, "rules", shipped_rules.with_overrides(1.01, 0.0))
    case = _case(client, consenting, [melanoma_jpeg])
    assert (case["triage"]["level"], case["triage"]["rule"]) == ("routine", "no_rule_fired")
    assert case["triage"]["detail"]["rules_source"].endswith("with settings overrides")
    assert _queue(client, dermatologist) == []


def test_without_sharing_consent_routing_is_denied_and_audited(
    app, client, patient, document, melanoma_jpeg, make_user
):
    from backend.users.models import Role

    client.post(
        f"/api/v1/patients/{patient['id']}/consents",
        headers=patient["clinic"].clinician.headers,
        json={
            "document_id": document["id"],
            "scopes": ["ai_analysis"],
            "method": "verbal",
            "witness_name": "Nurse Joy",
        },
    ).raise_for_status()
    case = _case(client, patient, [melanoma_jpeg])
    assert case["triage"]["level"] == "urgent" and case["state"] == "analysed"
    assert case["triage"]["sharing_consent_missing"] is True
    assert _queue(client, make_user(Role.dermatologist)) == []
    (denied,) = audit_rows(app, action="case.route")
    assert (denied.outcome, denied.actor_id, denied.patient_id, denied.resource_id) == (
        "denied",
        None,
        patient["id"],
        case["id"],
    )
    assert denied.reason == "missing consent scope 'specialist_sharing'"
