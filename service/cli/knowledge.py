"""Knowledge-base commands: `hotline knowledge seed`, `hotline knowledge propose`."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.app import CliError, app

knowledge_app = typer.Typer(help="Knowledge base of answers (知识库)", no_args_is_help=True)
app.add_typer(knowledge_app, name="knowledge")


@knowledge_app.command("seed")
def seed(
    limit: Annotated[
        int | None, typer.Option(help="Seed only the first N official replies")
    ] = None,
    classify: Annotated[
        bool,
        typer.Option(
            "--classify/--no-classify",
            help="Categorise unlabelled messages with the active model",
        ),
    ] = True,
) -> None:
    """Approved articles from the real official replies in fixtures/data/real (idempotent)."""
    from service.bootstrap import load_reference_data
    from service.config import get_settings
    from service.knowledge import seed_official_replies
    from service.runtime import get_database

    if limit is not None and limit <= 0:
        raise CliError(f"--limit must be positive, got {limit}")
    load_reference_data(get_database())  # the categories and departments the articles name
    with get_database().session() as db_session:
        created = seed_official_replies(
            db_session=db_session, settings=get_settings() if classify else None, limit=limit
        )
    typer.echo(f"seeded {created} knowledge articles")


@knowledge_app.command("propose")
def propose(
    limit: Annotated[int, typer.Option(help="At most this many orders")] = 200,
) -> None:
    """Proposed articles from closed orders' replies not proposed yet (supervisors review them)."""
    from router.knowledge import service as knowledge
    from service.runtime import get_database

    if limit <= 0:
        raise CliError(f"--limit must be positive, got {limit}")
    with get_database().session() as db_session:
        created = knowledge.propose_from_closed_orders(
            db_session=db_session, actor="cli", limit=limit
        )
        count = len(created)
    typer.echo(f"proposed {count} knowledge articles")
