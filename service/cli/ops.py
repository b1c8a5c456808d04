"""Operational commands: serve, worker, scheduler, run, migrate, probe."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Annotated

import typer

from router.workorders.workflow import Role
from service.cli.app import CliError, app
from service.config import Settings, get_settings

log = logging.getLogger(__name__)


def _configure_logging(settings: Settings) -> None:
    from service.observability import logs

    logs.configure(level=settings.log_level, log_format=settings.log_format)


def _prepare_metrics(settings: Settings, *, port: int, database: bool) -> None:
    """Multi-process metrics for this command and the processes it starts (before anything
    imports prometheus_client), and a separate metrics port when `port` is set (`database`: with
    the database figures; a worker's port leaves them to the API)."""
    from service.observability import multiprocess

    if not settings.metrics_enabled:
        return
    multiprocess.prepare(settings.metrics_dir)
    if port:
        from service.observability import exporter, metrics

        extra = []
        if database:
            from service.observability.collector import DatabaseCollector
            from service.runtime import get_database

            extra.append(DatabaseCollector(get_database, get_settings))
        registry = metrics.scrape_registry(extra)
        try:
            exporter.start(host=settings.metrics_host, port=port, registry=registry)
        except OSError as exc:
            raise CliError(f"metrics port {port}: cannot listen: {exc.strerror}") from None


def _require_database() -> None:
    from service import health
    from service.runtime import get_database

    check = health.check_database(get_database())
    if not check.ok:
        raise CliError(f"database {check.detail}")


def _require_broker(settings: Settings) -> None:
    from service import health

    check = health.check_broker(settings)
    if not check.ok:
        raise CliError(f"broker {settings.broker_url.split('://', 1)[0]} {check.detail}")


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision")] = "head",
) -> None:
    """Create or upgrade the database schema and load the reference data."""
    from service import migrate as migrations
    from service.runtime import get_database

    settings = get_settings()
    try:
        get_database().ping()
    except Exception as exc:
        raise CliError(
            f"database unreachable: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from None
    migrations.upgrade(settings.database_url, revision)
    typer.echo(f"database at revision {migrations.current_revision(get_database().engine)}")
    if revision == "head":
        from service.bootstrap import describe_reference_report, load_reference_data

        typer.echo(describe_reference_report(load_reference_data(get_database())))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (HOTLINE_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (HOTLINE_PORT)")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="API processes (HOTLINE_API_WORKERS)")
    ] = None,
) -> None:
    """Run the HTTP API and pages."""
    import uvicorn

    from service.observability import logs

    settings = get_settings()
    _configure_logging(settings)
    _prepare_metrics(settings, port=settings.metrics_port, database=True)
    _require_database()
    uvicorn.run(
        "service.api.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.api_workers,
        log_level=settings.log_level.lower(),
        # applied again in each worker process, so that they log as this one does
        log_config=logs.dict_config(level=settings.log_level, log_format=settings.log_format),
    )


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Worker processes")] = 2,
    queues: Annotated[str, typer.Option(help="Comma-separated queues")] = "",
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads or solo")] = "prefork",
    metrics_port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65535,
            help="Serve this host's task metrics on this port (a host without `hotline serve`)",
        ),
    ] = 0,
) -> None:
    """Run a Celery worker (all queues unless --queues is given)."""
    settings = get_settings()
    _configure_logging(settings)
    _prepare_metrics(settings, port=metrics_port, database=False)
    from service.worker.app import QUEUES, celery_app

    _require_broker(settings)
    _require_database()
    celery_app.worker_main(
        [
            # the start-up banner is not a log record: left out of a JSON log
            *(["--quiet"] if settings.log_format == "json" else []),
            "worker",
            "--loglevel",
            settings.log_level.upper(),
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "--queues",
            ",".join(
                settings.task_queue_prefix + name.strip()
                for name in (queues.split(",") if queues else QUEUES)
            ),
            "--hostname",
            f"hotline-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@app.command()
def scheduler() -> None:
    """Run Celery beat: the periodic outbox relay, deadline scans and callbacks.

    Only the scheduler holding the deployment's lock (`service.leader`) runs beat; another one
    waits as a standby and takes over when the holder dies."""
    from service.leader import scheduler_lock
    from service.worker.app import celery_app

    settings = get_settings()
    _configure_logging(settings)
    _require_broker(settings)
    _require_database()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    lock = scheduler_lock(settings.database_url, settings.var_dir)
    try:
        lock.acquire(
            on_standby=lambda kind: log.info(
                "scheduler: standby, another scheduler holds the %s; waiting to take over", kind
            )
        )
    except Exception as exc:
        raise CliError(
            f"scheduler lock unavailable: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from None
    log.info("scheduler: holding the %s; starting beat (pid %d)", lock.kind, os.getpid())
    celery_app.start(
        [
            "beat",
            "--loglevel",
            settings.log_level.upper(),
            "--schedule",
            str(settings.var_dir / "celerybeat-schedule"),
            "--pidfile=",
        ]
    )


@app.command()
def run() -> None:
    """Run everything on one machine: migrate, then API + worker + scheduler until interrupted."""
    settings = get_settings()
    _configure_logging(settings)
    # the children share the directory; `serve` reports it all
    _prepare_metrics(settings, port=0, database=False)
    _require_broker(settings)
    migrate(revision="head")
    from service.bootstrap import prepare
    from service.runtime import get_database

    prepare(settings, get_database(), reference_data=False)  # migrate() loaded it
    commands = {
        "api": ["serve"],
        "worker": ["worker", "--concurrency", "2"],
        "scheduler": ["scheduler"],
    }
    children = {
        name: subprocess.Popen([sys.executable, "-m", "service.cli", *args])
        for name, args in commands.items()
    }
    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    exit_code = 0
    listening = False
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                typer.echo(f"{name} exited with code {child.returncode}; stopping", err=True)
                exit_code = child.returncode or 1
                stopping = True
                break
        if not stopping and not listening and _accepts_connections(settings.host, settings.port):
            listening = True
            typer.echo(
                f"hotline-router running on http://{settings.host}:{settings.port} (Ctrl-C stops)"
            )
        time.sleep(0.1)
    started = time.monotonic()
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = started + STOP_GRACE_SECONDS
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %d s: killed", name, STOP_GRACE_SECONDS)
            child.kill()
            child.wait()
        log.debug("%s stopped after %.1f s", name, time.monotonic() - started)
    typer.echo(f"hotline-router stopped in {time.monotonic() - started:.1f} s")
    raise typer.Exit(exit_code)


STOP_GRACE_SECONDS = 10
"""How long `run` lets its processes finish what they are doing after SIGTERM (the worker's
running tasks are acknowledged late, so a killed one is redelivered)."""


def _accepts_connections(host: str, port: int) -> bool:
    """Whether the API listens yet (a wildcard bind address is asked on the loopback)."""
    target = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    try:
        with socket.create_connection((target, port), timeout=0.2):
            return True
    except OSError:
        return False


@app.command()
def probe(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a worker")] = 30.0,
) -> None:
    """Queue a probe task and wait until a worker has executed it (end-to-end check)."""
    from service import diagnostics
    from service.runtime import get_database

    settings = get_settings()
    _require_database()
    _require_broker(settings)
    with get_database().session() as session:
        probe_id = diagnostics.create_probe(db_session=session).id
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_database().session() as session:
            found = diagnostics.get_probe_or_raise(db_session=session, probe_id=probe_id)
            if found.executed_at is not None:
                typer.echo(f"probe {probe_id} executed by {found.worker}")
                return
        time.sleep(0.3)
    raise CliError(f"probe {probe_id} was not executed within {timeout:g} s: is a worker running?")


@app.command("phone-consumer")
def phone_consumer() -> None:
    """Consume call-centre transcripts from the RabbitMQ queue `intake.phone`."""
    from service import intake
    from service.channels.phone_queue import (
        PhoneTranscript,
        dead_letter_recorder,
        serve_phone_queue,
        to_appeal_input,
    )
    from service.runtime import get_database

    settings = get_settings()
    _configure_logging(settings)
    if not settings.phone_queue_url:
        raise CliError("HOTLINE_PHONE_QUEUE_URL (or an amqp:// HOTLINE_BROKER_URL) is not set")
    _require_database()
    database = get_database()

    def handle(transcript: PhoneTranscript) -> str:
        result = intake.submit(
            database=database,
            settings=settings,
            appeal=to_appeal_input(transcript),
            actor="phone-queue",
            role=Role.SYSTEM,
        )
        return result.number

    serve_phone_queue(settings.phone_queue_url, handle, on_poison=dead_letter_recorder(database))


@app.command("duplicate-server")
def duplicate_server() -> None:
    """Hold this host's duplicate index and answer the duplicate checks of its other processes
    (HOTLINE_DUPLICATE_SERVER: a Unix socket path or host:port)."""
    import threading

    from router.duplicates import detector
    from router.duplicates.index import AppealRecord, DuplicateCheck
    from service import intake
    from service.duplicate_server import DuplicateServer, address_of, authkey_of
    from service.runtime import get_database

    settings = get_settings()
    _configure_logging(settings)
    if not settings.duplicate_server:
        raise CliError("HOTLINE_DUPLICATE_SERVER is not set (a socket path or host:port)")
    try:
        address = address_of(settings.duplicate_server)
    except ValueError as exc:
        raise CliError(f"HOTLINE_DUPLICATE_SERVER: {exc}") from None
    _require_database()
    database = get_database()
    # The one index of the host: a local detector, whatever HOTLINE_DUPLICATE_SERVER says.
    local = detector.detector_for(database, intake.duplicate_config(settings))

    def check_many(records: list[AppealRecord]) -> list[DuplicateCheck]:
        with database.session() as session:
            return local.check_many(db_session=session, records=records)

    def warm_up() -> int:
        return local.warm_up(database.session)

    try:
        server = DuplicateServer(
            address, authkey_of(settings.secret_key.get_secret_value()), check_many, warm_up
        )
    except OSError as exc:
        raise CliError(
            f"duplicate server cannot listen on {settings.duplicate_server}: {exc}"
        ) from None

    def _stop(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)

    def _warm() -> None:
        added = warm_up()
        log.info("duplicate server: index warmed with %d recent work orders", added)

    threading.Thread(target=_warm, name="duplicate-warm-up", daemon=True).start()
    log.info("duplicate server: listening on %s", settings.duplicate_server)
    try:
        server.serve_forever()
    finally:
        server.close()
