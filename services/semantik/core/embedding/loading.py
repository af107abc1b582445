"""Load a model only from a local directory: Semantik never reaches a model hub at run time."""

from __future__ import annotations

import os
from pathlib import Path

# Set before transformers/huggingface_hub read them, so even a stray hub call fails fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.models.auto.auto_factory import _BaseAutoModelClass
from transformers.utils import logging as transformers_logging

from semantik.core.errors import ModelUnavailableError

MODEL_PATH_SETTING = "SEMANTIK_MODEL_PATH"

# Weight-loading progress bars and advisory warnings would garble the CLI's own progress display.
transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def check_model_dir(path: Path, setting: str = MODEL_PATH_SETTING) -> Path:
    """Fail with a message naming the setting to fix, instead of letting transformers try a download."""
    if not path.is_dir():
        raise ModelUnavailableError(
            f"model directory {str(path)!r} does not exist; set {setting} to a local directory holding "
            "the model's files (config.json, tokenizer, weights). Semantik never downloads models.",
            field=setting,
        )
    if not (path / "config.json").is_file():
        raise ModelUnavailableError(
            f"{str(path)!r} has no config.json, so it is not a model directory; set {setting} to the "
            "directory that holds the model's files (a Hugging Face cache snapshot works).",
            field=setting,
        )
    return path


def load_tokenizer(path: Path, setting: str = MODEL_PATH_SETTING) -> PreTrainedTokenizerBase:
    check_model_dir(path, setting)
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except OSError as exc:
        raise ModelUnavailableError(
            f"cannot load the tokenizer from {str(path)!r}: {exc}; check {setting}", field=setting
        ) from exc


def load_model(
    path: Path, setting: str = MODEL_PATH_SETTING, *, auto_class: type[_BaseAutoModelClass] = AutoModel
) -> PreTrainedModel:
    """`auto_class` picks the head: the bare encoder for embedders, a classification head for rerankers."""
    check_model_dir(path, setting)
    try:
        model: PreTrainedModel = auto_class.from_pretrained(str(path), local_files_only=True)
    except OSError as exc:
        raise ModelUnavailableError(
            f"cannot load the model from {str(path)!r}: {exc}; check {setting}", field=setting
        ) from exc
    model.eval()  # type: ignore[no-untyped-call]
    return model
