"""Triage rules: which analysed cases are urgent, which need a specialist's review, which are routine.

Rules are checked in this order and the first that fires decides (its name is stored with the case):

urgent
  ``malignancy_score``        the model's learned referral score >= its threshold on any image (when the
                              model ships a ``referral_model``; see below)
  ``malignant_probability``   otherwise: P(mel) + P(bcc) + P(akiec) >= malignant_threshold on any image
  ``clinician_concern_high``  the clinician's level of concern is high
review
  ``lesion_changed``          a follow-up photo shows the lesion changed by a significant amount
                              (`backend.lesions.change.SIGNIFICANT`: growth, colour, border, asymmetry)
  ``low_confidence``          the top class's probability < low_confidence_threshold on any image
  ``poor_image_quality``      an image failed the quality check (blur, exposure, resolution)
  ``clinician_requests_specialist``
routine
  ``no_rule_fired``

The thresholds ship with the model (``model_repository/<model>/triage.json``, chosen on validation data
by the training pipeline) and can be overridden by settings.

The referral model is a logistic regression on the 7 log-probabilities, fitted on validation with its
threshold chosen for the target malignant sensitivity on lesion-grouped out-of-fold scores
(`training.decision.fit_referral`). It uses the whole distribution instead of the summed malignant
probability: a lesion the model confidently calls a nevus is not referred for a little melanoma mass,
which cut the referrals of benign lesions at the same sensitivity (docs/model/V2_GROUNDWORK.md,
section 3). A settings override of the malignant threshold switches back to the summed rule.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from backend.cases.models import TriageLevel

MALIGNANT = ("mel", "bcc", "akiec")


@dataclass(frozen=True)
class ReferralModel:
    """P(malignant) = sigmoid(intercept + sum_c coefficient_c * log p_c); refer at ``threshold`` or above."""

    coefficients: dict[str, float]
    intercept: float
    threshold: float

    @classmethod
    def from_json(cls, data: dict) -> ReferralModel:
        labels, coefficients = data["labels"], data["coefficients"]
        if len(labels) != len(coefficients):
            raise ValueError("referral_model: one coefficient per label")
        return cls(
            coefficients={str(k): float(c) for k, c in zip(labels, coefficients, strict=True)},
            intercept=float(data["intercept"]),
            threshold=float(data["threshold"]),
        )

    def score(self, probabilities: dict[str, float]) -> float:
        z = self.intercept + sum(
            c * math.log(min(max(probabilities.get(label, 0.0), 1e-12), 1.0))
            for label, c in self.coefficients.items()
        )
        # numerically stable logistic function
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@dataclass(frozen=True)
class TriageRules:
    malignant_threshold: float = 0.3
    low_confidence_threshold: float = 0.5
    malignant_classes: tuple[str, ...] = MALIGNANT
    source: str = "built-in defaults"
    referral: ReferralModel | None = None  # the learned referral rule; None: the summed-probability rule

    @classmethod
    def from_file(cls, path: Path) -> TriageRules:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        return cls(
            malignant_threshold=float(data["malignant_threshold"]),
            low_confidence_threshold=float(data["low_confidence_threshold"]),
            malignant_classes=tuple(data.get("malignant_classes", MALIGNANT)),
            referral=ReferralModel.from_json(data["referral_model"]) if "referral_model" in data else None,
            # Named relative to the model repository: the clinician sees which model's rules applied,
            # never where the server keeps its files.
            source=f"{path.parent.name}/{path.name}",
        )

    def with_overrides(self, malignant: float | None, low_confidence: float | None) -> TriageRules:
        if malignant is None and low_confidence is None:
            return self
        return TriageRules(
            malignant_threshold=self.malignant_threshold if malignant is None else malignant,
            low_confidence_threshold=self.low_confidence_threshold
            if low_confidence is None
            else low_confidence,
            malignant_classes=self.malignant_classes,
            source=f"{self.source} with settings overrides",
            # an operator who sets the malignant threshold chooses the summed rule it applies to
            referral=self.referral if malignant is None else None,
        )


@dataclass(frozen=True)
class ImageEvidence:
    probabilities: dict[str, float]
    quality_ok: bool

    def malignant(self, classes: tuple[str, ...]) -> float:
        return sum(self.probabilities.get(c, 0.0) for c in classes)

    @property
    def top_probability(self) -> float:
        return max(self.probabilities.values())


@dataclass(frozen=True)
class TriageDecision:
    level: TriageLevel
    rule: str
    detail: dict = field(default_factory=dict)


def decide(
    rules: TriageRules,
    images: list[ImageEvidence],
    *,
    concern: str,
    wants_specialist: bool,
    lesion_change: dict | None = None,
) -> TriageDecision:
    """The first rule that fires decides. ``lesion_change`` is a follow-up's measured change against the
    lesion's previous photo (``change_score`` and the ``significant`` measures), None otherwise."""
    malignant = max(i.malignant(rules.malignant_classes) for i in images)
    confidence = min(i.top_probability for i in images)
    detail = {
        "malignant_probability": round(malignant, 4),
        "malignant_threshold": rules.malignant_threshold,
        "lowest_top_probability": round(confidence, 4),
        "low_confidence_threshold": rules.low_confidence_threshold,
        "poor_quality_images": sum(not i.quality_ok for i in images),
        "rules_source": rules.source,
    }
    if rules.referral is not None:
        score = max(rules.referral.score(i.probabilities) for i in images)
        detail["malignancy_score"] = round(score, 4)
        detail["malignancy_score_threshold"] = rules.referral.threshold
        referral = (score >= rules.referral.threshold, TriageLevel.urgent, "malignancy_score")
    else:
        referral = (malignant >= rules.malignant_threshold, TriageLevel.urgent, "malignant_probability")
    if lesion_change is not None:
        detail["lesion_change_score"] = lesion_change["change_score"]
        detail["lesion_change_significant"] = lesion_change["significant"]
    checks = [
        referral,
        (concern == "high", TriageLevel.urgent, "clinician_concern_high"),
        (bool(lesion_change and lesion_change["significant"]), TriageLevel.review, "lesion_changed"),
        (confidence < rules.low_confidence_threshold, TriageLevel.review, "low_confidence"),
        (detail["poor_quality_images"] > 0, TriageLevel.review, "poor_image_quality"),
        (wants_specialist, TriageLevel.review, "clinician_requests_specialist"),
    ]
    for fired, level, rule in checks:
        if fired:
            return TriageDecision(level, rule, detail)
    return TriageDecision(TriageLevel.routine, "no_rule_fired", detail)
