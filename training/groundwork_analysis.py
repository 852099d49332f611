"""Analysis of the cached v1 predictions (``python -m training.groundwork analyse``).

Every rule is fitted on the validation part; the test part is only scored, once per chosen rule.
Intervals: lesion-clustered percentile bootstrap (:func:`training.metrics.cluster_bootstrap`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training import LABELS, MODEL_NAME
from training.calibration import apply_temperature, ece, fit_temperature
from training.decision import (
    apply_offsets,
    balanced_accuracy,
    fit_logit_offsets,
    fit_referral,
    grouped_folds,
    log_probs,
    operating_point,
)
from training.metrics import cluster_bootstrap, paired_bootstrap_difference, point_metrics
from training.paths import model_repository
from training.triage import is_malignant, malignant_score, referral_threshold

KEYS = ("accuracy", "balanced_accuracy", "macro_auc", "mel_sensitivity_argmax", "ece")
REF_KEYS = ("malignant_sensitivity", "mel_sensitivity", "benign_specificity", "fraction_referred")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def tta(views: np.ndarray, how: str) -> np.ndarray:
    """Average of the 8 views' outputs: ``mean`` of probabilities or ``geo`` (mean of log-probabilities)."""
    if how == "mean":
        return views.mean(axis=0)
    return _softmax(log_probs(views).mean(axis=0))


def cls_stats(y: np.ndarray, probs: np.ndarray) -> dict:
    m = point_metrics(y, probs)
    return {k: m[k] for k in KEYS if k in m} | {"ece": ece(probs, y)}


def ref_stats(y: np.ndarray, refer: np.ndarray) -> dict:
    return operating_point(refer, y)


def with_ci(point: dict, ci: dict) -> dict:
    return {k: {"value": v, "ci95": ci.get(k)} for k, v in point.items()}


def classification(y, probs, groups, n_boot) -> dict:
    return with_ci(
        cls_stats(y, probs), cluster_bootstrap(lambda i: cls_stats(y[i], probs[i]), len(y), groups, n_boot)
    )


def referral(y, refer, groups, n_boot) -> dict:
    return with_ci(
        ref_stats(y, refer), cluster_bootstrap(lambda i: ref_stats(y[i], refer[i]), len(y), groups, n_boot)
    )


def cv_offsets(probs, y, groups, k: int = 5) -> float:
    """Balanced accuracy of offsets fitted on 4/5 of validation lesions and applied to the held-out 1/5."""
    folds = grouped_folds(groups, k)
    pred = np.empty(len(y), int)
    for f in range(k):
        m = folds == f
        b = fit_logit_offsets(probs[~m], y[~m])
        pred[m] = (log_probs(probs[m]) + b).argmax(1)
    return balanced_accuracy(y, pred)


