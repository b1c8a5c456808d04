"""Celery tasks for duplicates and hotspots: the periodic hotspot scan (热点预警)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from router.hotspots import service as hotspots_service
from router.hotspots.detection import HotspotConfig
from router.orm import utcnow
from service.config import Settings, get_settings
from service.worker import names
from service.worker.tasks import hotline_task


def hotspot_config(settings: Settings) -> HotspotConfig:
    return HotspotConfig(
        bucket=timedelta(hours=settings.hotspot_bucket_hours),
        baseline_buckets=settings.hotspot_baseline_buckets,
        min_count=settings.hotspot_min_count,
        min_ratio=settings.hotspot_min_ratio,
        min_distinct_callers=settings.hotspot_min_distinct_callers,
    )


@hotline_task(names.SCAN_HOTSPOTS, max_retries=0)
def scan_hotspots(db_session: Session) -> dict[str, Any]:
    """Find and store hotspots, notifying the supervisors once per new one (idempotent: a
    hotspot seen again is updated; the next beat tick retries a failed scan)."""
    result = hotspots_service.scan_hotspots(
        db_session=db_session, now=utcnow(), config=hotspot_config(get_settings())
    )
    return result.to_dict()
