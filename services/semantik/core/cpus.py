"""How many CPUs this process may really use: its affinity, capped by a cgroup CPU quota.

A pod limited to 2 CPUs on a 64-core node sees 64 cores in os.cpu_count() and in its affinity mask; a
thread pool sized to that runs 64 threads on 2 CPUs' worth of time and is throttled by the kernel.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs allowed by the cgroup quota (v2 `cpu.max`, else v1 `cpu.cfs_quota_us`); None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def usable_cpus(root: Path = CGROUP_ROOT) -> int:
    available = len(os.sched_getaffinity(0))
    limit = cgroup_cpu_limit(root)
    return available if limit is None else max(1, min(available, math.ceil(limit)))
