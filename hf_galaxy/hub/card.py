"""Model-card data filled during training, and the callback that fills it.

:class:`GalaxyCardData` is the single record of what a training run did (base model, data, hyperparameters,
LoRA configuration, precision, hardware, log table, final metrics, library versions). Recipes create one,
pass it to :class:`CardCallback`, set :attr:`GalaxyCardData.eval_results` after the final evaluation and call
:meth:`GalaxyCardData.save`. The card renderer (:mod:`hf_galaxy.hub.render`) and the publisher read it back
with :meth:`GalaxyCardData.load`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

logger = logging.getLogger(__name__)

CARD_DATA_FILENAME = "hf_galaxy_card.json"

#: the ``config.json`` attribute recording how a self-supervised encoder was pretrained (see
#: :mod:`hf_galaxy.training.pretraining`); a model fine-tuned from it keeps it, and its card says so
PRETRAINING_KEY = "hf_galaxy_pretraining"

TASKS = ("image-classification", "object-detection", "image-feature-extraction")

#: TrainingArguments fields never recorded in a card: secrets, machine-local paths, and bookkeeping.
_EXCLUDED_ARGS = frozenset(
    {
        "output_dir",
        "logging_dir",
        "run_name",
        "hub_token",
        "hub_model_id",
        "hub_private_repo",
        "hub_strategy",
        "hub_always_push",
        "hub_revision",
        "push_to_hub",
        "push_to_hub_token",
        "push_to_hub_model_id",
        "push_to_hub_organization",
        "resume_from_checkpoint",
        "local_rank",
        "report_to",
        "project",
        "trackio_space_id",
        "trackio_bucket_id",
        "trackio_static_space_id",
        "deepspeed",
        "disable_tqdm",
        "log_level",
        "log_level_replica",
        "do_train",
        "do_eval",
        "do_predict",
    }
)

#: Packages whose versions every card lists.
_LIBRARIES = ("hf-galaxy", "transformers", "torch", "datasets", "accelerate", "peft", "huggingface_hub")

#: Log keys that describe speed, not quality: left out of the training-log table.
_SPEED_SUFFIXES = ("_runtime", "_samples_per_second", "_steps_per_second", "_flos")


def jsonable(value: Any) -> Any:
    """``value`` as JSON data: tuples/sets and numpy/torch arrays turned into lists, numpy/torch scalars into
    Python numbers, NaN/inf into None, paths into strings, and anything else unknown into its ``str``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if getattr(value, "ndim", 0) and hasattr(value, "tolist"):  # numpy / torch array
        return jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalar
        try:
            return jsonable(value.item())
        except (ValueError, TypeError):
            pass
    if hasattr(value, "value") and hasattr(value, "name"):  # Enum
        return jsonable(value.value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


@dataclass
class GalaxyCardData:
    """Everything the model card says about a training run. JSON-serialisable (``hf_galaxy_card.json``).

    Attributes:
        task: ``"image-classification"``, ``"object-detection"`` or ``"image-feature-extraction"`` (a
            self-supervised encoder; ``extra["pretraining"]`` says how it was trained).
        base_model: Hub id or local path of the starting checkpoint; ``None`` when built from a config.
        model_config: Description of the config when the model was built without pretrained weights.
        dataset: :func:`hf_galaxy.data.dataset.describe` output, plus ``"dataset_id"`` for a Hub dataset.
        label_names: Class names in id order (``id2label``).
        hyperparameters: Non-default ``TrainingArguments`` values.
        lora: LoRA configuration (r, lora_alpha, lora_dropout, target_modules, modules_to_save,
            trainable_params, all_params), or ``None`` for full fine-tuning.
        precision: ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        hardware: For example ``"1 x NVIDIA H200"`` or ``"CPU (2 cores)"``.
        soft_labels: Trained on vote fractions (soft cross-entropy).
        log_table: Rows of epoch, step, training_loss, validation_loss and validation metrics.
        eval_results: Final metrics on :attr:`eval_split` (``accuracy``, ``macro_f1``, ``ece``,
            ``vote_rmse``; ``map`` for detection).
        eval_split: The split the final metrics were computed on.
        library_versions: Package name -> version.
        extra: Anything else a recipe wants to keep (for example ``license``, ``model_name``).
    """

    task: str = "image-classification"
    base_model: str | None = None
    model_config: str | None = None
    dataset: dict = field(default_factory=dict)
    label_names: list[str] = field(default_factory=list)
    hyperparameters: dict = field(default_factory=dict)
    lora: dict | None = None
    precision: str = "fp32"
    hardware: str = ""
    soft_labels: bool = False
    log_table: list[dict] = field(default_factory=list)
    eval_results: dict = field(default_factory=dict)
    eval_split: str = "test"
    library_versions: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"GalaxyCardData.task must be one of {TASKS}, got {self.task!r}")
        if self.precision not in ("bf16", "fp16", "fp32"):
            raise ValueError(f"GalaxyCardData.precision must be bf16, fp16 or fp32, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of all fields."""
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GalaxyCardData:
        """Inverse of :meth:`to_dict`. Unknown keys are kept in :attr:`extra` with a warning."""
        if not isinstance(data, dict):
            raise TypeError(f"card data must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        unknown = {k: v for k, v in data.items() if k not in names}
        if unknown:
            logger.warning("card data: unknown keys %s kept under 'extra'", sorted(unknown))
            known["extra"] = {**dict(known.get("extra") or {}), **unknown}
        return cls(**known)

    def save(self, output_dir: str | os.PathLike) -> Path:
        """Write ``output_dir/hf_galaxy_card.json`` and return its path."""
        from hf_galaxy.jsonio import write_json

        path = Path(output_dir) / CARD_DATA_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, output_dir: str | os.PathLike) -> GalaxyCardData:
        """Read ``output_dir/hf_galaxy_card.json`` (``output_dir`` may also be the file itself)."""
        path = Path(output_dir)
        if path.is_dir():
            path = path / CARD_DATA_FILENAME
        if not path.is_file():
            raise FileNotFoundError(
                f"no model-card data at {path}: train with an hf-galaxy recipe (it writes {CARD_DATA_FILENAME})"
            )
        from hf_galaxy.jsonio import read_json

        return cls.from_dict(read_json(path))


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a card lists (those that are installed)."""
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def describe_hardware(args: TrainingArguments | None = None) -> str:
    """A short description of the accelerator(s) used, e.g. ``"2 x NVIDIA H200"`` or ``"CPU (2 cores)"``."""
    import torch

    use_cpu = bool(getattr(args, "use_cpu", False))
    if not use_cpu and torch.cuda.is_available():
        if args is None:
            n = torch.cuda.device_count()
        else:
            n = max(int(getattr(args, "world_size", 1) or 1), int(getattr(args, "n_gpu", 1) or 1))
        return f"{n} x {torch.cuda.get_device_name(0)}"
    if not use_cpu and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "Apple MPS"
    return f"CPU ({os.cpu_count() or 1} cores)"


def precision_of(args: TrainingArguments) -> str:
    """``"bf16"``, ``"fp16"`` or ``"fp32"`` from the mixed-precision flags of ``args``."""
    if getattr(args, "bf16", False):
        return "bf16"
    if getattr(args, "fp16", False):
        return "fp16"
    return "fp32"


def _is_empty(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, (str, list, dict)) and not value)


def _field_defaults(cls: type) -> dict[str, Any]:
    """Declared defaults of a dataclass's fields (no instance is built: building ``TrainingArguments`` resets
    accelerate's shared state, which would break a running ``Trainer``)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    try:  # __post_init__ turns accelerator_config=None into the AcceleratorConfig defaults
        from transformers.trainer_pt_utils import AcceleratorConfig

        out["_accelerator_config_defaults"] = AcceleratorConfig().to_dict()
    except (ImportError, TypeError, AttributeError):
        pass
    return out


def non_default_arguments(args: TrainingArguments) -> dict[str, Any]:
    """The ``TrainingArguments`` values that differ from the declared defaults, minus secrets and local paths.

    Values that ``__post_init__`` only normalises (``None`` -> ``False``/``[]``/``{}``) count as defaults.
    """
    defaults = _field_defaults(type(args))
    out = {}
    for key, value in args.to_dict().items():
        if key in _EXCLUDED_ARGS or key.startswith("_") or "token" in key:
            continue
        value = jsonable(value)
        if key in defaults:
            default = jsonable(defaults[key])
            if default == value or (_is_empty(default) and _is_empty(value)):
                continue
            acc_defaults = jsonable(defaults.get("_accelerator_config_defaults")) or {}
            if key == "accelerator_config" and isinstance(value, dict):
                if all(acc_defaults.get(k) == v for k, v in value.items()):
                    continue
        out[key] = value
    return out


def lora_summary(model: Any) -> dict[str, Any] | None:
    """LoRA settings and parameter counts of a peft model (``None`` when ``model`` has no LoRA adapter)."""
    peft_config = getattr(model, "peft_config", None)
    if not peft_config:
        return None
    config = peft_config.get("default") or next(iter(peft_config.values()))
    if getattr(config, "r", None) is None:
        return None
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    targets = config.target_modules
    return {
        "r": int(config.r),
        "lora_alpha": config.lora_alpha,
        "lora_dropout": config.lora_dropout,
        "target_modules": sorted(targets) if isinstance(targets, (set, list, tuple)) else targets,
        "modules_to_save": list(config.modules_to_save or []),
        "trainable_params": int(trainable),
        "all_params": int(total),
    }


def add_log_row(table: list[dict[str, Any]], logs: dict[str, Any], *, step: int, epoch: float | None) -> None:
    """Add one ``Trainer`` log entry to a training-log table, merging entries of the same step.

    Rows hold ``epoch``, ``step``, ``training_loss``, ``validation_loss`` and the validation metrics (``eval_``
    prefix removed); speed entries and the end-of-training summary are left out.
    """
    row: dict[str, Any] = {}
    if "loss" in logs:
        row["training_loss"] = jsonable(logs["loss"])
    for key, value in logs.items():
        if not key.startswith("eval_") or key.endswith(_SPEED_SUFFIXES):
            continue
        name = key[len("eval_") :]
        row["validation_loss" if name == "loss" else name] = jsonable(value)
    if not row:
        return
    epoch = logs.get("epoch", epoch)
    if table and table[-1]["step"] == step:
        table[-1].update(row)
    else:
        table.append({"epoch": round(float(epoch or 0.0), 4), "step": int(step), **row})


def log_table_from_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training-log table of a ``TrainerState.log_history`` (as in ``trainer_state.json``)."""
    table: list[dict[str, Any]] = []
    for entry in log_history:
        add_log_row(table, entry, step=int(entry.get("step", 0)), epoch=entry.get("epoch"))
    return table


@contextlib.contextmanager
def preserve_accelerate_state() -> Any:
    """Keep accelerate's shared state across code that builds a new ``TrainingArguments``.

    Constructing ``TrainingArguments`` resets accelerate's ``AcceleratorState``/``PartialState``, which
    breaks a running ``Trainer``; this restores the state afterwards.
    """
    from accelerate.state import AcceleratorState, PartialState

    saved = [(cls, dict(cls._shared_state)) for cls in (AcceleratorState, PartialState)]
    try:
        yield
    finally:
        for cls, state in saved:
            if state:
                cls._shared_state.clear()
                cls._shared_state.update(state)


class CardCallback(TrainerCallback):
    """Fills a :class:`GalaxyCardData` while a ``Trainer`` runs, and saves it when training ends.

    - ``on_train_begin``: non-default hyperparameters, precision, hardware, library versions; the label
      names (from ``model.config.id2label``) and the LoRA summary when they were not set already.
    - ``on_log``: one training-log row per logged step, merging training loss and validation metrics.
    - ``on_train_end``: ``card_data.save(args.output_dir)`` on the main process.
    """

    def __init__(self, card_data: GalaxyCardData) -> None:
        self.card_data = card_data

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        card = self.card_data
        with preserve_accelerate_state():
            card.hyperparameters = {**non_default_arguments(args), **card.hyperparameters}
            card.precision = precision_of(args)
            card.hardware = card.hardware or describe_hardware(args)
        card.library_versions = {**library_versions(), **card.library_versions}
        model = kwargs.get("model")
        if model is not None:
            if not card.label_names:
                id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
                card.label_names = [id2label[i] for i in sorted(id2label, key=int)]
            if card.lora is None:
                card.lora = lora_summary(model)
        card.log_table = []

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs:
            add_log_row(self.card_data.log_table, logs, step=int(state.global_step), epoch=state.epoch)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.log_history:  # complete after a resume, unlike the rows seen by on_log
            self.card_data.log_table = log_table_from_history(state.log_history)
        if state.is_world_process_zero:
            self.card_data.save(args.output_dir)