def analyse(out: Path, n_boot: int = 1000, n_boot_val: int = 200) -> dict:
    """``n_boot`` resamples for test intervals; ``n_boot_val`` for validation ones (they only guide choices)."""
    from training.groundwork import load_predictions

    d = load_predictions(out)
    triage = json.loads((model_repository() / MODEL_NAME / "triage.json").read_text())
    t_v1 = float(triage["malignant_threshold"])
    yv, yt = d["val_y"], d["test_y"]
    gv, gt = d["val_lesions"], d["test_lesions"]
    res: dict = {
        "n": {"val": len(yv), "test": len(yt)},
        "class_counts": {
            s: {lab: int((d[f"{s}_y"] == i).sum()) for i, lab in enumerate(LABELS)} for s in ("val", "test")
        },
    }

    # 1. the served path (JPEG q95 re-encode) vs the original files
    enc = {}
    for s, y, g in (("val", yv, gv), ("test", yt, gt)):
        nb = n_boot if s == "test" else n_boot_val
        po, ps = d[f"{s}_orig"], d[f"{s}_views"][0]
        enc[s] = {
            "original": classification(y, po, g, nb),
            "served": classification(y, ps, g, nb),
            "referral_v1_original": referral(y, malignant_score(po) >= t_v1, g, nb),
            "referral_v1_served": referral(y, malignant_score(ps) >= t_v1, g, nb),
            "top1_agreement": float((po.argmax(1) == ps.argmax(1)).mean()),
            "referral_agreement": float(
                ((malignant_score(po) >= t_v1) == (malignant_score(ps) >= t_v1)).mean()
            ),
            "max_abs_prob_diff": float(np.abs(po - ps).max()),
            "mean_abs_prob_diff": float(np.abs(po - ps).mean()),
            "mean_abs_pixel_diff": float(d[f"{s}_pixel_mad"].mean()),
            "paired_served_minus_original": paired_bootstrap_difference(y, ps, po, g, n_boot=nb),
        }
    res["reencode"] = enc

    # 2. temperature re-check and logit offsets, on the served path
    pv, pt = d["val_views"][0], d["test_views"][0]
    t_extra = fit_temperature(pv, yv)
    b = fit_logit_offsets(pv, yv)
    pv_b, pt_b = apply_offsets(pv, b), apply_offsets(pt, b)
    t_after = fit_temperature(pv_b, yv)
    res["temperature"] = {
        "baked_into_v1": triage.get("temperature_baked_into_model"),
        "extra_factor_fitted_on_served_val": t_extra,
        "val_ece_before": ece(pv, yv),
        "val_ece_after": ece(apply_temperature(pv, t_extra), yv),
    }
    res["offsets"] = {
        "offsets": dict(zip(LABELS, np.round(b, 3).tolist(), strict=True)),
        "val_balanced_accuracy_before": balanced_accuracy(yv, pv.argmax(1)),
        "val_balanced_accuracy_after_in_sample": balanced_accuracy(yv, pv_b.argmax(1)),
        "val_balanced_accuracy_after_5fold_lesion_cv": cv_offsets(pv, yv, gv),
        "temperature_after_offsets": t_after,
        "test": classification(yt, apply_temperature(pt_b, t_after), gt, n_boot),
        "test_per_class_recall": {
            lab: float((pt_b.argmax(1)[yt == i] == i).mean()) for i, lab in enumerate(LABELS)
        },
        "test_paired_offsets_minus_served": paired_bootstrap_difference(yt, pt_b, pt, gt, n_boot=n_boot),
    }

    # 4. test-time augmentation (8 dihedral views of the served pixels); variant chosen on validation
    tta_val = {how: cls_stats(yv, tta(d["val_views"], how)) for how in ("mean", "geo")}
    how = max(tta_val, key=lambda h: (tta_val[h]["balanced_accuracy"], tta_val[h]["macro_auc"]))
    tv, tt = tta(d["val_views"], how), tta(d["test_views"], how)
    t_tta = fit_temperature(tv, yv)
    tv_c, tt_c = apply_temperature(tv, t_tta), apply_temperature(tt, t_tta)
    b_tta = fit_logit_offsets(tv_c, yv)
    res["tta"] = {
        "variants_val": tta_val,
        "chosen": how,
        "temperature_fitted_on_val": t_tta,
        "val_single": enc["val"]["served"],
        "val_tta": classification(yv, tv_c, gv, n_boot_val),
        "test_single": enc["test"]["served"],
        "test_tta": classification(yt, tt_c, gt, n_boot),
        "test_paired_tta_minus_single": paired_bootstrap_difference(yt, tt_c, pt, gt, n_boot=n_boot),
        "offsets_on_tta": dict(zip(LABELS, np.round(b_tta, 3).tolist(), strict=True)),
        "val_tta_offsets_5fold_lesion_cv": cv_offsets(tv_c, yv, gv),
        "test_tta_offsets": classification(yt, apply_offsets(tt_c, b_tta), gt, n_boot),
    }

    # 3. referral: v1's summed rule vs a logistic regression on the 7 log-probabilities
    ref = {}
    for name, qv, qt in (("single", pv, pt), ("tta", tv_c, tt_c)):
        pos_v = is_malignant(yv)
        t_sum = referral_threshold(malignant_score(qv), pos_v, 0.95)
        model, oof = fit_referral(qv, yv, gv)
        ref[name] = {
            "sum_threshold": t_sum,
            "sum_val": referral(yv, malignant_score(qv) >= t_sum, gv, n_boot_val),
            "sum_test": referral(yt, malignant_score(qt) >= t_sum, gt, n_boot),
            "lr": model.to_json(),
            "lr_val_out_of_fold": referral(yv, oof >= model.threshold, gv, n_boot_val),
            "lr_test": referral(yt, model.refer(qt), gt, n_boot),
            "auc_malignant_val": {
                "sum": _auc(pos_v, malignant_score(qv)),
                "lr_out_of_fold": _auc(pos_v, oof),
            },
            "auc_malignant_test": {
                "sum": _auc(is_malignant(yt), malignant_score(qt)),
                "lr": _auc(is_malignant(yt), model.score(qt)),
            },
        }
    res["referral"] = ref
    (Path(out) / "analysis.json").write_text(json.dumps(res, indent=2))
    return res


