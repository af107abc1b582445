"""`make bench`: every section prints its figures beside a baseline measured in the same run."""

from __future__ import annotations

import argparse
import asyncio
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import embedder, indexing, operator, quality, service, store, ui

SECTIONS = {
    "embedder": embedder.main,
    "indexing": indexing.main,
    "service": service.main,
    "operator": operator.main,
    "quality": quality.main,
    "store": store.main,
    "ui": ui.main,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("sections", nargs="*", choices=[[], *SECTIONS], default=[], help="default: all")
    args = parser.parse_args()
    for name in args.sections or list(SECTIONS):
        print(f"\n=== bench: {name}", flush=True)
        asyncio.run(SECTIONS[name]())


if __name__ == "__main__":
    main()
