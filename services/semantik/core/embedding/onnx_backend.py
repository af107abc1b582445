"""The forward pass on ONNX Runtime: the cached, fused graph of `onnx_export`, on this process's CPUs."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from semantik.contracts.models import ModelSpec
from semantik.core.cpus import usable_cpus
from semantik.core.embedding import EmbedBackend, Precision
from semantik.core.embedding.encoders import EncoderOutOfMemoryError
from semantik.core.embedding.onnx_export import INPUT_NAMES, OUTPUT_NAME, ensure_onnx_model
from semantik.core.errors import InvalidInputError


class OnnxEncoder:
    backend = EmbedBackend.ONNX

    def __init__(self, path: Path, *, threads: int | None = None, profile_prefix: str | None = None) -> None:
        """`profile_prefix`: record ORT's per-node timings (the benchmark's profile); `end_profiling` writes them."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        # Sized to the cgroup quota, not the host: a pod limited to 2 CPUs on a 64-core node must not run 64.
        options.intra_op_num_threads = threads or usable_cpus()
        options.inter_op_num_threads = 1
        # Idle pool threads would spin between passes, taking the CPU the extractors share with us.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if profile_prefix is not None:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        self.threads = options.intra_op_num_threads
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [node.name for node in self._session.get_inputs()]
        if names != list(INPUT_NAMES):
            raise InvalidInputError(f"{path} takes inputs {names}, not {list(INPUT_NAMES)}", field="backend")

    def end_profiling(self) -> Path:
        return Path(self._session.end_profiling())

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @classmethod
    def load(cls, spec: ModelSpec, model_dir: Path, cache_dir: Path, precision: Precision) -> OnnxEncoder:
        return cls(ensure_onnx_model(spec, model_dir, cache_dir, precision))

    def inference_context(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

        feed = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        try:
            (hidden,) = self._session.run([OUTPUT_NAME], feed)
        except RuntimeException as exc:
            if "allocat" in str(exc).lower():
                raise EncoderOutOfMemoryError(str(exc)) from exc
            raise
        return torch.from_numpy(np.asarray(hidden, dtype=np.float32))
