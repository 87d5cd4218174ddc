"""``hf-galaxy demo``: the whole pipeline offline on the embedded default (synthetic Galaxy Zoo 1).

synthetic GZ1 catalogue + cutouts -> ``load_galaxy_dataset`` -> summary and sample grid -> a small CNN trained
from scratch (the demo's model) -> evaluation, plots -> the LoRA path: LoRA on a small ViT built from a config
-> model cards -> dry-run publish folders -> a comparison of the two.

No pretrained weights can be downloaded here, so the demo's model is a CNN trained fully from random weights
(``recipes/configs/scratch_cnn.yaml``): it learns spiral handedness within minutes on a CPU. LoRA is meant for
pretrained backbones (``google/vit-base-patch16-224-in21k`` in ``recipes/configs/vit_lora.yaml``); the demo still
runs it on a ViT with random weights (``recipes/configs/vit_lora_demo.yaml``) so that the LoRA flow (adapter,
merged model, adapter card) runs end to end. Both configurations are embedded here (tests keep them equal to the
YAML files) so that the demo also runs from an installed wheel.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

HELP = "run the whole pipeline offline on a synthetic Galaxy Zoo 1 set (no network, no GPU)"

#: ``recipes/configs/scratch_cnn.yaml`` without the data and output keys: the demo's model.
DEMO_CNN_CONFIG: dict[str, Any] = {
    "model_config": "resnet-mini",
    "learning_rate": 1.0e-3,
    "weight_decay": 0.05,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "num_train_epochs": 20,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "eval_strategy": "epoch",
    "save_strategy": "no",
    "logging_steps": 10,
    "dataloader_num_workers": 0,
    "seed": 42,
}

#: ``recipes/configs/vit_lora_demo.yaml`` without the data keys: the LoRA path.
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
    "num_train_epochs": 20,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "eval_strategy": "epoch",
    "save_strategy": "no",
    "logging_steps": 20,
    "dataloader_num_workers": 0,
    "seed": 42,
}

DEMO_REPO_ID = "hf-galaxy/resnet-mini-galaxy-zoo-1-synthetic-demo"
DEMO_LORA_REPO_ID = "hf-galaxy/vit-lora-galaxy-zoo-1-synthetic-demo"
_KEEP = (
    "test_accuracy",
    "test_macro_f1",
    "test_top2_accuracy",
    "test_ece",
    "test_vote_rmse",
    "test_recall_clockwise_spiral",
    "test_recall_anticlockwise_spiral",
    "train_runtime",
    "eval_accuracy",
)


def train_evaluate_publish(
    dsd,
    out: Path,
    config: dict[str, Any],
    *,
    lora: bool,
    repo_id: str,
    step: str,
    epochs: float | None = None,
) -> dict[str, Any]:
    """Train ``config`` on ``dsd`` into ``out``, evaluate, plot, write the card and a dry-run publish folder
    (``out.parent / f"publish_dry_run{suffix}"``); returns the run's summary."""
    from hf_galaxy import finetune
    from hf_galaxy.hub import publish, write_model_card

    options = {**config, "report_to": "none", "use_cpu": True, "disable_tqdm": False}
    if epochs is not None:
        options["num_train_epochs"] = epochs
    what = "LoRA fine-tune of a small ViT" if lora else "full training of a small CNN from scratch"
    print(
        f"{step} {what} built from the config {options['model_config']!r} "
        f"({options['num_train_epochs']} epochs, CPU) -> {out}"
    )
    metrics = finetune(dsd, output_dir=out, lora=lora, **options).metrics
    names = dsd["train"].features["label"].names
    print(
        f"      test split: accuracy {metrics.get('test_accuracy', float('nan')):.3f} (chance {1 / len(names):.3f}), "
        f"macro-F1 {metrics.get('test_macro_f1', float('nan')):.3f}, ECE {metrics.get('test_ece', float('nan')):.3f}, "
        f"clockwise/anticlockwise recall {metrics.get('test_recall_clockwise_spiral', float('nan')):.2f}/"
        f"{metrics.get('test_recall_anticlockwise_spiral', float('nan')):.2f}; "
        f"plots: {', '.join(p.name for p in sorted(out.glob('*.png')))}"
    )
    card = write_model_card(out, repo_id=repo_id)
    dry = out.parent / ("publish_dry_run" if not lora else "publish_dry_run_lora")
    if dry.exists():
        shutil.rmtree(dry)
    result = publish(out, repo_id, dry_run_dir=dry)
    return {
        "metrics": {k: metrics[k] for k in _KEEP if k in metrics},
        "model_dir": str(out),
        "model_card": str(card),
        "dry_run_dir": str(dry),
        "published_files": sorted(str(f) for f in result.files),
        "config": json.loads(json.dumps(config)),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output_dir", default="demo_output", help="where everything is written")
    parser.add_argument("-n", "--num_galaxies", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image_size", type=int, default=64, help="size the cutouts are prepared at")
    parser.add_argument("--num_proc", type=int, default=2, help="processes for generation and preparation")
    parser.add_argument("--epochs", type=float, default=None, help="override both runs' training epochs")
    parser.add_argument("--no_train", action="store_true", help="stop after the dataset summary and grid")
    parser.add_argument("--no_lora", action="store_true", help="skip the LoRA run (train only the CNN)")
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
    print(f"[1/6] synthesising {args.num_galaxies} Galaxy Zoo 1 galaxies (424x424 JPEG) in {out / 'data'}")
    zoo = make_galaxy_zoo(out / "data", args.num_galaxies, seed=args.seed, num_proc=args.num_proc)
    print(f"[2/6] load_galaxy_dataset({zoo.catalog_path}, image_size={args.image_size})")
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
        summary.update(
            train_evaluate_publish(
                dsd,
                out / "model",
                DEMO_CNN_CONFIG,
                lora=False,
                repo_id=DEMO_REPO_ID,
                step="[3/6]",
                epochs=args.epochs,
            )
        )
        print(
            f"[4/6] model card {summary['model_card']}; dry-run publish of {DEMO_REPO_ID} in {summary['dry_run_dir']}"
        )
        runs = [("CNN from scratch (resnet-mini, full)", summary["metrics"])]
        if not args.no_lora:
            summary["lora"] = train_evaluate_publish(
                dsd, out / "vit_lora", DEMO_CONFIG, lora=True, repo_id=DEMO_LORA_REPO_ID, step="[5/6]",
                epochs=args.epochs,
            )  # fmt: skip
            runs.append(("LoRA on a ViT from a config (vit-mini)", summary["lora"]["metrics"]))
        print("[6/6] test split of the two runs:")
        print(
            f"      {'model':<40} {'accuracy':>8} {'macro-F1':>8} {'ECE':>6} {'cw/acw recall':>14} {'train s':>8}"
        )
        for name, m in runs:
            recall = f"{m.get('test_recall_clockwise_spiral', float('nan')):.2f}/{m.get('test_recall_anticlockwise_spiral', float('nan')):.2f}"
            print(
                f"      {name:<40} {m.get('test_accuracy', float('nan')):>8.3f} {m.get('test_macro_f1', float('nan')):>8.3f} "
                f"{m.get('test_ece', float('nan')):>6.3f} {recall:>14} {m.get('train_runtime', float('nan')):>8.0f}"
            )
    summary["seconds_total"] = round(time.perf_counter() - t0, 1)
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"done in {summary['seconds_total']} s; summary: {out / 'demo_summary.json'}")
    return 0
