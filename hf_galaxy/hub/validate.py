"""Local validation of model-card metadata, so that a bad card fails before anything is uploaded."""

from __future__ import annotations

from typing import Any

from huggingface_hub.repocard_data import model_index_to_eval_results

#: License identifiers the Hub accepts in the ``license`` field (https://huggingface.co/docs/hub/repositories-licenses).
HUB_LICENSES: frozenset[str] = frozenset(
    {
        "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m",
        "bigscience-bloom-rail-1.0", "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd",
        "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0",
        "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0",
        "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0",
        "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0", "cdla-permissive-1.0", "cdla-permissive-2.0",
        "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1", "eupl-1.2", "agpl-3.0", "gfdl",
        "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "h-research", "intel-research",
        "lppl-1.3c", "ms-pl", "apple-ascl", "apple-amlr", "mpl-2.0", "odc-by", "odbl", "openrail++", "osl-3.0",
        "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl", "lgpl-lr", "deepfloyd-if-license",
        "fair-noncommercial-research-license", "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4",
        "gemma", "unknown", "other",
    }
)  # fmt: skip

#: The only top-level YAML keys our cards may carry.
ALLOWED_KEYS: frozenset[str] = frozenset(
    {"license", "library_name", "pipeline_tag", "tags", "base_model", "datasets", "metrics", "model-index"}
)
REQUIRED_KEYS: tuple[str, ...] = ("license", "library_name", "pipeline_tag", "tags")
LIBRARIES = frozenset({"transformers", "peft"})
PIPELINE_TAGS = frozenset({"image-classification", "object-detection", "image-feature-extraction"})
REQUIRED_TAGS = ("galaxy-zoo", "astronomy")


class CardValidationError(ValueError):
    """The card metadata is not valid; ``key`` names the offending YAML key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"invalid model-card metadata at key {key!r}: {message}")
        self.key = key


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def validate_card_metadata(metadata: dict[str, Any], *, library_required: bool = True) -> None:
    """Check card YAML metadata; raise :class:`CardValidationError` naming the first offending key.

    Checks: only whitelisted keys; required keys present; ``license`` from the Hub's list; ``library_name``
    transformers or peft; ``pipeline_tag`` a vision task; ``tags`` include galaxy-zoo and astronomy;
    ``base_model``/``datasets``/``metrics`` are strings or string lists; ``model-index`` parses with
    huggingface_hub's eval-results parser and every metric value is a finite number.

    ``library_required=False`` allows a card without ``library_name`` (an ensemble repo, which no single
    library loads); when the key is present it must still be transformers or peft.
    """
    if not isinstance(metadata, dict):
        raise CardValidationError("<root>", f"metadata must be a mapping, got {type(metadata).__name__}")
    for key in metadata:
        if key not in ALLOWED_KEYS:
            raise CardValidationError(key, f"not an allowed key (allowed: {', '.join(sorted(ALLOWED_KEYS))})")
    for key in REQUIRED_KEYS:
        if key not in metadata and (library_required or key != "library_name"):
            raise CardValidationError(key, "required key is missing")
    license_ = metadata["license"]
    if license_ not in HUB_LICENSES:
        raise CardValidationError("license", f"{license_!r} is not a Hub license identifier (e.g. 'mit')")
    if "library_name" in metadata and metadata["library_name"] not in LIBRARIES:
        raise CardValidationError(
            "library_name", f"{metadata['library_name']!r} is not one of {sorted(LIBRARIES)}"
        )
    if metadata["pipeline_tag"] not in PIPELINE_TAGS:
        raise CardValidationError(
            "pipeline_tag", f"{metadata['pipeline_tag']!r} is not one of {sorted(PIPELINE_TAGS)}"
        )
    tags = metadata["tags"]
    if not _is_str_list(tags):
        raise CardValidationError("tags", f"must be a list of non-empty strings, got {tags!r}")
    missing = [t for t in REQUIRED_TAGS if t not in tags]
    if missing:
        raise CardValidationError("tags", f"missing required tag(s) {missing}")
    for key in ("base_model", "datasets", "metrics"):
        if key in metadata:
            value = metadata[key]
            if not (isinstance(value, str) and value) and not _is_str_list(value):
                raise CardValidationError(key, f"must be a string or a list of strings, got {value!r}")
    if "model-index" in metadata:
        _validate_model_index(metadata["model-index"])


def _validate_model_index(model_index: Any) -> None:
    if not isinstance(model_index, list) or not model_index:
        raise CardValidationError("model-index", "must be a non-empty list")
    try:
        _, results = model_index_to_eval_results(model_index)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CardValidationError("model-index", f"cannot be parsed by huggingface_hub: {err!r}") from err
    for result in results:
        value = result.metric_value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise CardValidationError(
                "model-index", f"metric {result.metric_type!r} has a non-numeric value {value!r}"
            )
