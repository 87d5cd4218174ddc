"""Repeated-split cross-validation of a training config on one dataset: mean and spread of its accuracy.

Runs ``hf-galaxy train --config CONFIG --dataset DATA --split_seed K`` for K in ``--split_seeds`` (each seed
draws a different stratified 80/10/10 train/validation/test split of the same galaxies), each in its own
process, and prints per-run and mean +- standard deviation of the validation and test accuracy and the
wall-clock time. Extra options after ``--`` go to every run, so variants are compared on the same splits::

    python benchmarks/bench_scratch_cv.py --config recipes/configs/scratch_cnn.yaml \\
        --dataset ../shared/data/real_dev/gz2_kaggle_train --split_seeds 0 1 2
    python benchmarks/bench_scratch_cv.py ... -- --image_size 96

The summary is also written as JSON to ``--out``/cv_summary.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split_seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="outputs/bench_scratch_cv")
    parser.add_argument("extra", nargs="*", help="options passed to every run (after --)")
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for seed in args.split_seeds:
        run_dir = out / f"split_seed_{seed}"
        cmd = [
            sys.executable,
            "-m",
            "hf_galaxy.cli",
            "train",
            "--config",
            args.config,
            "--dataset",
            args.dataset,
        ]
        cmd += [
            "--split_seed",
            str(seed),
            "--output_dir",
            str(run_dir),
            "--disable_tqdm",
            "true",
            *args.extra,
        ]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        seconds = time.perf_counter() - start
        results = json.loads((run_dir / "all_results.json").read_text())
        rows.append(
            {
                "split_seed": seed,
                "eval_accuracy": results["eval_accuracy"],
                "test_accuracy": results["test_accuracy"],
                "test_macro_f1": results.get("test_macro_f1"),
                "seconds": round(seconds, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    summary = {"config": args.config, "dataset": args.dataset, "extra": args.extra, "runs": rows}
    for key in ("eval_accuracy", "test_accuracy", "seconds"):
        values = [r[key] for r in rows]
        summary[key] = {
            "mean": round(statistics.mean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "min": min(values),
            "max": max(values),
        }
    out.mkdir(parents=True, exist_ok=True)
    (out / "cv_summary.json").write_text(json.dumps(summary, indent=2))
    for key in ("eval_accuracy", "test_accuracy", "seconds"):
        s = summary[key]
        print(f"{key}: {s['mean']:.3f} +- {s['std']:.3f} (min {s['min']:.3f}, max {s['max']:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
