"""The `hotline` Typer application and its error convention.

Every command module under `service/cli/` registers its commands on `app`. Expected failures raise
`CliError` (or any `router.errors.AppError` / `classifier.errors.ClassifierError`), which `main()`
prints as one line on stderr with a non-zero exit code: no tracebacks for bad input.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="hotline",
    help="hotline-router: routing service for 12345 government service hotlines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class CliError(Exception):
    """An expected failure of a command: printed as one line, exit code `exit_code`."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
