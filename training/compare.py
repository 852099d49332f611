"""Two models side by side on the same lesion-grouped test split, through the served path (issue 12).

``python -m training.compare --a runs/gw-v1 --b runs/gw-v2`` reads the cached predictions of
``python -m training.groundwork predict`` for both models (the platform's JPEG q95 re-encode, so the
evaluated pixels are the served pixels) and reports, on test, each model's headline metrics with
lesion-clustered 95% intervals, the paired difference b - a, per-class recall, and the referral rules
fitted on each model's own validation predictions (summed malignant probability and the learned rule),
next to the issue's goals. Nothing is fitted on test.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from training import LABELS
from training.decision import fit_referral
from training.groundwork_analysis import classification, ref_stats, referral
from training.metrics import cluster_bootstrap, paired_bootstrap_difference
from training.triage import is_malignant, malignant_score, referral_threshold

# The goals for v2 (test split, served path).
GOALS = {
    "balanced_accuracy": (">=", 0.75),
    "macro_auc": (">=", 0.94),
    "mel_sensitivity_argmax": (">=", 0.70),
    "ece": ("<=", 0.03),
    "learned_fraction_referred": ("<=", 0.50),
    "learned_benign_specificity": (">=", 0.55),
}


def _load(path: Path) -> dict[str, np.ndarray]:
    from training.groundwork import load_predictions

    d = load_predictions(path)
    if not d:
        raise FileNotFoundError(
            f"no cached predictions in {path} (run `python -m training.groundwork predict`)"
        )
    return d


def _recall(y: np.ndarray, probs: np.ndarray, i: int) -> float:
    m = y == i
    return float((probs[m].argmax(1) == i).mean()) if m.any() else float("nan")


def model_report(d: dict[str, np.ndarray], n_boot: int) -> dict:
    yv, yt, gv, gt = d["val_y"], d["test_y"], d["val_lesions"], d["test_lesions"]
    pv, pt = d["val_views"][0], d["test_views"][0]  # view 0: the served pixels as they are
    t_sum = referral_threshold(malignant_score(pv), is_malignant(yv), 0.95)
    model, oof = fit_referral(pv, yv, gv)
    recall = {}
    for i, lab in enumerate(LABELS):
        m = yt == i
        point = float((pt[m].argmax(1) == i).mean())
        ci = cluster_bootstrap(lambda idx, i=i: {"r": _recall(yt[idx], pt[idx], i)}, len(yt), gt, n_boot)
        recall[lab] = {"value": point, "ci95": ci.get("r")}
    return {
        "test": classification(yt, pt, gt, n_boot),
        "test_recall": recall,
        "summed_rule": {"threshold": t_sum, "test": referral(yt, malignant_score(pt) >= t_sum, gt, n_boot)},
        "learned_rule": {
            "model": model.to_json(),
            "validation_out_of_fold": ref_stats(yv, oof >= model.threshold),
            "test": referral(yt, model.refer(pt), gt, n_boot),
        },
    }


def compare(a_dir: Path, b_dir: Path, n_boot: int = 1000) -> dict:
    a, b = _load(a_dir), _load(b_dir)
    for part in ("val", "test"):
        if not np.array_equal(a[f"{part}_ids"], b[f"{part}_ids"]):
            raise ValueError(f"the two prediction sets are not on the same {part} images")
    yt, gt = a["test_y"], a["test_lesions"]
    res = {
        "n": {"val": len(a["val_y"]), "test": len(yt)},
        "a": model_report(a, n_boot),
        "b": model_report(b, n_boot),
        "paired_b_minus_a": paired_bootstrap_difference(
            yt, b["test_views"][0], a["test_views"][0], gt, n_boot=n_boot
        ),
    }
    res["goals"] = goals(res["b"])
    return res


def goals(report: dict) -> dict:
    values = {
        k: report["test"][k]["value"] for k in ("balanced_accuracy", "macro_auc", "mel_sensitivity_argmax")
    }
    values["ece"] = report["test"]["ece"]["value"]
    learned = report["learned_rule"]["test"]
    values["learned_fraction_referred"] = learned["fraction_referred"]["value"]
    values["learned_benign_specificity"] = learned["benign_specificity"]["value"]
    out = {}
    for key, (op, target) in GOALS.items():
        v = values[key]
        out[key] = {"value": v, "goal": f"{op} {target}", "met": v >= target if op == ">=" else v <= target}
    return out


def _cell(m: dict) -> str:
    ci = m.get("ci95")
    return f"{m['value']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def markdown(res: dict, names: tuple[str, str] = ("v1", "v2")) -> str:
    a, b = res["a"], res["b"]
    na, nb = names
    lines = [
        (
            f"Test split: {res['n']['test']} images (validation {res['n']['val']}), served path "
            "(JPEG q95 re-encode), single view; 95% lesion-clustered bootstrap intervals."
        ),
        "",
        f"| metric | {na} | {nb} | {nb} - {na} (paired, 95% CI) | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    paired = res["paired_b_minus_a"]
    goal = res["goals"]
    for key, label in (
        ("accuracy", "accuracy"),
        ("balanced_accuracy", "balanced accuracy"),
        ("macro_auc", "macro AUC"),
        ("mel_sensitivity_argmax", "melanoma recall (argmax)"),
        ("ece", "ECE (15 bins)"),
    ):
        diff = ""
        if key in paired:
            d = paired[key]
            diff = f"{d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
        g = goal.get(key)
        lines.append(
            f"| {label} | {_cell(a['test'][key])} | {_cell(b['test'][key])} | {diff} | "
            f"{g['goal'] if g else ''} | {('yes' if g['met'] else 'no') if g else ''} |"
        )
    for rule, label in (("summed_rule", "summed p(mel+bcc+akiec)"), ("learned_rule", "learned rule")):
        for key in ("malignant_sensitivity", "benign_specificity", "fraction_referred"):
            g = goal.get(f"learned_{key}") if rule == "learned_rule" else None
            lines.append(
                f"| {label}: {key.replace('_', ' ')} | {_cell(a[rule]['test'][key])} | "
                f"{_cell(b[rule]['test'][key])} |  | {g['goal'] if g else ''} | "
                f"{('yes' if g['met'] else 'no') if g else ''} |"
            )
    lines += ["", f"| test recall | {na} | {nb} |", "|---|---|---|"]
    for lab in LABELS:
        lines.append(f"| {lab} | {_cell(a['test_recall'][lab])} | {_cell(b['test_recall'][lab])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m training.compare", description=__doc__.split("\n")[0])
    p.add_argument("--a", type=Path, required=True, help="cached predictions of the reference model (v1)")
    p.add_argument("--b", type=Path, required=True, help="cached predictions of the candidate (v2)")
    p.add_argument("--names", default="v1,v2")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--out", type=Path, required=True, help="folder for compare.json and compare.md")
    args = p.parse_args(argv)
    res = compare(args.a, args.b, args.n_boot)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.json").write_text(json.dumps(res, indent=2))
    (args.out / "compare.md").write_text(markdown(res, tuple(args.names.split(","))))
    print((args.out / "compare.md").read_text())


if __name__ == "__main__":
    main()
