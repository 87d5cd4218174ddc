"""``hf-galaxy demo``: the whole pipeline offline on the embedded default (synthetic Galaxy Zoo 1).

synthetic GZ1 catalogue + cutouts -> ``load_galaxy_dataset`` -> summary and sample grid -> LoRA fine-tune of
a small ViT built from a config -> evaluation, plots -> model card -> dry-run publish folder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HELP = "run the whole pipeline offline on a synthetic Galaxy Zoo 1 set (no network, no GPU)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default="demo_output", help="where everything is written")
    parser.add_argument("-n", "--num-galaxies", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=64, help="size the cutouts are prepared at")
    parser.add_argument("--num-proc", type=int, default=2, help="processes for generation and preparation")
    parser.add_argument("--epochs", type=float, default=None, help="override the demo's training epochs")
    parser.add_argument("--no-train", action="store_true", help="stop after the dataset summary and grid")


def _print_summary(dsd) -> None:
    names = dsd["train"].features["label"].names
    width = max(len(n) for n in names)
    print(f"\n{'class':<{width}}  " + "  ".join(f"{s:>10}" for s in dsd))
    for name in names:
        counts = [dsd.galaxy_info["class_balance"][s][name] for s in dsd]
        print(f"{name:<{width}}  " + "  ".join(f"{c:>10}" for c in counts))
    print(dsd.report.summary())


def run(args: argparse.Namespace) -> int:
    from hf_galaxy.dataset import load_galaxy_dataset
    from hf_galaxy.synthetic import make_galaxy_zoo
    from hf_galaxy.viz import sample_grid

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"[1/5] synthesising {args.num_galaxies} Galaxy Zoo 1 galaxies (424x424 JPEG) in {out / 'data'}")
    zoo = make_galaxy_zoo(out / "data", args.num_galaxies, seed=args.seed, num_proc=args.num_proc)
    print(f"[2/5] load_galaxy_dataset({zoo.catalog_path}, image_size={args.image_size})")
    dsd = load_galaxy_dataset(zoo.catalog_path, zoo.image_dir, image_size=args.image_size, seed=args.seed,
                              cache_dir=out / "cache", num_proc=args.num_proc)
    dsd.galaxy_info["synthetic"] = True  # the model card says so
    _print_summary(dsd)
    grid = sample_grid(dsd["train"], out / "sample_grid.png", title="Synthetic Galaxy Zoo 1 (train split)")
    print(f"sample grid: {grid}")
    summary = {"dataset": dsd.galaxy_info, "seconds_data": round(time.perf_counter() - t0, 1)}
    if not args.no_train:
        from hf_galaxy.demo_pipeline import train_evaluate_publish

        summary.update(train_evaluate_publish(dsd, out, seed=args.seed, epochs=args.epochs))
    summary["seconds_total"] = round(time.perf_counter() - t0, 1)
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"done in {summary['seconds_total']} s; summary: {out / 'demo_summary.json'}")
    return 0
