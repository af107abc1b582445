"""What an extraction child finds imported: the work function of `sandbox_probe_main`, kept in a module of
its own (and light) so that a child imports it without the main module's weight."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from semantik.core.pipeline.chunk import Chunk
from semantik.core.pipeline.sandbox import ChunkedFile, FileRequest, Outcome
from semantik.core.pipeline.tokens import TextTokenizer


def imported_modules(request: FileRequest, tokenizer: TextTokenizer, max_text_chars: int) -> Outcome:
    main_file = getattr(sys.modules["__main__"], "__file__", None)
    seen = json.dumps({"main module": main_file and Path(main_file).name, "torch": "torch" in sys.modules})
    return ChunkedFile("text", [Chunk(0, seen, 0, len(seen), 1)])
