"""Training configuration: one frozen dataclass and the named presets."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from training.data import DatasetError

ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# MobileNetV2 blocks whose output is a cut point for "fine-tune the top": everything after it trains.
CUT_LAYERS = {
    "block_6": "block_6_project_BN",  # fine-tune blocks 7-16 + Conv_1 (from the first 14x14 stage on)
    "block_8": "block_8_add",  # fine-tune blocks 9-16 + Conv_1 (issue 12: adapt more of the network)
    "block_9": "block_9_add",  # fine-tune blocks 10-16 + Conv_1
    "block_12": "block_12_add",  # fine-tune blocks 13-16 + Conv_1 (the whole 7x7 stage)
    "block_13": "block_13_project_BN",  # fine-tune blocks 14-16 + Conv_1
    "block_14": "block_14_add",
    "block_15": "block_15_add",  # fine-tune block 16 + Conv_1
}


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "default"
    alpha: float = 1.0
    image_size: int = 224
    batch_size: int = 32
    # phase 1: classification head on a frozen backbone
    head_epochs: int = 30
    head_lr: float = 1e-3
    head_batch_size: int = 256
    # phase 2: fine-tune everything after `finetune_after` (None: whole network; "" : no phase 2)
    finetune_epochs: int = 40
    finetune_lr: float = 1e-4
    warmup_epochs: int = 2  # phase 2: linear learning-rate warm-up before the cosine decay
    finetune_after: str | None = "block_12"
    lr_schedule: str = "cosine"  # "cosine" | "step" (halve every `lr_step_epochs`) | "constant"
    lr_step_epochs: int = 6
    weight_decay: float = 1e-4  # AdamW (0: plain Adam)
    dropout: float = 0.3
    label_smoothing: float = 0.05
    class_weights: str = "balanced"  # "balanced" | "sqrt" | "none"
    # augmentation in the tf.data pipeline (never in the exported graph)
    flip: bool = True
    rotation: float = 0.5  # fraction of a full turn, both directions (0.5 = up to +-180 degrees)
    zoom: float = 0.1
    brightness: float = 0.1
    contrast: float = 0.1
    # "full": images through the whole network every step (augmentation as above);
    # "cached": backbone activations up to the cut are computed once (original + flipped copies)
    # and phases 1 and 2 train on them: the CPU-friendly path (flip augmentation only).
    strategy: str = "cached"
    # cached strategy: dihedral views of each training image whose activations are cached (1: original;
    # 2: + horizontal flip; 4: + vertical flip, 180 degrees; 8: + the 90/270-degree rotations, flipped or not).
    # Phase 2 draws one random view per image per epoch (augmentation); phase 1 uses all of them.
    cached_views: int = 8
    early_stopping_patience: int = 10
    seed: int = 42

    def __post_init__(self) -> None:
        problems = []
        if self.alpha not in ALPHAS:
            problems.append(f"alpha {self.alpha} is not one of {ALPHAS}")
        if self.image_size < 32 or self.image_size % 32:
            problems.append(f"image_size {self.image_size} must be a multiple of 32 and >= 32")
        if self.finetune_after not in (None, "", *CUT_LAYERS):
            problems.append(
                f"finetune_after {self.finetune_after!r} must be None, '' or one of {list(CUT_LAYERS)}"
            )
        if self.lr_schedule not in ("cosine", "step", "constant"):
            problems.append(f"lr_schedule {self.lr_schedule!r} unknown")
        if self.class_weights not in ("balanced", "sqrt", "none"):
            problems.append(f"class_weights {self.class_weights!r} unknown")
        if self.strategy not in ("full", "cached"):
            problems.append(f"strategy {self.strategy!r} must be 'full' or 'cached'")
        if self.strategy == "cached" and not self.finetune_after and self.finetune_epochs:
            problems.append("the cached strategy needs a cut point (finetune_after) to fine-tune after")
        if self.cached_views not in (1, 2, 4, 8):
            problems.append("cached_views must be 1, 2, 4 or 8")
        if problems:
            raise DatasetError("invalid training configuration: " + "; ".join(problems))

    def replace(self, **changes) -> TrainConfig:
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, path: Path) -> TrainConfig:
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (TypeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{path} is not a training configuration: {exc}") from exc


PRESETS: dict[str, TrainConfig] = {
    # The seed study exactly: 224x224, batch 64, Adam 0.005 halved every 6 epochs, 20 epochs, rotation,
    # flips and slight zoom, the whole network trained end to end, no class weighting.
    "paper": TrainConfig(
        preset="paper",
        alpha=1.0,
        image_size=224,
        batch_size=64,
        head_epochs=0,
        head_lr=0.005,
        finetune_epochs=20,
        finetune_lr=0.005,
        finetune_after=None,
        lr_schedule="step",
        lr_step_epochs=6,
        dropout=0.0,
        weight_decay=0.0,
        label_smoothing=0.0,
        class_weights="none",
        flip=True,
        rotation=0.1,
        zoom=0.1,
        brightness=0.0,
        contrast=0.0,
        strategy="full",
        early_stopping_patience=0,
    ),
    # Two-phase transfer learning with class weights, sized for a 2-core CPU (see docs/model/REPORT.md).
    "default": TrainConfig(),
    # The same recipe through the whole network with full tf.data augmentation (for a GPU).
    "default-full": TrainConfig(
        preset="default-full", strategy="full", head_epochs=8, finetune_epochs=20, finetune_after="block_12"
    ),
    # Model v2 candidate (issue 12, docs/model/V2_GROUNDWORK.md): the default recipe, but activations
    # are cached after block 8 (14x14x64, ~1.4 GB float16 for 8 views of 7,008 images) and blocks 9-16
    # + Conv_1 adapt: 8 more inverted-residual blocks than v1. Slower phase 2, so a smaller learning
    # rate with a warm-up and patience to match. Not yet trained (no results claimed).
    "v2-block8": TrainConfig(
        preset="v2-block8",
        finetune_after="block_8",
        head_epochs=30,
        finetune_epochs=30,
        finetune_lr=5e-5,
        warmup_epochs=2,
        early_stopping_patience=8,
        cached_views=8,
    ),
    # The same cut on a CPU budget (one working sitting of a shared 2-core machine, no GPU): 4 cached views,
    # 8 fine-tuning epochs at v1's learning rate. A measurement of the lever, not the full recipe.
    "v2-block8-cpu": TrainConfig(
        preset="v2-block8-cpu",
        finetune_after="block_8",
        head_epochs=30,
        finetune_epochs=8,
        finetune_lr=1e-4,
        warmup_epochs=1,
        early_stopping_patience=4,
        cached_views=4,
    ),
}


def get_preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise DatasetError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
