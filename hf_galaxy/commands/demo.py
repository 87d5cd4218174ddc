"""``hf-galaxy demo``: the whole pipeline offline on the embedded default (synthetic Galaxy Zoo 1).

synthetic GZ1 catalogue + cutouts -> ``load_galaxy_dataset`` -> summary and sample grid -> LoRA fine-tune of
a small ViT built from a config -> evaluation, plots -> model card -> dry-run publish folder.

The hyper-parameters are those of ``recipes/configs/vit_lora_demo.yaml`` (a test keeps the two equal), embedded
here so that the demo also runs from an installed wheel.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

HELP = "run the whole pipeline offline on a synthetic Galaxy Zoo 1 set (no network, no GPU)"


#: ``recipes/configs/vit_lora_demo.yaml`` without the data keys (the demo passes its DatasetDict directly).
DEMO_CONFIG: dict[str, Any] = {
    "model_config": "vit-mini",
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.1,
    "lora_target_modules": "all-linear",
    "lora_modules_to_save": "embeddings,layernorm_before,layernorm_after,layernorm",
    "learning_rate": 2.0e-3,
    "warmup_steps": 0.05,
    "weight_decay": 0.01,
    "num_train_epochs": 40,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "eval_strategy": "epoch",
    "save_strategy": "no",
    "logging_steps": 20,
    "dataloader_num_workers": 0,
    "seed": 42,
}

DEMO_REPO_ID = "hf-galaxy/vit-lora-galaxy-zoo-1-synthetic-demo"


def train_evaluate_publish(dsd, out: Path, *, seed: int = 0, epochs: float | None = None) -> dict[str, Any]:
    """Fine-tune, evaluate, plot, write the card and a dry-run publish folder under ``out``; returns a summary."""
    from hf_galaxy import finetune
    from hf_galaxy.hub import publish, write_model_card

    model_dir = out / "model"
    options = {**DEMO_CONFIG, "report_to": "none", "use_cpu": True, "disable_tqdm": False}
    if epochs is not None:
        options["num_train_epochs"] = epochs
    print(
        f"[3/5] LoRA fine-tune of a small ViT built from the config {options['model_config']!r} "
        f"({options['num_train_epochs']} epochs, CPU) -> {model_dir}"
    )
    metrics = finetune(dsd, output_dir=model_dir, lora=True, **options).metrics
    acc = metrics.get("test_accuracy")
    print(
        f"[4/5] test split: accuracy {acc:.3f} (chance {1 / len(dsd['train'].features['label'].names):.3f}), "
        f"macro-F1 {metrics.get('test_macro_f1', float('nan')):.3f}, ECE {metrics.get('test_ece', float('nan')):.3f}; "
        f"plots: {', '.join(p.name for p in sorted(model_dir.glob('*.png')))}"
    )
    card = write_model_card(model_dir, repo_id=DEMO_REPO_ID)
    dry = out / "publish_dry_run"
    if dry.exists():
        import shutil

        shutil.rmtree(dry)
    result = publish(model_dir, DEMO_REPO_ID, dry_run_dir=dry)
    print(f"[5/5] model card: {card}; dry-run publish of {DEMO_REPO_ID}: {len(result.files)} files in {dry}")
    keep = (
        "test_accuracy",
        "test_macro_f1",
        "test_top2_accuracy",
        "test_ece",
        "test_vote_rmse",
        "train_runtime",
        "eval_accuracy",
    )
    return {
        "metrics": {k: metrics[k] for k in keep if k in metrics},
        "model_dir": str(model_dir),
        "model_card": str(card),
        "dry_run_dir": str(dry),
        "published_files": sorted(str(f) for f in result.files),
        "config": json.loads(json.dumps(DEMO_CONFIG)),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output_dir", default="demo_output", help="where everything is written")
    parser.add_argument("-n", "--num_galaxies", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image_size", type=int, default=64, help="size the cutouts are prepared at")
    parser.add_argument("--num_proc", type=int, default=2, help="processes for generation and preparation")
    parser.add_argument("--epochs", type=float, default=None, help="override the demo's training epochs")
    parser.add_argument("--no_train", action="store_true", help="stop after the dataset summary and grid")
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch CPU threads (default 2). The figures are bit-for-bit reproducible at a fixed thread count "
        "on the same kind of CPU; another count changes the float rounding of every step, and over 2,000 "
        "steps the test accuracy with it",
    )


def _print_summary(dsd) -> None:
    names = dsd["train"].features["label"].names
    width = max(len(n) for n in names)
    print(f"\n{'class':<{width}}  " + "  ".join(f"{s:>10}" for s in dsd))
    for name in names:
        counts = [dsd.galaxy_info["class_balance"][s][name] for s in dsd]
        print(f"{name:<{width}}  " + "  ".join(f"{c:>10}" for c in counts))
    print(dsd.report.summary())


def run(args: argparse.Namespace) -> int:
    import torch

    from hf_galaxy.data.dataset import load_galaxy_dataset
    from hf_galaxy.data.synthetic import make_galaxy_zoo
    from hf_galaxy.plots import sample_grid

    torch.set_num_threads(args.threads)  # an entry point may pin it: the figures depend on the thread count
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"[1/5] synthesising {args.num_galaxies} Galaxy Zoo 1 galaxies (424x424 JPEG) in {out / 'data'}")
    zoo = make_galaxy_zoo(out / "data", args.num_galaxies, seed=args.seed, num_proc=args.num_proc)
    print(f"[2/5] load_galaxy_dataset({zoo.catalog_path}, image_size={args.image_size})")
    dsd = load_galaxy_dataset(
        zoo.catalog_path,
        zoo.image_dir,
        image_size=args.image_size,
        seed=args.seed,
        cache_dir=out / "cache",
        num_proc=args.num_proc,
    )
    dsd.galaxy_info["synthetic"] = True  # the model card says so
    _print_summary(dsd)
    grid = sample_grid(dsd["train"], out / "sample_grid.png", title="Synthetic Galaxy Zoo 1 (train split)")
    print(f"sample grid: {grid}")
    summary = {"dataset": dsd.galaxy_info, "seconds_data": round(time.perf_counter() - t0, 1)}
    summary["torch_threads"] = args.threads
    if not args.no_train:
        summary.update(train_evaluate_publish(dsd, out, seed=args.seed, epochs=args.epochs))
    summary["seconds_total"] = round(time.perf_counter() - t0, 1)
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"done in {summary['seconds_total']} s; summary: {out / 'demo_summary.json'}")
    return 0
