"""`dermalink evaluate`: metrics with intervals, calibration, SVM baseline, plots and a Markdown report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from training import LABELS, MODEL_NAME
from training.cache import cached_images
from training.calibration import apply_temperature, reliability
from training.data import Dataset, DatasetError
from training.metrics import bootstrap, mcnemar, paired_bootstrap_difference, per_class, point_metrics
from training.paths import model_repository
from training.split import Split


class Predictor:
    """A model as shipped (ONNX, via ONNX Runtime) or as trained (Keras); uint8 images in."""

    def __init__(self, path: Path | None) -> None:
        path = Path(path) if path else model_repository() / MODEL_NAME
        self.path = path
        self.triage: dict | None = None
        self.run_info: dict = {}
        onnx = None
        if path.suffix == ".onnx":
            onnx = path
        elif (
            path.is_dir()
            and (path / "config.pbtxt").exists()
            or (path.is_dir() and any(path.glob("*/model.onnx")))
        ):
            from backend.inference.onnx import latest_version

            onnx = path / latest_version(path) / "model.onnx"
        if onnx is not None:
            from training.export import onnx_session

            if not onnx.exists():
                raise DatasetError(f"model file {onnx} does not exist")
            self.session = onnx_session(onnx)
            self.kind = "onnx"
            self.size = int(self.session.get_inputs()[0].shape[1])
            meta = onnx.parent.parent / "triage.json"
        else:
            from training.export import load_keras

            self.model = load_keras(path)
            self.kind = "keras"
            self.size = int(self.model.input.shape[1])
            meta = (path if path.is_dir() else path.parent) / "triage.json"
            run_json = (path if path.is_dir() else path.parent) / "run.json"
            if run_json.exists():
                self.run_info = json.loads(run_json.read_text())
        if meta.exists():
            self.triage = json.loads(meta.read_text())

    @property
    def temperature(self) -> float | None:
        if self.triage and self.triage.get("temperature_baked_into_model"):
            return float(self.triage["temperature_baked_into_model"])
        return self.run_info.get("temperature")

    def predict(self, images: np.ndarray) -> np.ndarray:
        from tqdm.auto import tqdm

        out = []
        for s in tqdm(range(0, len(images), 32), desc=f"predict ({self.kind})", unit="batch", leave=False):
            batch = np.ascontiguousarray(images[s : s + 32])
            if self.kind == "onnx":
                from training.export import onnx_predict

                out.append(onnx_predict(self.session, batch))
            else:
                out.append(self.model.predict(batch, verbose=0))
        return np.concatenate(out)


def _subset(dataset: Dataset, split_file: Path | None, subset: str | None) -> tuple[Dataset, Split | None]:
    if split_file is None:
        return dataset, None
    split = Split.load(split_file)
    ids = split.ids(subset or "test")
    if not dataset.report.missing_is_error:  # --allow-missing: the part of the split that is present
        present = set(dataset.image_ids)
        ids = [i for i in ids if i in present]
    return dataset.subset(ids), split


def evaluate(
    model: Path | None,
    dataset: Dataset,
    *,
    split_file: Path | None = None,
    subset: str | None = None,
    out: Path | None = None,
    baseline: bool = False,
    compare_runs: list[Path] | None = None,
    n_boot: int = 1000,
    cache_dir: Path | None = None,
    run_dir: Path | None = None,
    model_card: bool = False,
) -> dict:
    predictor = Predictor(model)
    data, split = _subset(dataset, split_file, subset)
    if not len(data):
        raise DatasetError("nothing to evaluate: the selected data is empty")
    images = cached_images(data.records, predictor.size, cache_dir)
    y = np.array(data.label_indices)
    groups = np.array([r.lesion_id for r in data.records])
    probs = predictor.predict(images)
    threshold = predictor.triage["malignant_threshold"] if predictor.triage else None
    result: dict = {
        "model": _display(predictor.path),
        "kind": predictor.kind,
        "data": _display(dataset.report.source),
        "subset": subset if split_file else "all",
        "n_boot": n_boot,
        "n": len(y),
        "class_counts": {lab: int((y == i).sum()) for i, lab in enumerate(LABELS)},
        "referral_threshold": threshold,
        "triage": predictor.triage,
        "metrics": point_metrics(y, probs, threshold),
        "ci95": bootstrap(y, probs, groups, n_boot=n_boot, referral_threshold=threshold) if n_boot else {},
        "per_class": per_class(y, probs),
        "confusion_matrix": _confusion(y, probs.argmax(1)).tolist(),
        "calibration": {"calibrated": reliability(probs, y)},
    }
    t = predictor.temperature
    if t:
        raw = apply_temperature(probs, 1.0 / t)  # undo the temperature baked into the model
        result["calibration"]["uncalibrated"] = reliability(raw, y)
        result["calibration"]["temperature"] = t
    if baseline:
        if split is None:
            raise DatasetError("--baseline needs --split (the SVM is fitted on the split's train part)")
        result["baseline"] = _baseline(
            dataset, split, data, images, y, probs, groups, n_boot, cache_dir, predictor.size
        )
    if compare_runs:
        result["compare"] = [_evaluate_run(Path(r), dataset, cache_dir, n_boot) for r in compare_runs]
    result["text"] = _text(result)
    if out is not None:
        if run_dir is None and model and Path(model).is_dir() and (Path(model) / "run.json").exists():
            run_dir = Path(model)
        write_report(result, Path(out), probs, y, run_dir)
        if model_card:
            from training.model_card import write_model_card

            write_model_card(result, Path(out), run_dir)
    return result


def _display(path) -> str:
    """A path relative to the repository, or under ``$DERMALINK_SHARED``, for reports."""
    from training.paths import REPO_ROOT, shared_dir

    p = Path(path).resolve()
    for base, name in ((REPO_ROOT, ""), (shared_dir().resolve(), "$DERMALINK_SHARED/")):
        try:
            return name + str(p.relative_to(base))
        except ValueError:
            continue
    return str(path)


def _confusion(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    cm = np.zeros((len(LABELS), len(LABELS)), int)
    np.add.at(cm, (y, pred), 1)
    return cm


def _baseline(dataset, split, test_data, test_images, y, probs, groups, n_boot, cache_dir, size) -> dict:
    from training.baseline import fit_svm, handcrafted_features, svm_scores

    train = dataset.subset(split.ids("train"))
    x_train = handcrafted_features(cached_images(train.records, size, cache_dir))
    clf = fit_svm(x_train, np.array(train.label_indices))
    scores = svm_scores(clf, handcrafted_features(test_images), len(LABELS))
    cnn_ok = probs.argmax(1) == y
    svm_ok = scores.argmax(1) == y
    return {
        "features": int(x_train.shape[1]),
        "metrics": point_metrics(y, scores),
        "ci95": bootstrap(y, scores, groups, n_boot=n_boot) if n_boot else {},
        "per_class": per_class(y, scores),
        "mcnemar_cnn_vs_svm": mcnemar(cnn_ok, svm_ok),
        "paired_difference_cnn_minus_svm": paired_bootstrap_difference(
            y, probs, scores, groups, n_boot=n_boot
        ),
    }


def _evaluate_run(run: Path, dataset: Dataset, cache_dir, n_boot: int) -> dict:
    """Test metrics of another run on its own split (e.g. the leaky image-level one)."""
    p = Predictor(run)
    split = Split.load(run / "split.csv")
    data = dataset.subset(split.ids("test"))
    images = cached_images(data.records, p.size, cache_dir)
    y = np.array(data.label_indices)
    probs = p.predict(images)
    return {
        "run": _display(run),
        "split_kind": split.kind,
        "shared_lesions": len(split.shared_lesions()),
        "n": len(y),
        "metrics": point_metrics(y, probs),
        "ci95": bootstrap(y, probs, None, n_boot=n_boot) if n_boot else {},
        "config": p.run_info.get("config", {}),
        "command": p.run_info.get("command"),
    }


def _fmt(m: dict, ci: dict, key: str) -> str:
    v = m.get(key)
    if v is None:
        return "n/a"
    lo_hi = ci.get(key)
    return f"{v:.3f} [{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]" if lo_hi else f"{v:.3f}"


def _text(r: dict) -> str:
    m, ci = r["metrics"], r["ci95"]
    lines = [f"{r['model']} on {r['n']} images ({r['subset']})"]
    for k in (
        "accuracy",
        "balanced_accuracy",
        "macro_auc",
        "mel_sensitivity_at_referral",
        "benign_specificity_at_referral",
        "fraction_referred",
    ):
        if k in m:
            lines.append(f"  {k:32s} {_fmt(m, ci, k)}")
    lines.append(f"  ECE {r['calibration']['calibrated']['ece']:.3f}")
    if "baseline" in r:
        b = r["baseline"]
        lines.append(
            f"  SVM baseline: accuracy {b['metrics']['accuracy']:.3f}, balanced accuracy "
            f"{b['metrics']['balanced_accuracy']:.3f}, macro AUC {b['metrics']['macro_auc']:.3f}; "
            f"McNemar p = {b['mcnemar_cnn_vs_svm']['p_value']:.2g}"
        )
    for c in r.get("compare", []):
        lines.append(
            f"  {c['run']} ({c['split_kind']}-level split): accuracy {c['metrics']['accuracy']:.3f}, "
            f"balanced accuracy {c['metrics']['balanced_accuracy']:.3f}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- report


def write_report(r: dict, out: Path, probs: np.ndarray, y: np.ndarray, run_dir: Path | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    out.mkdir(parents=True, exist_ok=True)
    plots = []
    # confusion matrix (row-normalised, counts annotated)
    cm = np.array(r["confusion_matrix"])
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            ax.text(
                j,
                i,
                f"{cm[i, j]}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    fig.colorbar(im, ax=ax, label="fraction of true class")
    ax.set_title("Confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=110)
    plt.close(fig)
    plots.append(("Confusion matrix", "confusion_matrix.png"))
    # ROC curves
    fig, ax = plt.subplots(figsize=(6, 5))
    for i, lab in enumerate(LABELS):
        if (y == i).any() and (y != i).any():
            fpr, tpr, _ = roc_curve(y == i, probs[:, i])
            ax.plot(fpr, tpr, label=f"{lab} (AUC {r['per_class'][lab]['auc']:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("One-vs-rest ROC (test)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "roc_curves.png", dpi=110)
    plt.close(fig)
    plots.append(("ROC curves", "roc_curves.png"))
    # reliability diagram
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, rel in r["calibration"].items():
        if not isinstance(rel, dict):
            continue
        conf = [b["confidence"] for b in rel["bins"]]
        acc = [b["accuracy"] for b in rel["bins"]]
        ax.plot(conf, acc, "o-", label=f"{name} (ECE {rel['ece']:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("mean top-class confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability diagram (test)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "reliability_diagram.png", dpi=110)
    plt.close(fig)
    plots.append(("Reliability diagram", "reliability_diagram.png"))
    # training curves
    if run_dir is not None and any(Path(run_dir).glob("history_*.csv")):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        offset = 0
        for phase in ("head", "finetune"):
            path = Path(run_dir) / f"history_{phase}.csv"
            if not path.exists():
                continue
            rows = list(csv.DictReader(path.open()))
            ep = [offset + int(row["epoch"]) + 1 for row in rows]
            axes[0].plot(
                ep, [float(row["loss"]) for row in rows], "-", label=f"{phase} train loss (weighted)"
            )
            if rows and "val_loss" in rows[0]:
                axes[0].plot(ep, [float(row["val_loss"]) for row in rows], "--", label=f"{phase} val loss")
            axes[1].plot(ep, [float(row["accuracy"]) for row in rows], "-", label=f"{phase} train accuracy")
            axes[1].plot(
                ep, [float(row["val_bal_acc"]) for row in rows], "--", label=f"{phase} val balanced acc"
            )
            offset = ep[-1] if ep else offset
        axes[0].set_xlabel("epoch")
        axes[1].set_xlabel("epoch")
        axes[0].legend(fontsize=8)
        axes[1].legend(fontsize=8)
        fig.suptitle("Training curves")
        fig.tight_layout()
        fig.savefig(out / "training_curves.png", dpi=110)
        plt.close(fig)
        plots.append(("Training curves", "training_curves.png"))
    metrics = {k: v for k, v in r.items() if k != "text"}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    (out / "REPORT.md").write_text(_markdown(r, plots))


def _markdown(r: dict, plots: list[tuple[str, str]]) -> str:
    m, ci = r["metrics"], r["ci95"]
    L = [
        "# DermaLink model evaluation report",
        "",
        f"Model: `{r['model']}` ({r['kind']}). Data: `{r['data']}`, subset **{r['subset']}**, {r['n']} images.",
        (
            "95% intervals: percentile bootstrap resampling lesions (clusters), "
            f"{r.get('n_boot', 0):,} resamples."
        ),
        "",
        "## Headline (test split)",
        "",
        "| metric | value [95% CI] |",
        "|---|---|",
    ]
    names = {
        "accuracy": "accuracy",
        "balanced_accuracy": "balanced accuracy (mean per-class recall)",
        "macro_auc": "macro one-vs-rest ROC AUC",
        "mel_sensitivity_argmax": "melanoma sensitivity (argmax)",
        "mel_specificity_argmax": "melanoma specificity (argmax)",
        "mel_sensitivity_at_referral": "melanoma sensitivity at the referral threshold",
        "malignant_sensitivity_at_referral": "malignant (mel+bcc+akiec) sensitivity at the referral threshold",
        "benign_specificity_at_referral": "benign specificity at the referral threshold",
        "fraction_referred": "fraction of cases referred",
    }
    for k, label in names.items():
        if k in m:
            L.append(f"| {label} | {_fmt(m, ci, k)} |")
    if r.get("referral_threshold") is not None:
        L += [
            "",
            (
                f"Referral threshold (summed mel+bcc+akiec probability, chosen on validation for 95% "
                f"sensitivity): **{r['referral_threshold']:.4f}**."
            ),
        ]
    L += [
        "",
        "## Per class",
        "",
        "| class | n | precision | recall | F1 | AUC |",
        "|---|---|---|---|---|---|",
    ]
    for lab, v in r["per_class"].items():
        L.append(
            f"| {lab} | {v['support']} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | "
            f"{v['auc']:.3f} |"
        )
    L += ["", "Confusion matrix (rows true, columns predicted, order " + ", ".join(LABELS) + "):", "", "```"]
    L += [" ".join(f"{c:5d}" for c in row) for row in r["confusion_matrix"]]
    L += ["```", "", "## Calibration", ""]
    cal = r["calibration"]
    if "uncalibrated" in cal:
        L.append(
            f"Temperature scaling fitted on validation: T = {cal['temperature']:.3f}. Test ECE (15 bins) "
            f"before {cal['uncalibrated']['ece']:.3f}, after {cal['calibrated']['ece']:.3f}. The shipped "
            "model has T baked into its last layer, so it serves the calibrated probabilities."
        )
    else:
        L.append(f"Test ECE (15 bins): {cal['calibrated']['ece']:.3f}.")
    if "baseline" in r:
        b = r["baseline"]
        t = b["mcnemar_cnn_vs_svm"]
        L += [
            "",
            "## SVM baseline (handcrafted colour/texture features, same split)",
            "",
            (
                f"{b['features']} features (HSV histograms, RGB/Lab colour moments, LBP, GLCM), RBF SVM with "
                "balanced class weights, fitted on the train split, scored on the same test images."
            ),
            "",
            "| metric | MobileNetV2 | SVM |",
            "|---|---|---|",
        ]
        for k in ("accuracy", "balanced_accuracy", "macro_auc"):
            L.append(f"| {names[k]} | {_fmt(m, ci, k)} | {_fmt(b['metrics'], b['ci95'], k)} |")
        L += [
            "",
            (
                f"McNemar's paired test on the same {r['n']} test images: CNN right / SVM wrong "
                f"{t['a_right_b_wrong']}, CNN wrong / SVM right {t['a_wrong_b_right']}, "
                f"statistic {t['statistic']:.2f}, p = {t['p_value']:.2g} "
                f"({'exact binomial' if t['exact'] else 'chi-squared with continuity correction'}). "
                "McNemar compares per-image correctness, i.e. accuracy, which the majority class (nv, two "
                "thirds of the images) dominates; the CNN is trained with balanced class weights for "
                "balanced accuracy and gives up some nv accuracy for minority-class recall."
            ),
            "",
            "Paired lesion-clustered bootstrap of the difference (CNN - SVM) on the same test images:",
            "",
            "| metric | difference [95% CI] | share of resamples with CNN not better |",
            "|---|---|---|",
        ]
        for k, d in b.get("paired_difference_cnn_minus_svm", {}).items():
            L.append(
                f"| {names[k]} | {d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] | "
                f"{d['p_not_better']:.3f} |"
            )
    if r.get("compare"):
        L += [
            "",
            "## Split leakage: lesion-grouped vs image-level split",
            "",
            "| run | split | shared lesions train/val/test | test n | accuracy | balanced accuracy | macro AUC |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in r["compare"]:
            cm_, cci = c["metrics"], c["ci95"]
            L.append(
                f"| `{c['run']}` | {c['split_kind']}-level | {c['shared_lesions']} | {c['n']} | "
                f"{_fmt(cm_, cci, 'accuracy')} | {_fmt(cm_, cci, 'balanced_accuracy')} | "
                f"{_fmt(cm_, cci, 'macro_auc')} |"
            )
        L += [
            "",
            (
                "Same recipe, different split: images of one lesion on both sides of the image-level split "
                "let the model recognise the lesion rather than the disease."
            ),
        ]
    L += ["", "## Plots", ""]
    for title, file in plots:
        L += [f"### {title}", "", f"![{title}]({file})", ""]
    L += [
        (
            "Data: HAM10000 (Tschandl, Rosendahl & Kittler, Sci. Data 5, 180161 (2018), "
            "doi:10.1038/sdata.2018.161), CC BY-NC 4.0."
        ),
        "",
    ]
    return "\n".join(L)
