"""Command-line entry point `hotline`: imports the command modules and runs the app."""

from __future__ import annotations

import sys

# Command modules register themselves on `app` when imported.
from service.cli import data, knowledge, ops, training  # noqa: F401  (import for side effect)
from service.cli.app import CliError, app

__all__ = ["CliError", "app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning expected failures into one line on stderr and a non-zero exit."""
    from classifier.errors import ClassifierError
    from router.errors import AppError

    try:
        app(args=argv, standalone_mode=False)
    except CliError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except (AppError, ClassifierError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except FileNotFoundError as exc:
        print(f"error: file not found: {exc.filename or exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        if isinstance(exc, click.exceptions.Exit):
            raise SystemExit(exc.exit_code) from None
        if isinstance(exc, click.exceptions.Abort):
            raise SystemExit(1) from None
        raise
