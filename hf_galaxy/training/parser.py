"""The recipes' parser: ``HfArgumentParser`` with YAML defaults (``--config``), CLI overrides and unknown
YAML keys rejected by name; one :func:`make_parser` per task."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser, TrainingArguments

from hf_galaxy.training.arguments import (
    DataArguments,
    DetectionDataArguments,
    DetectionModelArguments,
    DetectionScriptArguments,
    ModelArguments,
    PretrainArguments,
    ScriptArguments,
)
from hf_galaxy.training.precision import resolve_namespace_precision


class ConfigError(ValueError):
    """A recipe YAML file that cannot be used (unreadable, not a mapping, unknown keys)."""


def load_yaml_config(path: str | os.PathLike, valid_keys: Sequence[str]) -> dict[str, Any]:
    """Read a recipe YAML file; every key must be one of ``valid_keys`` (the error names the others)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of argument names to values, got {type(data).__name__}")
    valid = set(valid_keys)
    unknown = [k for k in data if k not in valid]
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(repr(k) for k in unknown)}: not an argument of this recipe "
            "(run with --help for the valid options)"
        )
    return data


class GalaxyArgumentParser(HfArgumentParser):
    """``HfArgumentParser`` with ``--config FILE.yaml`` defaults (CLI flags override) and precision handling."""

    def __init__(self, dataclass_types: Sequence[type], **kwargs: Any) -> None:
        super().__init__(list(dataclass_types), **kwargs)
        self.add_argument(
            "--config", default=None, help="YAML file with default values for any option below."
        )

    def valid_keys(self) -> list[str]:
        """Names of all options (dataclass fields) the YAML file may set."""
        return [f.name for dtype in self.dataclass_types for f in dataclasses.fields(dtype) if f.init]

    def build(self, explicit: dict[str, Any], config: str | os.PathLike | None = None) -> tuple[Any, ...]:
        """Dataclass instances from parser defaults, then the YAML ``config``, then ``explicit`` values."""
        values = vars(self.parse_args([]))
        values.pop("config", None)
        if config:
            values.update(load_yaml_config(config, self.valid_keys()))
        values.update(explicit)
        return self._construct(values)

    def _construct(self, values: dict[str, Any]) -> tuple[Any, ...]:
        resolve_namespace_precision(values)
        return tuple(
            dtype(
                **{f.name: values[f.name] for f in dataclasses.fields(dtype) if f.init and f.name in values}
            )
            for dtype in self.dataclass_types
        )

    def parse(self, args: Sequence[str] | None = None) -> tuple[Any, ...]:
        """Parse ``args`` (default ``sys.argv[1:]``) into one instance per dataclass, YAML then CLI."""
        argv = list(sys.argv[1:] if args is None else args)
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--config", default=None)
        known, _ = pre.parse_known_args(argv)
        if known.config:
            try:
                defaults = load_yaml_config(known.config, self.valid_keys())
            except ConfigError as err:
                self.error(str(err))
            self.set_defaults(**defaults)
        namespace = vars(self.parse_args(argv))
        namespace.pop("config", None)
        try:
            return self._construct(namespace)
        except ValueError as err:
            self.error(str(err))


#: The argument dataclasses of each task's recipe, in the order the parser returns them.
TASK_DATACLASSES: dict[str, tuple[type, ...]] = {
    "classification": (ScriptArguments, TrainingArguments, ModelArguments, DataArguments),
    "detection": (
        DetectionScriptArguments,
        TrainingArguments,
        DetectionModelArguments,
        DetectionDataArguments,
    ),
    "pretraining": (PretrainArguments, TrainingArguments),
}


def make_parser(
    use_lora: bool = False,
    extra_dataclasses: Sequence[type] = (),
    *,
    task: str = "classification",
    **kwargs: Any,
) -> GalaxyArgumentParser:
    """The recipe parser over (script, TrainingArguments, model, data, *extra) dataclasses of ``task``
    (``classification``, ``detection`` or ``pretraining``), with the Trainer defaults every recipe needs."""
    if task not in TASK_DATACLASSES:
        raise ValueError(f"task must be one of {list(TASK_DATACLASSES)}, got {task!r}")
    parser = GalaxyArgumentParser([*TASK_DATACLASSES[task], *extra_dataclasses], **kwargs)
    parser.set_defaults(remove_unused_columns=False, report_to="none")
    if task == "classification":
        parser.set_defaults(use_lora=use_lora)
    elif task == "detection":
        parser.set_defaults(eval_do_concat_batches=False)
    return parser
