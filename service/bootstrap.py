"""What `hotline run` prepares before starting the processes: reference data and a demo model."""

from __future__ import annotations

import logging

from service.config import Settings

log = logging.getLogger(__name__)


def prepare(settings: Settings) -> None:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
