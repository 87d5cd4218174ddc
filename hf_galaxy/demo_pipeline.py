"""The training half of ``hf-galaxy demo``: LoRA fine-tune -> evaluation and plots -> card -> dry-run publish.

The hyper-parameters are those of ``recipes/configs/vit_lora_demo.yaml`` (a test keeps the two equal), embedded
here so that the demo also runs from an installed wheel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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

_MODEL_KEYS = ("model_config", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "lora_modules_to_save")
DEMO_REPO_ID = "hf-galaxy/vit-lora-galaxy-zoo-1-synthetic-demo"


def train_evaluate_publish(dsd, out: Path, *, seed: int = 0, epochs: float | None = None) -> dict[str, Any]:
    """Fine-tune, evaluate, plot, write the card and a dry-run publish folder under ``out``; returns a summary."""
    from hf_galaxy.hub import publish, write_model_card
    from hf_galaxy.training import train_classifier

    model_dir = out / "model"
    model_args = {k: DEMO_CONFIG[k] for k in _MODEL_KEYS}
    training_args = {k: v for k, v in DEMO_CONFIG.items() if k not in _MODEL_KEYS}
    training_args.update(report_to="none", use_cpu=True, disable_tqdm=False)
    if epochs is not None:
        training_args["num_train_epochs"] = epochs
    print(f"[3/5] LoRA fine-tune of a small ViT built from the config {model_args['model_config']!r} "
          f"({training_args['num_train_epochs']} epochs, CPU) -> {model_dir}")
    metrics = train_classifier(dsd, model_dir, model_config=model_args.pop("model_config"), lora=True,
                               training_args=training_args, model_args=model_args)
    acc = metrics.get("test_accuracy")
    print(f"[4/5] test split: accuracy {acc:.3f} (chance {1 / len(dsd['train'].features['label'].names):.3f}), "
          f"macro-F1 {metrics.get('test_macro_f1', float('nan')):.3f}, ECE {metrics.get('test_ece', float('nan')):.3f}; "
          f"plots: {', '.join(p.name for p in sorted(model_dir.glob('*.png')))}")
    card = write_model_card(model_dir, repo_id=DEMO_REPO_ID)
    dry = out / "publish_dry_run"
    if dry.exists():
        import shutil

        shutil.rmtree(dry)
    result = publish(model_dir, DEMO_REPO_ID, dry_run_dir=dry)
    print(f"[5/5] model card: {card}; dry-run publish of {DEMO_REPO_ID}: {len(result.files)} files in {dry}")
    keep = ("test_accuracy", "test_macro_f1", "test_top2_accuracy", "test_ece", "test_vote_rmse",
            "train_runtime", "eval_accuracy")
    return {
        "metrics": {k: metrics[k] for k in keep if k in metrics},
        "model_dir": str(model_dir),
        "model_card": str(card),
        "dry_run_dir": str(dry),
        "published_files": sorted(str(f) for f in result.files),
        "config": json.loads(json.dumps(DEMO_CONFIG)),
    }
