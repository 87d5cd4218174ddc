"""Whole-tree models: the Dirichlet-multinomial likelihood against per-question soft cross-entropy.

Trains ``recipes/configs/tree_demo.yaml`` (a from-scratch CNN on the synthetic GZ DECaLS tree, counts
drawn through the GZD-5 tree from the rendered morphology) once per loss on the same galaxies, images,
splits and budget, for each ``--split_seeds`` K (each its own stratified 80/10/10 split), each run in its own
process. Prints per question the test vote-fraction RMSE and calibration error (15 bins) of both losses, as
mean +- standard deviation over the splits, beside a constant baseline (every galaxy predicted the training
split's mean fractions), and writes them to ``--out``/tree_loss_summary.json and ``tree_loss_table.md``::

    python benchmarks/bench_tree_loss.py --n 3000 --split_seeds 0 1 2
    python benchmarks/bench_tree_loss.py ... -- --num_train_epochs 5     # options after -- go to every run
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LOSSES = ("dirichlet", "soft_ce")
CONFIG = Path(__file__).parents[1] / "recipes" / "configs" / "tree_demo.yaml"


def constant_baseline(catalog: Path, split_seed: int) -> dict[str, float]:
    """Test metrics of predicting the training split's mean within-question fractions for every galaxy."""
    from hf_galaxy.data.catalogs import read_catalog
    from hf_galaxy.data.dataset import assign_splits
    from hf_galaxy.data.labels import make_labels
    from hf_galaxy.metrics import tree_metrics

    lab = make_labels(read_catalog(catalog), label_scheme="tree")
    split = assign_splits(lab.labels, lab.table["id"].astype(str).to_numpy(), split_seed, (0.8, 0.1, 0.1))
    layout, counts = lab.tree, lab.answer_counts
    train, test = counts[split == "train"], counts[split == "test"]
    mean = np.nan_to_num(np.nanmean(layout.fractions(train), axis=0), nan=0.0)
    return tree_metrics(np.tile(mean, (len(test), 1)), test, layout)


def _stats(values: list[float]) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "-"
    mean = statistics.mean(values)
    return f"{mean:.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="synthetic galaxies")
    parser.add_argument("--split_seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="outputs/bench_tree_loss")
    parser.add_argument("extra", nargs="*", help="options passed to every run (after --)")
    args = parser.parse_args()
    out = Path(args.out)
    data_dir = out / "synthetic_data"  # one set of galaxies and images for every run
    runs: list[dict] = []
    for seed in args.split_seeds:
        for loss in LOSSES:
            run_dir = out / f"{loss}_split{seed}"
            cmd = [
                sys.executable, "-m", "hf_galaxy.cli", "train", "--config", str(CONFIG),
                "--dataset", f"synthetic:{args.n}", "--data_dir", str(data_dir), "--tree_loss", loss,
                "--split_seed", str(seed), "--output_dir", str(run_dir), "--disable_tqdm", "true", *args.extra,
            ]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(cmd, check=True)
            results = json.loads((run_dir / "all_results.json").read_text())
            runs.append(
                {
                    "loss": loss,
                    "split_seed": seed,
                    "seconds": round(time.perf_counter() - start, 1),
                    **results,
                }
            )
            print(
                json.dumps({k: runs[-1][k] for k in ("loss", "split_seed", "seconds", "test_tree_rmse")}),
                flush=True,
            )
    catalog = data_dir / "catalog_decals.csv"
    baselines = [constant_baseline(catalog, seed) for seed in args.split_seeds]
    from hf_galaxy.data.catalogs import read_catalog
    from hf_galaxy.data.tree import TreeLayout

    layout = TreeLayout.from_tree(read_catalog(catalog).tree)
    rows = []
    for q in [*layout.questions, "tree"]:
        row = {"question": q}
        for metric in ("rmse", "calibration"):
            for loss in LOSSES:
                row[f"{loss}_{metric}"] = _stats([r[f"test_{q}_{metric}"] for r in runs if r["loss"] == loss])
            row[f"constant_{metric}"] = _stats([b[f"{q}_{metric}"] for b in baselines])
        rows.append(row)
    header = ["question"] + [f"{k}_{m}" for m in ("rmse", "calibration") for k in (*LOSSES, "constant")]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    seconds = {loss: _stats([r["seconds"] for r in runs if r["loss"] == loss]) for loss in LOSSES}
    out.mkdir(parents=True, exist_ok=True)
    summary = {"n": args.n, "split_seeds": args.split_seeds, "extra": args.extra, "rows": rows,
               "seconds": seconds, "runs": runs}  # fmt: skip
    (out / "tree_loss_summary.json").write_text(json.dumps(summary, indent=2))
    (out / "tree_loss_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"seconds per run: {seconds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
