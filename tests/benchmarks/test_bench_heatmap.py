"""A smoke run of `python -m benchmarks.heatmap` on two real images with the shipped model."""

from __future__ import annotations

import json
import shutil


def test_bench_heatmap_smoke(tmp_path, shared_dir):
    from benchmarks.heatmap import main

    images = tmp_path / "images"
    images.mkdir()
    for source in sorted((shared_dir / "data" / "ham10000" / "full_size").glob("*.jpg"))[:2]:
        shutil.copy(source, images / source.name)
    main(["--images", str(images), "--repeats", "1", "--out", str(tmp_path / "out")])
    result = json.loads((tmp_path / "out" / "heatmap.json").read_text())
    assert result["images"] == 2 and result["heatmap_sealed_kb_median"] > 1
    assert (
        result["heatmap_render_seal_store"]["median_ms"] > result["heatmap_render_png_only"]["median_ms"] > 0
    )
    report = (tmp_path / "out" / "heatmap.md").read_text()
    assert "vector extensions" in report and "first view" in report
