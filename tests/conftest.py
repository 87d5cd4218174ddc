"""Shared test setup: no test touches the real Hub or the user's caches."""

from __future__ import annotations

import os
import tempfile

# Must happen before huggingface_hub / datasets / transformers are imported anywhere.
_HF_HOME = tempfile.mkdtemp(prefix="hf_galaxy_test_hf_home_")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_DATASETS_CACHE"] = os.path.join(_HF_HOME, "datasets")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.pop("HF_TOKEN", None)
# Tiny models on a 2-core machine: one BLAS/OpenMP thread per process is faster than oversubscribing,
# and subprocesses (accelerate launch tests) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
