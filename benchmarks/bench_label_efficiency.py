"""Label efficiency: fine-tuning a ViT from a masked-autoencoder encoder versus from random weights.

1. Pretrain ``recipes/configs/vit_mae.yaml``'s encoder (vit-mini, 64 px) without labels on every image given
   with ``--unlabelled`` (default: a synthetic GZ1 set plus all real images under ``../shared/data``).
2. For each labelled set (``--datasets``: the synthetic GZ1 set and the real GZ2 development set) and each
   fraction of its training labels (``--fractions``), fully fine-tune the same ViT twice with the same options:
   from the MAE encoder and from random weights. The validation and test splits stay whole.

Prints one JSON line per run and a Markdown table (test accuracy, macro-F1), writes ``results.json`` and
``label_efficiency.png`` under ``--out``::

    python benchmarks/bench_label_efficiency.py --out outputs/bench_label_efficiency

The test galaxies of the synthetic set are also in the unlabelled pretraining images (as in practice, where the
unlabelled pool is the survey): the encoder saw their pixels, never their labels.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

#: the project's real data (``../shared/data`` next to the checkout; ``HF_GALAXY_SHARED_DATA`` overrides)
SHARED = Path(
    os.environ.get("HF_GALAXY_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
REAL_DEV = SHARED / "real_dev" / "gz2_kaggle_train"
FINETUNE = {
    "learning_rate": 5e-4,
    "weight_decay": 0.05,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "eval_strategy": "no",
    "save_strategy": "no",
    "logging_steps": 50,
    "dataloader_num_workers": 0,
    "report_to": "none",
    "use_cpu": True,
    "disable_tqdm": True,
}


def _labelled(name: str, work: Path, image_size: int, n_synthetic: int):
    from hf_galaxy.training.arguments import DataArguments
    from hf_galaxy.training.data import load_training_data

    if name == "synthetic":
        return load_training_data(
            f"synthetic:{n_synthetic}", DataArguments(image_size=image_size), data_dir=work / "synthetic_gz1"
        )
    return load_training_data(name, DataArguments(image_size=image_size))


def _plot(rows: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig = Figure(figsize=(4.2 * len(datasets), 3.4))
    for k, name in enumerate(datasets):
        ax = fig.add_subplot(1, len(datasets), k + 1)
        for init, style in (("mae", "o-"), ("scratch", "s--")):
            pts = sorted(
                (r["fraction"], r["test_accuracy"])
                for r in rows
                if r["dataset"] == name and r["init"] == init
            )
            if pts:
                ax.plot(*zip(*pts), style, label="MAE encoder" if init == "mae" else "random weights")
        ax.set_xscale("log")
        ax.set_xlabel("fraction of training labels")
        ax.set_ylabel("test accuracy")
        ax.set_title(Path(name).name if name != "synthetic" else "synthetic GZ1", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/bench_label_efficiency")
    parser.add_argument("--datasets", nargs="+", default=["synthetic", str(REAL_DEV)])
    parser.add_argument(
        "--unlabelled", nargs="+", default=None, help="pretraining sources (default: see above)"
    )
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.3, 1.0])
    parser.add_argument("--n_synthetic", type=int, default=2000)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--model_config", default="vit-mini")
    parser.add_argument("--pretrain_epochs", type=float, default=30)
    parser.add_argument("--finetune_epochs", type=float, default=30)
    parser.add_argument(
        "--norm_pix_loss",
        choices=["true", "false"],
        default=None,
        help="override vit_mae.yaml's norm_pix_loss (per-patch normalised targets)",
    )
    parser.add_argument("--encoder", default=None, help="reuse an MAE encoder directory (skip step 1)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import torch
    from transformers import TrainingArguments

    from hf_galaxy import finetune
    from hf_galaxy.training.arguments import PretrainArguments
    from hf_galaxy.training.parser import load_yaml_config
    from hf_galaxy.training.pretraining import run_pretraining

    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    labelled = {name: _labelled(name, out, args.image_size, args.n_synthetic) for name in args.datasets}

    encoder = Path(args.encoder) if args.encoder else out / "mae_encoder"
    pretrain_seconds = None
    if not args.encoder:
        sources = args.unlabelled
        if sources is None:
            # the labelled set's synthetic galaxies (same N, seed 0), so the card records them as synthetic
            sources = [f"synthetic:{args.n_synthetic}"]
            sources += [str(p) for p in (REAL_DEV, SHARED / "real_sample") if p.is_dir()]
        config = load_yaml_config(
            Path(__file__).resolve().parents[1] / "recipes" / "configs" / "vit_mae.yaml",
            [*PretrainArguments.__dataclass_fields__, *TrainingArguments.__dataclass_fields__],
        )
        pre_keys = set(PretrainArguments.__dataclass_fields__)
        pre = PretrainArguments(
            **{k: v for k, v in config.items() if k in pre_keys},
            dataset=sources,
        )
        pre.model_config, pre.image_size = args.model_config, args.image_size
        if args.norm_pix_loss is not None:
            pre.norm_pix_loss = args.norm_pix_loss == "true"
        training = {k: v for k, v in config.items() if k not in pre_keys}
        training.update(
            output_dir=str(encoder),
            num_train_epochs=args.pretrain_epochs,
            use_cpu=True,
            report_to="none",
            disable_tqdm=True,
            seed=args.seed,
        )
        start = time.perf_counter()
        pre_metrics = run_pretraining(pre, TrainingArguments(**training), "fp32")
        pretrain_seconds = round(time.perf_counter() - start, 1)
        print(
            json.dumps({"pretraining": str(encoder), "seconds": pretrain_seconds, **pre_metrics}), flush=True
        )

    rows = []
    for name, dsd in labelled.items():
        n_train = len(dsd["train"])
        for fraction in args.fractions:
            n = max(1, round(fraction * n_train))
            for init in ("mae", "scratch"):
                model = str(encoder) if init == "mae" else f"{args.model_config},image_size={args.image_size}"
                start = time.perf_counter()
                result = finetune(
                    dsd,
                    model,
                    out / "runs" / f"{Path(name).name}_{fraction}_{init}",
                    lora=False,
                    num_train_epochs=args.finetune_epochs,
                    max_train_samples=n,
                    image_size=args.image_size,
                    seed=args.seed,
                    **FINETUNE,
                )
                m = result.metrics
                rows.append(
                    {
                        "dataset": name,
                        "fraction": fraction,
                        "train_labels": n,
                        "init": init,
                        "test_accuracy": round(m["test_accuracy"], 4),
                        "test_macro_f1": round(m["test_macro_f1"], 4),
                        "test_samples": m.get("test_samples"),
                        "seconds": round(time.perf_counter() - start, 1),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    summary = {
        "pretrain_seconds": pretrain_seconds,
        "encoder": str(encoder),
        "args": vars(args),
        "runs": rows,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    _plot(rows, out / "label_efficiency.png")
    print("\n| Dataset | Labels | Test accuracy, MAE encoder | Test accuracy, random weights |")
    print("|---|---|---|---|")
    for name in labelled:
        for fraction in args.fractions:
            pair = {r["init"]: r for r in rows if r["dataset"] == name and r["fraction"] == fraction}
            label = "synthetic GZ1" if name == "synthetic" else Path(name).name
            print(
                f"| {label} | {fraction:.0%} ({pair['mae']['train_labels']}) | "
                f"{pair['mae']['test_accuracy']:.3f} | {pair['scratch']['test_accuracy']:.3f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
