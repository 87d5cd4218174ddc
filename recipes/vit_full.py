"""Full fine-tuning (all weights) of a ViT image classifier on Galaxy Zoo data.

Defaults come from a YAML file (``--config``); any option given on the command line overrides it::

    accelerate launch --config_file recipes/accelerate/single_gpu.yaml recipes/vit_full.py \\
        --config recipes/configs/vit_full.yaml --dataset GalaxyZoo1_DR_table2.csv --image_dir cutouts/

    # several GPUs (DDP), or FSDP / DeepSpeed ZeRO-2
    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml recipes/vit_full.py \\
        --config recipes/configs/vit_full.yaml --dataset synthetic:20000
    accelerate launch --config_file recipes/accelerate/fsdp.yaml recipes/vit_full.py --config recipes/configs/vit_full.yaml
    accelerate launch --config_file recipes/accelerate/deepspeed_zero2.yaml recipes/vit_full.py \\
        --config recipes/configs/vit_full.yaml

    # offline, on CPU
    python recipes/vit_full.py --dataset synthetic:300 --model_config vit-tiny --max_steps 20 --output_dir outputs/full

The output directory holds the model (loadable with ``from_pretrained`` / ``pipeline``), metrics JSON
files, plots and ``hf_galaxy_card.json``.
"""

from __future__ import annotations

from transformers import TrainingArguments

from hf_galaxy.cli import run_recipe
from hf_galaxy.training import (
    DataArguments,
    GalaxyArgumentParser,
    ModelArguments,
    ScriptArguments,
    run_training,
)
from hf_galaxy.training import make_parser as _make_parser


def make_parser() -> GalaxyArgumentParser:
    """Parser over ScriptArguments, TrainingArguments, ModelArguments, DataArguments (LoRA off by default)."""
    return _make_parser(use_lora=False)


def main(
    script_args: ScriptArguments,
    training_args: TrainingArguments,
    model_args: ModelArguments,
    data_args: DataArguments | None = None,
) -> dict[str, float]:
    """Train, evaluate and save; returns all metrics."""
    return run_training(script_args, training_args, model_args, data_args)


if __name__ == "__main__":
    raise SystemExit(run_recipe(main, make_parser()))
