"""Measured change between two photos, on a real HAM10000 photo and synthetic follow-ups of it."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from backend.cases.triage import ImageEvidence, TriageRules, decide
from backend.lesions import change


def open_(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_the_same_lesion_photographed_again_is_not_a_change(lesion_jpeg, followups):
    result, pair = change.compare(open_(lesion_jpeg), open_(followups["moved"]))
    assert result.significant == ()
    assert result.change_score < 1.0
    assert 0.85 < result.area_ratio < 1.15
    assert result.registration.inliers >= change.MIN_INLIERS
    assert pair.baseline.shape == pair.followup.shape


def test_a_lesion_that_grew_is_measured_as_grown(lesion_jpeg, followups):
    result, pair = change.compare(open_(lesion_jpeg), open_(followups["grown"]))
    assert result.area_ratio > 1.25, result
    assert result.diameter_change > 0.1
    assert "area_ratio" in result.significant
    assert result.change_score >= 1.0
    overlay = pair.difference_overlay()
    grown = pair.followup_mask & ~pair.baseline_mask
    assert grown.sum() > 0.1 * pair.baseline_mask.sum()
    assert overlay[grown].mean(axis=0)[0] > 0.9  # growth is drawn in orange


def test_photos_that_cannot_be_aligned_give_a_reason_not_a_number(lesion_jpeg, followups):
    with pytest.raises(change.NotComparable) as refused:
        change.compare(open_(lesion_jpeg), open_(followups["flat"]))
    assert "aligned" in refused.value.reason or "detail" in refused.value.reason


def test_change_score_is_the_largest_change_relative_to_its_significant_amount():
    values = {
        "area_ratio": 1.25,
        "diameter_change": 0.075,
        "irregularity_change": -0.5,  # a smoother border is not a warning sign
        "asymmetry_change": 0.0,
        "colour_delta_e": 4.0,
        "colour_count_change": 0,
    }
    score, significant = change.change_score(values)
    assert score == pytest.approx(1.0)
    assert significant == ("area_ratio",)


@pytest.mark.parametrize(
    ("lesion_change", "concern", "expected"),
    [
        (None, "low", ("routine", "no_rule_fired")),
        ({"change_score": 0.4, "significant": []}, "low", ("routine", "no_rule_fired")),
        ({"change_score": 1.6, "significant": ["area_ratio"]}, "low", ("review", "lesion_changed")),
        ({"change_score": 1.6, "significant": ["area_ratio"]}, "high", ("urgent", "clinician_concern_high")),
    ],
)
def test_triage_routes_a_changed_lesion_for_review(lesion_change, concern, expected):
    rules = TriageRules(malignant_threshold=0.9, low_confidence_threshold=0.2)
    evidence = [ImageEvidence({"nv": 0.9, "mel": 0.05, "bkl": 0.05}, quality_ok=True)]
    decision = decide(rules, evidence, concern=concern, wants_specialist=False, lesion_change=lesion_change)
    assert (decision.level.value, decision.rule) == expected
    if lesion_change:
        assert decision.detail["lesion_change_score"] == lesion_change["change_score"]
