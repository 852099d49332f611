"""`dermalink bench paired`: the working tree's case path against a baseline commit, side by side.

This shared host's speed drifts by a quarter within minutes (the bare model's batch-1 latency went from
8 to 6 to 10 ms within one hour), so two `bench api` runs cannot show a change worth a few per cent.
Here two `dermalink serve` processes run at once on the embedded defaults, one from the working tree and
one from a git worktree of ``--baseline`` (same interpreter, same packages, same model), and the load
alternates between them: at concurrency 1 one submission to each in turn (who goes first alternates
too), at higher concurrency rounds of ``3 × concurrency`` submissions to each in turn. The drift then
hits both alike, and the paired differences show what the change did. Each server's CPU time per
request comes from its process group in /proc.
"""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.api import Submitter, serving
from benchmarks.triton import CpuMeter, command_line, machine_columns, machine_description, machine_line


@dataclass(frozen=True)
class PairedConfig:
    baseline: str  # a git revision
    images_dir: Path
    out_dir: Path
    model_repository: Path
    model_name: str = "ham10000_mobilenetv2"
    concurrency: tuple[int, ...] = (1, 16)
    pairs: int = 80  # submissions to each server at concurrency 1
    rounds: int = 4  # rounds per server at each higher concurrency
    warmup: int = 6
    name: str = "paired"
    workers: int = 1  # server processes of each side (`dermalink serve --workers N`)


@contextmanager
def worktree(revision: str):  # type: ignore[no-untyped-def]
    """A detached git worktree of ``revision`` in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="dermalink-baseline-") as tmp:
        path = Path(tmp) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), revision], check=True, capture_output=True
        )
        try:
            yield path
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(path)], check=False, capture_output=True
            )


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout.strip()


def run(config: PairedConfig, *, log=print) -> dict:  # type: ignore[no-untyped-def]
    images = [p.read_bytes() for p in sorted(config.images_dir.glob("*.jpg"))]
    if not images:
        raise FileNotFoundError(f"no .jpg images in {config.images_dir}")
    revision, head = (_git("rev-parse", "--short", rev) for rev in (config.baseline, "HEAD"))
    changed = " with uncommitted changes" if _git("status", "--porcelain", "--untracked-files=no") else ""
    before = machine_description()
    with ExitStack() as stack:
        tree = stack.enter_context(worktree(revision))
        sides = {}
        for label, checkout in ((f"baseline {revision}", tree), (f"working tree ({head}{changed})", None)):
            server = stack.enter_context(
                serving(config.model_repository, config.model_name, workers=config.workers, checkout=checkout)
            )
            sides[label] = (server, Submitter(server, images))
            stack.callback(sides[label][1].close)
        for _, submit in sides.values():
            for i in range(config.warmup):
                submit(i)
        labels = list(sides)
        rows: list[dict] = []
        for concurrency in config.concurrency:
            rounds = config.pairs if concurrency == 1 else config.rounds
            count = 1 if concurrency == 1 else 3 * concurrency
            log(f"concurrency {concurrency}: {rounds} rounds of {count} submission(s) to each server ...")
            for r in range(rounds):
                for label in labels if r % 2 == 0 else labels[::-1]:
                    server, submit = sides[label]
                    with CpuMeter(server.pid) as meter:
                        start = time.perf_counter()
                        with ThreadPoolExecutor(max_workers=concurrency) as pool:
                            results = list(pool.map(submit, range(r * count, (r + 1) * count)))
                        seconds = time.perf_counter() - start
                    rows.append(
                        {
                            "server": label,
                            "concurrency": concurrency,
                            "round": r,
                            "requests": count,
                            "errors": sum(status != 201 for _, status, _ in results),
                            "p50_ms": statistics.median(ms for ms, _, _ in results),
                            "req_per_s": count / seconds,
                            "server_cpu_s": meter.group_used,
                        }
                    )
    result = {
        "machine": before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "labels": labels,
        "rows": rows,
    }
    result["summary"] = summarise(rows, labels, config.concurrency)
    result["files"] = [str(p) for p in write_outputs(result, config)]
    return result


def summarise(rows: list[dict], labels: list[str], levels: tuple[int, ...]) -> list[dict]:
    """Per concurrency and side: the median of the rounds' p50 and requests/s, with the median of the
    paired differences (round r of the working tree minus round r of the baseline); server CPU per request
    over all the rounds (/proc counts in clock ticks, too coarse for one request)."""
    baseline, change = labels
    out = []
    for concurrency in levels:
        side = {
            label: [r for r in rows if r["server"] == label and r["concurrency"] == concurrency]
            for label in labels
        }
        line: dict = {
            "concurrency": concurrency,
            "errors": sum(r["errors"] for r in side[baseline] + side[change]),
        }
        for key in ("p50_ms", "req_per_s"):
            a, b = ([r[key] for r in side[label]] for label in (baseline, change))
            line[key] = (
                statistics.median(a),
                statistics.median(b),
                statistics.median(y - x for x, y in zip(a, b, strict=True)),
            )
        a, b = (
            sum(r["server_cpu_s"] for r in side[label]) * 1000 / sum(r["requests"] for r in side[label])
            for label in (baseline, change)
        )
        line["server_core_ms_per_request"] = (a, b, b - a)
        out.append(line)
    return out


def write_outputs(result: dict, config: PairedConfig) -> list[Path]:
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / f"{config.name}.csv", out / f"{config.name}.md"
    host = result["machine"]
    machine = machine_columns(host, result["load_after"])
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*result["rows"][0], *machine])
        writer.writeheader()
        writer.writerows({**row, **machine} for row in result["rows"])
    baseline, change = result["labels"]
    lines = [
        f"# The case path: {change} against {baseline}, side by side",
        "",
        f"- Command: `{command_line('paired')}`",
        f"- Machine: {machine_line(host)}",
        (
            f"- Load average (1, 5, 15 min) {host['loadavg']} before the run, {result['load_after']} after it. "
            "Both servers ran at once and the load alternated between them, so the host's drift hits both alike: "
            "compare the two columns of one row, and only within this file."
        ),
        (
            "- Each request is `POST /api/v1/cases` with one real HAM10000 image (600×450 JPEG), answered with its "
            "analysis (SQLite, the embedded defaults, "
            f"{'one server process' if config.workers == 1 else f'{config.workers} server processes'} each)."
        ),
        "",
        "| concurrency | | baseline | working tree | difference |",
        "|---:|---|---:|---:|---:|",
    ]
    names = {
        "p50_ms": "p50 ms",
        "req_per_s": "requests/s",
        "server_core_ms_per_request": "server CPU, core-ms a request",
    }
    for line in result["summary"]:
        for key, name in names.items():
            if key == "req_per_s" and line["concurrency"] == 1:
                continue  # one request a round: its latency again
            a, b, diff = line[key]
            lines.append(f"| {line['concurrency']} | {name} | {a:.1f} | {b:.1f} | {diff:+.1f} |")
    errors = sum(line["errors"] for line in result["summary"])
    lines += [
        "",
        f"Errors: {errors}. A round is one submission at concurrency 1 and 3 × concurrency submissions above",
        "it; p50 and requests/s are medians over the rounds, their difference the median of the paired",
        "differences (round r against round r); server CPU is over all rounds (/proc's clock ticks are too",
        "coarse for one request). Every round is in the CSV.",
    ]
    md_path.write_text("\n".join(lines) + "\n")
    return [csv_path, md_path]
