"""Prometheus multi-process mode for `hotline serve --workers N` and the Celery prefork pool.

prometheus_client chooses between in-memory values and per-process files
(`PROMETHEUS_MULTIPROC_DIR`) when it is first imported, so the command sets the directory up
before anything imports it, and the processes it starts (uvicorn's workers, Celery's pool
children) inherit it. Each process writes its own files (`counter_<pid>.db`, ...); a scrape adds
them up.

Clean-up at start-up: the files of processes that are no longer alive are deleted (a dead
process's counters would otherwise be added to a new process that reuses its pid). Files of live
processes are kept (unless older than the host's last boot), so that `hotline serve` and
`hotline worker` on one host can share one directory and either exporter reports the whole host.
A counter of a process that died falls out of the sum at the next start-up, which Prometheus'
`rate()` treats as a counter reset.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

__all__ = ["ENV", "prepare"]

ENV = "PROMETHEUS_MULTIPROC_DIR"
_FILE = re.compile(r".*_(\d+)\.db")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _boot_time() -> float:
    """When this host booted (Linux; 0 elsewhere): a file older than that is stale whatever
    process now has its pid."""
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def prepare(directory: Path) -> Path:
    """Use `directory` for this process and its children, deleting dead processes' files.

    Must run before `prometheus_client` is imported; raises RuntimeError otherwise (that would be
    a bug of the command: its metrics would stay in memory, invisible to the scrape)."""
    if "prometheus_client" in sys.modules and os.environ.get(ENV) != str(directory):
        raise RuntimeError("prometheus_client was imported before the multi-process directory")
    directory.mkdir(parents=True, exist_ok=True)
    booted = _boot_time()
    for path in directory.glob("*.db"):
        match = _FILE.fullmatch(path.name)
        if match is None or not _alive(int(match.group(1))) or path.stat().st_mtime < booted:
            path.unlink(missing_ok=True)
    os.environ[ENV] = str(directory)
    return directory
