"""Triage rules: which analysed cases are urgent, which need a specialist's review, which are routine.

Rules are checked in this order and the first that fires decides (its name is stored with the case):

urgent
  ``malignant_probability``   P(mel) + P(bcc) + P(akiec) >= malignant_threshold on any image
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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from backend.cases.models import TriageLevel

MALIGNANT = ("mel", "bcc", "akiec")


@dataclass(frozen=True)
class TriageRules:
    malignant_threshold: float = 0.3
    low_confidence_threshold: float = 0.5
    malignant_classes: tuple[str, ...] = MALIGNANT
    source: str = "built-in defaults"

    @classmethod
    def from_file(cls, path: Path) -> TriageRules:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        return cls(
            malignant_threshold=float(data["malignant_threshold"]),
            low_confidence_threshold=float(data["low_confidence_threshold"]),
            malignant_classes=tuple(data.get("malignant_classes", MALIGNANT)),
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
    if lesion_change is not None:
        detail["lesion_change_score"] = lesion_change["change_score"]
        detail["lesion_change_significant"] = lesion_change["significant"]
    checks = [
        (malignant >= rules.malignant_threshold, TriageLevel.urgent, "malignant_probability"),
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
