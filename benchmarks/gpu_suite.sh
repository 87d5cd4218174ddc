#!/usr/bin/env bash
# Every GPU figure the README and the issues name, on one GPU, in one go (about 5-8 minutes on an H100/H200).
# Writes OUT/gpu_suite.json (and each benchmark's own JSON beside it):
#   - ViT-B/16 (random weights, 224 px) full and LoRA training images/s at bf16 and fp16, with and without
#     gradient checkpointing, and their peak memory               (benchmarks/bench_train.py)
#   - the data path (prepared cut-outs + galaxy-aware augmentation) as a fraction of model-only throughput
#   - peak memory and images/s of every shipped recipe config; vit_lora_4gb must stay under 4 GiB
#                                                                 (benchmarks/bench_configs.py)
#   - DETR-R50 at 800 px, fp16, batch 8, gradient checkpointing off / transformer / + backbone
#                                                                 (benchmarks/bench_detr.py)
# Usage:  bash benchmarks/gpu_suite.sh [OUT_DIR]        (default: gpu_suite_out/)
# The GPU machine may lack datasets, evaluate, astropy, sep and pycocotools: put their wheels in .whl/ and
# they are installed to /tmp/site first (see the device notes); nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu_suite_out}}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

step() { echo; echo "== $1 ($(date +%T))"; }
step "ViT-B/16 training throughput and memory"
$PY benchmarks/bench_train.py --device cuda --model vit-base --precisions bf16,fp16 --modes full,lora \
  --batch_sizes 64 --steps 10 --warmup 3 --n_images 512 --json "$OUT/bench_train.json"
step "shipped recipe configs"
$PY benchmarks/bench_configs.py --max_steps 6 --n 400 --json "$OUT/bench_configs.json"
step "DETR-R50 at 800 px, gradient checkpointing"
$PY benchmarks/bench_detr.py --preset detr-r50 --image_size 800 --batch_size 8 --fp16 --steps 5 \
  --json "$OUT/bench_detr.json"

step "summary"
$PY - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
train = json.loads((out / "bench_train.json").read_text())
configs = json.loads((out / "bench_configs.json").read_text())
detr = json.loads((out / "bench_detr.json").read_text())
model = {
    f"{r['mode']}_{r['precision']}{'_gc' if r['gc'] else ''}": {
        "images_per_s": round(r["images_per_s"], 1), "peak_mem_gib": round(r["peak_mem_mib"] / 1024, 2)
    }
    for r in train["train"]
}
data = train.get("data") or {}
lora_bf16 = model.get("lora_bf16", {}).get("images_per_s")
# the data path runs in the DataLoader workers: per-CPU-second throughput x the 4 workers of the configs
workers = 4
data_per_s = data.get("project_images_per_s", 0) * workers
summary = {
    "gpu": (out / "gpu.txt").read_text().strip(),
    "vit_b16_training": model,
    "data_path": {
        **data,
        "dataloader_workers": workers,
        "fraction_of_model_throughput": round(data_per_s / lora_bf16, 2) if lora_bf16 else None,
    },
    "configs": configs["rows"],
    "vit_lora_4gb_under_4gib": configs.get("vit_lora_4gb_under_4gib"),
    "detr_r50_800px": detr,
}
(out / "gpu_suite.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps({k: summary[k] for k in ("vit_b16_training", "vit_lora_4gb_under_4gib")}, indent=2))
print(f"wrote {out / 'gpu_suite.json'}")
PYEOF
