"""Export a local model to ONNX once, fuse it, quantize it, and cache it keyed by everything that shapes it.

The cache entry is a directory named by a key over the model's files, the opset, the onnxruntime and torch
versions, the precision and the layers quantized: any change makes a new key, so a stale entry is never
used. An entry is built in a temporary directory and renamed into place whole, with a manifest holding
the digest of each file; one that fails that check (a crash mid-copy, a disk error, a hand edit) is
rebuilt. A lock file keeps two processes sharing a cache from exporting the same model at once.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import io
import json
import logging
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from semantik.contracts.models import ModelSpec
from semantik.core.embedding import Precision
from semantik.core.errors import InvalidInputError, ModelUnavailableError

log = logging.getLogger(__name__)

OPSET = 23
"""Opset 23 has ONNX's own Attention operator: the exporter turns torch's scaled-dot-product attention into
one fused node per layer, which ORT runs 17 % faster than opset 18's MatMul/Softmax/MatMul chain."""
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "last_hidden_state"
# The files of a model directory that decide its graph and weights (tokenizer files do not).
_MODEL_FILE_PATTERNS = ("config.json", "*.safetensors", "*.bin")
_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def model_digest(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for pattern in _MODEL_FILE_PATTERNS:
        for path in sorted(model_dir.glob(pattern)):
            digest.update(path.name.encode() + b"\0" + file_digest(path).encode() + b"\0")
    return digest.hexdigest()


def cache_key(spec: ModelSpec, model_dir: Path, precision: Precision) -> str:
    import onnxruntime
    import torch

    parts = {
        "model": model_digest(model_dir),
        "opset": OPSET,
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "precision": precision.value,
        "int8": list(spec.onnx_int8_modules) if precision is Precision.INT8 else [],
        "fusion": spec.onnx_fusion,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def check_precision(spec: ModelSpec, precision: Precision) -> None:
    if precision not in (Precision.FLOAT32, Precision.INT8):
        raise InvalidInputError(
            f"the onnx backend runs float32 or int8, not {precision.value}; use the torch backend for it",
            field="dtype",
        )
    if precision is Precision.INT8 and not spec.onnx_int8_modules:
        # An empty node list means "every node" to quantize_dynamic: refuse rather than quantize blind.
        raise InvalidInputError(
            f"no int8 layers have been measured for {spec.name} on the onnx backend; use float32", field="dtype"
        )


def ensure_onnx_model(spec: ModelSpec, model_dir: Path, cache_dir: Path, precision: Precision) -> Path:
    """The cached ONNX file for this model and precision, exported and verified first when needed."""
    check_precision(spec, precision)
    key = cache_key(spec, model_dir, precision)
    entry = cache_dir / f"{_slug(spec.name)}-{precision.value}-{key}"
    # The service's user alone: whoever writes the cache chooses the vectors (docs/security.md).
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(cache_dir / ".lock"):
        if _verified(entry, key):
            return entry / MODEL_FILE
        if entry.exists():
            log.warning("onnx cache entry failed verification; rebuilding path=%s", entry)
            shutil.rmtree(entry)
        _remove_stale(cache_dir, spec, precision, keep=entry)
        started = time.monotonic()
        log.info("exporting model to onnx (once per model and version) model=%s dtype=%s", spec.name, precision)
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as scratch:
            built = Path(scratch) / "entry"
            built.mkdir()
            _build(spec, model_dir, precision, built, Path(scratch))
            _write_manifest(built, key)
            built.rename(entry)
        log.info("onnx model ready model=%s dtype=%s seconds=%.1f", spec.name, precision, time.monotonic() - started)
        return entry / MODEL_FILE


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _verified(entry: Path, key: str) -> bool:
    try:
        manifest = json.loads((entry / MANIFEST_FILE).read_text())
        files: dict[str, str] = manifest["files"]
        return (
            manifest["key"] == key
            and MODEL_FILE in files
            and all(file_digest(entry / name) == digest for name, digest in files.items())
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write_manifest(entry: Path, key: str) -> None:
    files = {path.name: file_digest(path) for path in sorted(entry.iterdir()) if path.is_file()}
    (entry / MANIFEST_FILE).write_text(json.dumps({"key": key, "files": files}, indent=2))


def _remove_stale(cache_dir: Path, spec: ModelSpec, precision: Precision, keep: Path) -> None:
    """Entries of this model and precision under another key are stale (a new version or new weights)."""
    for old in cache_dir.glob(f"{_slug(spec.name)}-{precision.value}-*"):
        if old != keep and old.is_dir():
            log.info("removing a stale onnx cache entry path=%s", old)
            shutil.rmtree(old, ignore_errors=True)


# Loggers of the exporter and ORT's optimizer/quantizer: they narrate every rewrite at INFO and give advice
# at WARNING (torchvision missing, "run pre-processing") that means nothing to a user of Semantik.
_CHATTY_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir", "onnx_model", "onnx_model_bert", "fusion_base", "")


@contextlib.contextmanager
def _quiet_build_logs() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _build(spec: ModelSpec, model_dir: Path, precision: Precision, out: Path, scratch: Path) -> None:
    # The exporter and the optimizer also print progress and shape-inference notes to stdout.
    with _quiet_build_logs(), contextlib.redirect_stdout(io.StringIO()):
        _build_quietly(spec, model_dir, precision, out, scratch)


def _build_quietly(spec: ModelSpec, model_dir: Path, precision: Precision, out: Path, scratch: Path) -> None:
    exported = scratch / "exported.onnx"
    _export(model_dir, exported)
    fused = scratch / "fused.onnx"
    _fuse(spec, model_dir, exported, fused)
    if precision is Precision.INT8:
        _quantize(fused, out / MODEL_FILE, _int8_nodes(exported, spec.onnx_int8_modules))
    else:
        _save_single_file(fused, out / MODEL_FILE)


def _export(model_dir: Path, path: Path) -> None:
    """torch's dynamo exporter: the TorchScript one bakes the mask code's shapes into a wrong graph."""
    import torch
    from torch import nn

    from semantik.core.embedding.loading import load_model

    class LastHiddenState(nn.Module):
        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return hidden

    model = LastHiddenState(load_model(model_dir)).eval()
    # Two rows of different lengths, so the exporter sees padding and keeps batch and sequence dynamic.
    input_ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    mask[1, 10:] = 0
    batch, sequence = torch.export.Dim("batch", min=1), torch.export.Dim("sequence", min=1)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (input_ids, mask),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}},
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    if program is None:
        raise ModelUnavailableError(f"torch.onnx.export produced no program for {model_dir}")
    program.save(str(path), external_data=True)


def _fuse(spec: ModelSpec, model_dir: Path, source: Path, target: Path) -> None:
    """ORT's transformer fusions (layer norm, GELU, attention where its pattern is recognised)."""
    if spec.onnx_fusion is None:
        _save_single_file(source, target)
        return
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    config = json.loads((model_dir / "config.json").read_text())
    optimized = optimize_model(
        str(source),
        model_type=spec.onnx_fusion,
        num_heads=int(config.get("num_attention_heads", 0)),
        hidden_size=int(config.get("hidden_size", 0)),
        opt_level=1,
    )
    onnx.save_model(optimized.model, str(target))
    log.info("onnx fusions model=%s fused=%s", spec.name, optimized.get_fused_operator_statistics())


def _save_single_file(source: Path, target: Path) -> None:
    import onnx

    onnx.save_model(onnx.load(str(source)), str(target))


def _int8_nodes(exported: Path, patterns: Sequence[str]) -> list[str]:
    """MatMul nodes whose torch module path matches `patterns`: the exporter records each node's scope,
    and the fusion pass keeps MatMul node names, so the names chosen here hold in the fused graph."""
    import onnx

    compiled = [re.compile(p) for p in patterns]
    graph = onnx.load(str(exported), load_external_data=False).graph
    nodes = []
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        module = _module_path(node)
        if module and any(p.search(module) for p in compiled):
            nodes.append(node.name)
    if patterns and not nodes:
        raise ModelUnavailableError("no layer of the exported graph matches the model's onnx_int8_modules")
    return nodes


def _module_path(node: object) -> str:
    for prop in getattr(node, "metadata_props", ()):
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = ast.literal_eval(prop.value)
            # [..., 'model.encoder.layer.0.attention.self.query', 'linear']: the module is the one before
            # the op; the wrapper's "model." prefix is dropped so the names read as the model's own.
            if len(scopes) >= 2:
                return str(scopes[-2]).removeprefix("model.")
    return ""


def _quantize(source: Path, target: Path, nodes: list[str]) -> None:
    """Dynamic int8 with per-channel weight scales: per-tensor scales cost MiniLM 0.01 of cosine."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_quantize=nodes,
        extra_options={"MatMulConstBOnly": True},
    )