def _auc(t, s) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(t, s))


def _fmt(cell: dict | float | None) -> str:
    if cell is None:
        return "-"
    if isinstance(cell, dict):
        lo, hi = cell["ci95"] if cell.get("ci95") else (None, None)
        v = cell["value"]
        return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{v:.3f}"
    return f"{cell:.3f}"


def _table(rows: list[tuple[str, dict]], keys: tuple[str, ...]) -> list[str]:
    out = ["| rule | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    out += [f"| {name} | " + " | ".join(_fmt(r.get(k)) for k in keys) + " |" for name, r in rows]
    return out


def _diff(d: dict) -> str:
    lo, hi = d["ci95"]
    return f"{d['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def markdown(res: dict) -> str:
    """The tables of docs/model/V2_GROUNDWORK.md from ``analysis.json``."""
    enc, off, tta, ref = res["reencode"], res["offsets"], res["tta"], res["referral"]
    L = [
        f"n: validation {res['n']['val']}, test {res['n']['test']}",
        "",
        "### Re-encode (served path) vs original files",
        "",
    ]
    for s in ("val", "test"):
        e = enc[s]
        L += [f"**{s}**", ""]
        L += _table([("original files", e["original"]), ("served path (JPEG q95)", e["served"])], KEYS)
        L += [""]
        L += _table(
            [
                ("v1 referral, original", e["referral_v1_original"]),
                ("v1 referral, served", e["referral_v1_served"]),
            ],
            REF_KEYS,
        )
        p = e["paired_served_minus_original"]
        L += [
            "",
            (
                f"top-1 agreement {e['top1_agreement']:.4f}, referral agreement {e['referral_agreement']:.4f}, "
                f"max |dp| {e['max_abs_prob_diff']:.4f}, mean |dp| {e['mean_abs_prob_diff']:.5f}, mean |d pixel| "
                f"{e['mean_abs_pixel_diff']:.3f} (0-255); paired served - original: accuracy {_diff(p['accuracy'])}, "
                f"balanced accuracy {_diff(p['balanced_accuracy'])}, macro AUC {_diff(p['macro_auc'])}"
            ),
            "",
        ]
    t = res["temperature"]
    L += [
        "### Temperature and logit offsets (served path)",
        "",
        (
            f"Extra temperature factor fitted on validation on top of v1's baked T={t['baked_into_v1']:.4f}: "
            f"{t['extra_factor_fitted_on_served_val']:.4f} (validation ECE {t['val_ece_before']:.4f} -> {t['val_ece_after']:.4f})."
        ),
        "",
        "Offsets fitted on validation: "
        + ", ".join(f"{k} {v:+.1f}" for k, v in off["offsets"].items())
        + f"; validation balanced accuracy {off['val_balanced_accuracy_before']:.3f} -> "
        f"{off['val_balanced_accuracy_after_in_sample']:.3f} in sample, "
        f"{off['val_balanced_accuracy_after_5fold_lesion_cv']:.3f} in 5-fold lesion-grouped cross-validation; "
        f"temperature after offsets {off['temperature_after_offsets']:.4f}.",
        "",
    ]
    L += ["Test:", ""]
    L += _table([("v1 served", enc["test"]["served"]), ("v1 served + offsets (+ T)", off["test"])], KEYS)
    p = off["test_paired_offsets_minus_served"]
    L += [
        "",
        f"Test, paired offsets - plain: balanced accuracy {_diff(p['balanced_accuracy'])}, macro AUC "
        f"{_diff(p['macro_auc'])}, accuracy {_diff(p['accuracy'])}. Per-class test recall with offsets: "
        + ", ".join(f"{k} {v:.2f}" for k, v in off["test_per_class_recall"].items()),
        "",
        "### Test-time augmentation (8 dihedral views of the served pixels)",
        "",
        "Validation, both averaging variants: "
        + "; ".join(
            f"{h}: balanced accuracy {v['balanced_accuracy']:.3f}, macro AUC {v['macro_auc']:.3f}, ECE {v['ece']:.3f}"
            for h, v in tta["variants_val"].items()
        )
        + f". Chosen: **{tta['chosen']}**, then temperature {tta['temperature_fitted_on_val']:.4f} fitted on validation.",
        "",
    ]
    L += _table(
        [
            ("validation, single view", tta["val_single"]),
            ("validation, TTA", tta["val_tta"]),
            ("test, single view", tta["test_single"]),
            ("test, TTA", tta["test_tta"]),
            ("test, TTA + offsets", tta["test_tta_offsets"]),
        ],
        KEYS,
    )
    p = tta["test_paired_tta_minus_single"]
    L += [
        "",
        f"Test, paired TTA - single: balanced accuracy {_diff(p['balanced_accuracy'])}, macro AUC "
        f"{_diff(p['macro_auc'])}, accuracy {_diff(p['accuracy'])}. Offsets on TTA (validation CV balanced "
        f"accuracy {tta['val_tta_offsets_5fold_lesion_cv']:.3f}): "
        + ", ".join(f"{k} {v:+.1f}" for k, v in tta["offsets_on_tta"].items()),
        "",
        "### Referral at malignant sensitivity >= 0.95 (thresholds chosen on validation)",
        "",
    ]
    rows = []
    for name in ("single", "tta"):
        r = ref[name]
        rows += [
            (f"{name}: summed p(mel+bcc+akiec) >= {r['sum_threshold']:.4f}, validation", r["sum_val"]),
            (f"{name}: summed, test", r["sum_test"]),
            (
                f"{name}: logistic on log-probs >= {r['lr']['threshold']:.4f}, validation (out of fold)",
                r["lr_val_out_of_fold"],
            ),
            (f"{name}: logistic, test", r["lr_test"]),
        ]
    L += _table(rows, REF_KEYS)
    L += [""]
    for name in ("single", "tta"):
        r = ref[name]
        L += [
            f"- {name}: malignant-vs-benign AUC validation sum {r['auc_malignant_val']['sum']:.3f} / logistic "
            f"(out of fold) {r['auc_malignant_val']['lr_out_of_fold']:.3f}; test sum {r['auc_malignant_test']['sum']:.3f} "
            f"/ logistic {r['auc_malignant_test']['lr']:.3f}. Coefficients: "
            + ", ".join(f"{c} {v:+.2f}" for c, v in zip(LABELS, r["lr"]["coef"], strict=True))
            + f", intercept {r['lr']['intercept']:+.2f}."
        ]
    return "\n".join(L) + "\n"
