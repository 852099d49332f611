"""Default locations: the shared data/weights folder next to the repository (``$DERMALINK_SHARED``)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """``$DERMALINK_SHARED`` if set, else ``<repo>/../shared``."""
    env = os.environ.get("DERMALINK_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def default_metadata() -> Path:
    return shared_dir() / "data" / "ham10000" / "HAM10000_metadata.csv"


def default_images() -> Path:
    return shared_dir() / "data" / "ham10000" / "images_200x150"


def default_weights_dir() -> Path:
    return shared_dir() / "weights" / "mobilenet_v2"


def default_weights(alpha: float, size: int = 224) -> Path:
    """The Keras release file name for ``alpha`` (e.g. ``..._1.0_224_no_top.h5``) in the shared folder."""
    alpha_str = {0.35: "0.35", 0.5: "0.5", 0.75: "0.75", 1.0: "1.0", 1.3: "1.3", 1.4: "1.4"}.get(
        alpha, str(alpha)
    )
    rows = size if size in (96, 128, 160, 192, 224) else 224
    return (
        default_weights_dir()
        / f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha_str}_{rows}_no_top.h5"
    )


def model_repository() -> Path:
    return REPO_ROOT / "model_repository"


def docs_model() -> Path:
    return REPO_ROOT / "docs" / "model"
