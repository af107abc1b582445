"""Imported by the extraction forkserver alone (the sandbox's preload list): its children skip the parent's
main module.

multiprocessing makes each child it starts through a forkserver run the parent's `__main__` again, so that
a target defined there can be unpickled. The sandbox's target is in the sandbox module, and the parent's
main is the CLI (`semantik worker`, `semantik index`), which imports torch, SQLAlchemy and the store: 2.4 s
of CPU per child, measured, and that much address space taken before the child's memory limit is set. On
two cores, a fresh worker's two children took 4.5 of the 15 core-seconds service mode lost to embedded
mode. This process forks extraction children and nothing else, so its `prepare` leaves the main module
out; the rest of what the parent sends (sys.path, the working directory, logging) still applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from multiprocessing import spawn
from typing import Any

MAIN_MODULE_KEYS = frozenset({"init_main_from_name", "init_main_from_path"})
_prepare = spawn.prepare


def prepare_without_main(data: Mapping[str, Any]) -> None:
    _prepare({key: value for key, value in data.items() if key not in MAIN_MODULE_KEYS})


spawn.prepare = prepare_without_main
