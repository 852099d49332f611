"""docs/model/MODEL_CARD.md, written from the evaluation result, the run's run.json and export.json."""

from __future__ import annotations

import json
from pathlib import Path

from training import LABELS, MALIGNANT

REPRODUCE = [
    "python3 -m venv .venv && .venv/bin/pip install -e '.[train,dev]'",
    "dermalink data validate                       # all 10,015 images readable, labels known",
    "dermalink data duplicates --out runs/duplicates.csv",
    "# the shipped run (lesion-grouped split, seed 42); ~17 min on 2 CPU cores",
    "nice -n 10 dermalink train --config docs/model/shipped_config.json --out runs/shipped",
    "# head-only runs for the leakage comparison (lesion-grouped vs image-level split)",
    "dermalink train --out runs/head-lesion --finetune-after none --cached-views 1",
    "dermalink train --out runs/head-leaky --finetune-after none --cached-views 1 --image-level-split",
    "dermalink export --run runs/shipped --tflite runs/tflite --report-dir docs/model --parity-images 280",
    "dermalink evaluate --split runs/shipped/split.csv --subset test --run runs/shipped --out docs/model \\",
    "    --baseline --compare-run runs/head-lesion --compare-run runs/head-leaky --model-card",
]

GOALS = {"balanced_accuracy": 0.80, "macro_auc": 0.95, "mel_sensitivity_at_referral": 0.90}


def _ci(r: dict, key: str) -> str:
    v = r["metrics"].get(key)
    ci = r.get("ci95", {}).get(key)
    if v is None:
        return "n/a"
    return f"{v:.3f} (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else f"{v:.3f}"


