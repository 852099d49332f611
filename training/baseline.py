"""The SVM baseline on handcrafted colour and texture features (the seed study's comparison, done paired)."""

from __future__ import annotations

import numpy as np


def handcrafted_features(images: np.ndarray, size: int = 112) -> np.ndarray:
    """Per image: HSV histograms (3x16), RGB and Lab colour moments (mean, std, skew), uniform LBP
    histograms at two radii, and GLCM contrast/homogeneity/energy/correlation/dissimilarity."""
    from PIL import Image
    from scipy.stats import skew
    from skimage.color import rgb2hsv, rgb2lab
    from skimage.feature import graycomatrix, graycoprops, local_binary_pattern
    from tqdm.auto import tqdm

    out = []
    for img in tqdm(images, desc="handcrafted features", unit="img", leave=False):
        small = np.asarray(Image.fromarray(np.asarray(img)).resize((size, size), Image.Resampling.BILINEAR))
        f = []
        hsv = rgb2hsv(small)
        for c in range(3):
            h, _ = np.histogram(hsv[..., c], bins=16, range=(0, 1))
            f.extend(h / h.sum())
        for space in (small / 255.0, rgb2lab(small) / 100.0):
            flat = space.reshape(-1, 3)
            f.extend(flat.mean(0))
            f.extend(flat.std(0))
            f.extend(np.nan_to_num(skew(flat, axis=0)))
        gray = (0.299 * small[..., 0] + 0.587 * small[..., 1] + 0.114 * small[..., 2]).astype(np.uint8)
        for p, r in ((8, 1), (16, 2)):
            lbp = local_binary_pattern(gray, p, r, method="uniform")
            h, _ = np.histogram(lbp, bins=p + 2, range=(0, p + 2))
            f.extend(h / h.sum())
        glcm = graycomatrix(
            gray // 8,
            distances=[1, 3],
            angles=[0, np.pi / 4, np.pi / 2, 3 * np.pi / 4],
            levels=32,
            symmetric=True,
            normed=True,
        )
        for prop in ("contrast", "homogeneity", "energy", "correlation", "dissimilarity"):
            f.extend(graycoprops(glcm, prop).mean(axis=1))
        out.append(np.asarray(f, dtype=np.float32))
    return np.stack(out)


def fit_svm(features: np.ndarray, y: np.ndarray, seed: int = 0):
    """RBF SVM with balanced class weights on standardised features."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    clf = make_pipeline(
        StandardScaler(),
        SVC(C=10.0, gamma="scale", class_weight="balanced", decision_function_shape="ovr", random_state=seed),
    )
    clf.fit(features, y)
    return clf


def svm_scores(clf, features: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class scores (softmax of the one-vs-rest decision values): rankable for AUC, argmax = prediction."""
    d = clf.decision_function(features)
    full = np.full((len(features), n_classes), -1e3)
    full[:, clf[-1].classes_] = d
    e = np.exp(full - full.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)
