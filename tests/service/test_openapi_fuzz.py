"""Schemathesis against the OpenAPI document: whatever the schema allows, and requests it does not
allow, must never be answered with a 5xx, signed in as a supervisor or not signed in at all.

Bounded so that the suite stays fast (each example costs about 0.1 s of CPU): signed in, two
derandomized examples per operation and one that breaks the schema; without credentials, one.
No shrinking, no example database. Every operation is tried and every failure
reported together (operation, the request as a curl command, the server's traceback).

The operations are driven through schemathesis' Python API (`APIOperation.as_strategy` with
Hypothesis' `@given`) rather than its pytest plugin, whose lazy-fixture loader does not work with
pytest 9 yet (it reads the private `Function._nodeid`).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from service import runtime

Login = Callable[[str], dict[str, str]]

BOUNDED = settings(
    deadline=None,
    database=None,
    derandomize=True,  # the same cases on every run: a failure here is reproducible
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
POSITIVE = schemathesis.GenerationMode.POSITIVE
NEGATIVE = schemathesis.GenerationMode.NEGATIVE


def fuzz_operation(
    operation: schemathesis.APIOperation,
    mode: schemathesis.GenerationMode,
    examples: int,
    headers: dict[str, str],
    failures: list[str],
    session: Any,
) -> None:
    @settings(BOUNDED, max_examples=examples)
    @given(case=operation.as_strategy(mode))
    def run(case: schemathesis.Case) -> None:
        try:
            case.call_and_validate(headers=headers, checks=[not_a_server_error], session=session)
        except Exception:
            failures.append(
                f"{operation.label} ({mode.value}): {case.as_curl_command(headers)}\n"
                f"{traceback.format_exc(limit=-8)}"
            )

    try:
        run()
    except Unsatisfiable:
        # Every input of the operation is a free-form string: nothing can be made invalid.
        assert mode is NEGATIVE, operation.label


def fuzz(client: TestClient, headers: dict[str, str], *, positive: int, negative: int) -> list[str]:
    """Run every operation of the app's OpenAPI document; the failures, described.

    `positive` examples per operation fit the schema, `negative` ones do not (only for
    operations that take inputs: generating "invalid nothing" is slow and pointless).
    """
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    failures: list[str] = []
    operations = 0
    # One in-process client for the whole run (by default schemathesis starts one per request).
    with asgi.get_client(client.app) as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            fuzz_operation(operation, POSITIVE, positive, headers, failures, session)
            has_inputs = next(iter(operation.iter_parameters()), None) is not None
            if negative and (has_inputs or operation.get_request_payload_content_types()):
                fuzz_operation(operation, NEGATIVE, negative, headers, failures, session)
    assert operations >= 50, "the OpenAPI document lost its operations"
    return failures


@pytest.fixture
def everything_auto_dispatched(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # Generated work-order actions then also meet orders that are at a department.
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "0")
    runtime.get_settings.cache_clear()


@pytest.mark.slow
@pytest.mark.usefixtures("everything_auto_dispatched")
def test_no_server_error_for_a_supervisor(client: TestClient, login: Login) -> None:
    failures = fuzz(client, login("supervisor"), positive=2, negative=1)
    assert not failures, f"{len(failures)} 5xx:\n\n" + "\n\n".join(failures)


@pytest.mark.slow
@pytest.mark.usefixtures("everything_auto_dispatched")
def test_no_server_error_without_credentials(client: TestClient) -> None:
    # Public operations already met broken requests above; here everything else must say 401.
    failures = fuzz(client, {}, positive=1, negative=0)
    assert not failures, f"{len(failures)} 5xx:\n\n" + "\n\n".join(failures)