def write_model_card(
    result: dict, out: Path, run_dir: Path | None, commands: list[str] | None = None
) -> Path:
    commands = commands if commands is not None else REPRODUCE
    run = (
        json.loads((Path(run_dir) / "run.json").read_text())
        if run_dir and (Path(run_dir) / "run.json").exists()
        else {}
    )
    export = json.loads((out / "export.json").read_text()) if (out / "export.json").exists() else {}
    triage = result.get("triage") or {}
    cfg = run.get("config", {})
    m = result["metrics"]
    L = [
        "# Model card: ham10000_mobilenetv2, version 1",
        "",
        (
            "DermaLink's lesion classifier: **decision support for clinicians** reviewing dermoscopic images in a "
            "teledermatology queue. It is not a diagnosis, it is not for patients' self-assessment, and it does "
            "not reach the accuracy goals set for it (see *Performance*): every case still needs a clinician."
        ),
        "",
        "## Model",
        "",
        (
            f"- Architecture: Keras 3 MobileNetV2 (alpha {cfg.get('alpha', '?')}, {cfg.get('image_size', 224)}x"
            f"{cfg.get('image_size', 224)}), initialised from ImageNet weights (local file "
            f"`{Path(run.get('weights', '?')).name}`), global average pooling, dropout {cfg.get('dropout', '?')}, "
            "dense softmax over 7 classes."
        ),
        (
            f"- Training recipe (preset `{cfg.get('preset', '?')}`): phase 1 trains the head on the frozen "
            f"backbone ({cfg.get('head_epochs', '?')} epochs max, lr {cfg.get('head_lr', '?')}); phase 2 fine-tunes "
            f"the backbone after `{cfg.get('finetune_after')}` ({cfg.get('finetune_epochs', '?')} epochs max, lr "
            f"{cfg.get('finetune_lr', '?')}, {cfg.get('lr_schedule')} schedule, AdamW weight decay "
            f"{cfg.get('weight_decay')}), BatchNorm frozen; class weights `{cfg.get('class_weights')}`, label "
            f"smoothing {cfg.get('label_smoothing')}; model selection on validation balanced accuracy with early "
            f"stopping (patience {cfg.get('early_stopping_patience')}); seed {cfg.get('seed')}."
        ),
        (
            f"- CPU path (`strategy: {cfg.get('strategy')}`): the frozen lower backbone's activations were computed "
            f"once for {cfg.get('cached_views')} dihedral views (flips and 90-degree rotations) of every training "
            "image; phase 2 draws one random view per image and epoch. No scale or colour augmentation was used "
            "for this model (the `full` strategy has them, but costs ~5x more CPU)."
        ),
        (
            f"- Calibration: temperature scaling fitted on validation (T = {run.get('temperature', float('nan')):.3f}) "
            "is baked into the last layer: the served probabilities are the calibrated ones."
        ),
        (
            "- Input: uint8 RGB `[N, 224, 224, 3]`, the whole image resized to 224x224 with antialiased bilinear "
            "resampling, no crop (`backend/inference/preprocess.py`); the [-1, 1] scaling is inside the model. "
            f"Output: float32 `[N, 7]` probabilities in the order {', '.join(LABELS)} (`labels.txt`)."
        ),
        "- Files: `model_repository/ham10000_mobilenetv2/{config.pbtxt, labels.txt, triage.json, 1/model.onnx}`.",
        "",
        "## Data",
        "",
        (
            "HAM10000: Tschandl, P., Rosendahl, C. & Kittler, H. The HAM10000 dataset, a large collection of "
            "multi-source dermatoscopic images of common pigmented skin lesions. Sci. Data 5, 180161 (2018), "
            "doi:10.1038/sdata.2018.161; data: Harvard Dataverse, doi:10.7910/DVN/DBW86T. **Licence CC BY-NC 4.0 "
            "(attribution, non-commercial)**: this model is derived from it; check the licence before any "
            "commercial use."
        ),
        "",
        (
            "- 10,015 dermoscopic images of 7,470 lesions, 7 classes (nv 6705, mel 1113, bkl 1099, bcc 514, "
            "akiec 327, vasc 142, df 115)."
        ),
        (
            "- Trained on the **downscaled 200x150 copies** (`images_200x150`) of the 600x450 originals, upsampled "
            "to 224x224 by the preprocessing: fine detail of the originals was not available to the model."
        ),
        (
            f"- Split: lesion-grouped and stratified 70/15/15 (seed 42; no lesion on two sides, class proportions "
            f"within 0.1 points of the whole): train {run.get('n', {}).get('train', '?')}, validation "
            f"{run.get('n', {}).get('val', '?')}, test {result['n']} images. Validation chose the checkpoint, the "
            "temperature and the triage thresholds; the test split was used once, for the numbers below."
        ),
        "",
        "## Performance (held-out test split, lesion-grouped)",
        "",
        "95% intervals: bootstrap over lesions (1,000 resamples).",
        "",
        "| metric | result | goal | reached |",
        "|---|---|---|---|",
    ]
    for key, label in (
        ("balanced_accuracy", "balanced accuracy"),
        ("macro_auc", "macro one-vs-rest AUC"),
        ("mel_sensitivity_at_referral", "melanoma sensitivity at the referral threshold"),
    ):
        v = m.get(key)
        reached = "yes" if v is not None and v >= GOALS[key] else "**no**"
        L.append(f"| {label} | {_ci(result, key)} | >= {GOALS[key]} | {reached} |")
    L += [
        f"| accuracy | {_ci(result, 'accuracy')} | | |",
        (
            f"| malignant ({'+'.join(MALIGNANT)}) sensitivity at referral | "
            f"{_ci(result, 'malignant_sensitivity_at_referral')} | | |"
        ),
        f"| benign specificity at referral | {_ci(result, 'benign_specificity_at_referral')} | | |",
        f"| fraction of cases referred | {_ci(result, 'fraction_referred')} | | |",
        (
            f"| melanoma sensitivity / specificity (argmax) | {m['mel_sensitivity_argmax']:.3f} / "
            f"{m['mel_specificity_argmax']:.3f} | | |"
        ),
        "",
        "Per class (test): "
        + "; ".join(
            f"{lab} recall {v['recall']:.2f}, AUC {v['auc']:.3f} (n={v['support']})"
            for lab, v in result["per_class"].items()
        )
        + ".",
        "",
    ]
    if m.get("fraction_referred", 0) > 0.5:
        L += [
            (
                f"The melanoma-sensitivity goal is met only by referring {m['fraction_referred']:.0%} of all test "
                f"cases (benign specificity {m.get('benign_specificity_at_referral', float('nan')):.2f}): at this "
                "operating point the referral flag is a safety net, not a discriminating test."
            ),
            "",
        ]
    cal = result["calibration"]
    if "uncalibrated" in cal:
        L.append(
            f"Calibration: test ECE {cal['uncalibrated']['ece']:.3f} before temperature scaling, "
            f"{cal['calibrated']['ece']:.3f} after."
        )
    if "baseline" in result:
        b = result["baseline"]
        t = b["mcnemar_cnn_vs_svm"]
        L.append(
            f"SVM baseline on handcrafted colour/texture features, same split: balanced accuracy "
            f"{b['metrics']['balanced_accuracy']:.3f}, macro AUC {b['metrics']['macro_auc']:.3f}, accuracy "
            f"{b['metrics']['accuracy']:.3f}. McNemar's paired test on per-image correctness (accuracy): "
            f"CNN right/SVM wrong {t['a_right_b_wrong']}, CNN wrong/SVM right {t['a_wrong_b_right']}, "
            f"p = {t['p_value']:.2g}."
        )
        d = b.get("paired_difference_cnn_minus_svm", {})
        if d:
            L.append(
                "Paired lesion-clustered bootstrap, CNN minus SVM: "
                + "; ".join(
                    f"{k.replace('_', ' ')} {v['difference']:+.3f} (95% CI {v['ci95'][0]:+.3f} to {v['ci95'][1]:+.3f})"
                    for k, v in d.items()
                )
                + "."
            )
    if result.get("compare"):
        L.append("")
        L.append("Split leakage (same data, head-only recipe, each run on its own test split):")
        L.append("")
        for c in result["compare"]:
            L.append(
                f"- `{c['run']}`: {c['split_kind']}-level split ({c['shared_lesions']} lesions on several "
                f"sides): accuracy {_ci(c, 'accuracy')}, balanced accuracy {_ci(c, 'balanced_accuracy')}, "
                f"macro AUC {_ci(c, 'macro_auc')}."
            )
    if triage:
        v = triage.get("validation", {})
        ref = v.get("malignant_referral", {})
        low = v.get("low_confidence", {})
        L += [
            "",
            "## Triage thresholds (`triage.json`, chosen on validation only)",
            "",
            (
                f"- Referral: refer when p(mel)+p(bcc)+p(akiec) >= **{triage['malignant_threshold']:.4f}**, the highest "
                f"threshold with >= {triage['target_sensitivity']:.0%} malignant sensitivity on validation "
                f"(validation: sensitivity {ref.get('sensitivity', float('nan')):.3f}, specificity "
                f"{ref.get('specificity', float('nan')):.3f}, {ref.get('fraction_flagged', float('nan')):.1%} of cases "
                "referred)."
            ),
            (
                f"- Low confidence: top-class probability below **{triage['low_confidence_threshold']:.2f}** is "
                f"flagged for review ({triage.get('low_confidence_rule', '')}); validation: "
                f"{low.get('fraction_flagged_for_review', float('nan')):.1%} of cases flagged, accuracy "
                f"{low.get('accuracy_flagged') or float('nan'):.3f} among them and "
                f"{low.get('accuracy_not_flagged') or float('nan'):.3f} among the others. `triage.json` lists "
                "the trade-off for other thresholds."
            ),
        ]
        learned = triage.get("referral_model")
        if learned:
            oof = learned.get("validation_out_of_fold", {})
            L.append(
                "- Learned referral rule (used by the case workflow instead of the summed threshold, "
                "`docs/triage.md`): a logistic regression on the 7 log-probabilities, refer when its score >= "
                f"**{learned['threshold']:.4f}**, chosen for >= {learned['target_sensitivity']:.0%} malignant "
                "sensitivity on lesion-grouped out-of-fold validation scores (out of fold: sensitivity "
                f"{oof.get('malignant_sensitivity', float('nan')):.3f}, benign specificity "
                f"{oof.get('benign_specificity', float('nan')):.3f}, "
                f"{oof.get('fraction_referred', float('nan')):.1%} of cases referred)."
            )
    if export:
        L += [
            "",
            "## Export",
            "",
            (
                f"- ONNX (opset 17, dynamic batch): {export.get('onnx_size_mb')} MB; ONNX Runtime vs Keras on "
                f"{export.get('parity_images')} real images: max |difference| {export.get('parity_max_abs_diff', 0):.2e} "
                "(the export fails above 1e-4)."
            ),
        ]
        if cam := export.get("class_maps"):
            L.append(
                f"- Second output `class_maps` {cam['class_maps_shape']} (class-activation maps: the heatmaps of the "
                "case result, where the model looked, not a diagnosis): first output bit-identical "
                f"{cam['first_output_bit_identical']}, softmax of the spatial mean vs probabilities max |difference| "
                f"{cam['softmax_of_mean_map_max_abs_diff']:.2e} on {cam['n_images']} real images."
            )
        for kind, t in export.get("tflite", {}).items():
            L.append(
                f"- TFLite {kind}: {t['size_mb']} MB, top-1 agreement with Keras {t['top1_agreement_vs_keras']:.3f}, "
                f"max |difference| {t['max_abs_diff_vs_keras']:.3g} on {t['n_images']} real images, "
                f"{t['ms_per_image']} ms/image on this shared, loaded 2-core CPU (indicative only; files not committed, rebuild "
                "with `--tflite`)."
            )
        L.append(
            "- Triton (GPU, production): `platform: onnxruntime_onnx`, dynamic batching, KIND_GPU, TensorRT FP16 "
            "accelerator, warmup. TensorRT FP16 was not measured here (no GPU): validate its agreement "
            "before relying on it."
        )
    L += [
        "",
        "## Limitations",
        "",
        (
            "- Seven classes only. Anything else (other tumours, inflammatory disease, non-lesion photos) still "
            "gets one of the seven labels; there is no out-of-distribution detection."
        ),
        "- Dermoscopic images only; not validated on clinical or smartphone photographs.",
        (
            "- HAM10000 comes from two centres (Vienna, Queensland) and is dominated by fair skin (Fitzpatrick I-III); "
            "performance on darker skin types is unknown and likely worse."
        ),
        "- Rare classes (df, vasc, akiec) have few test cases: their per-class numbers have wide intervals.",
        (
            "- Trained on downscaled copies, on a 2-core CPU with a limited budget: the recipe fine-tunes only the "
            "upper backbone with flip/rotation augmentation. It is below the published state of the art (ISIC 2018 "
            "winner: 0.885 balanced accuracy with ensembles) and below its own goals."
        ),
        (
            "- Thresholds were chosen on a validation split from the same distribution; a new clinic, camera or "
            "population needs its own validation before the thresholds are trusted."
        ),
        "",
        "## Reproduce",
        "",
        "```bash",
        *(commands or []),
        "```",
        "",
    ]
    if run.get("command"):
        L += [f"Training command recorded in the run's run.json: `{run['command']}`.", ""]
    notes = out / "notes.md"
    if notes.exists():
        L += ["## Notes", "", notes.read_text().strip(), ""]
    path = out / "MODEL_CARD.md"
    path.write_text("\n".join(L))
    return path
