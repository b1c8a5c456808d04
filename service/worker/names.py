"""Every Celery task name, defined once. The first dotted part chooses the queue
(`service.worker.factory.QUEUES`). Importing this module imports nothing else: the API and the
outbox name tasks without loading Celery."""

from __future__ import annotations

PROBE = "system.probe"
RELAY_OUTBOX = "system.relay_outbox"
DELIVER = "dispatch.deliver"
DELIVER_BATCH = "dispatch.deliver_batch"
TRIAGE_PENDING = "dispatch.triage_pending"
SCAN_DEADLINES = "deadlines.scan"
SCAN_CALLBACKS = "callbacks.scan"
PLACE_CALLBACK = "callbacks.place"
SCAN_HOTSPOTS = "hotspots.scan"
RUN_TRAINING = "training.run"
