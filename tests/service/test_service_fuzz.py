"""Property-based fuzzing of the whole API from its own OpenAPI schema (schemathesis, in-process
ASGI): no 500s, and every response matches its documented status, content type and schema."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.store import ModelStore
from service import loading
from service.app import create_app
from service.schemas import LoadRequest, StoreSpec
from tests.service.conftest import make_settings, tiny_model

pytestmark = pytest.mark.slow

_ROOT = Path(tempfile.mkdtemp(prefix="mmvae-fuzz-"))
ModelStore(_ROOT / "models").save(tiny_model(), "tiny", "1")
# No Hub access while fuzzing: every Hub organisation is off the allow-list.
SETTINGS = make_settings(
    _ROOT / "models", _ROOT, preload=[], hub_org_allowlist=["none-allowed"], max_eval_samples=50
)
app = create_app(SETTINGS)
app.state.registry.put(loading.load(LoadRequest(source=StoreSpec(name="tiny")), SETTINGS))
app.state.preload_status.clear()
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_fuzz(case) -> None:
    if case.path_parameters and "name" in case.path_parameters:
        if case.method.upper() == "DELETE":
            return  # unloading the model would make the other cases 404s
        case.path_parameters["name"] = "tiny"
    case.call_and_validate(checks=CHECKS)


# Stateful: sequences over the job and dataset routes, following the schema's links (a
# submitted job's id into GET and cancel, an uploaded dataset's id into GET), with the same
# checks on every response. No worker runs: submitted jobs stay queued or get cancelled.
class JobRoutes(schema.include(path_regex="^/v1/(jobs|datasets)").as_state_machine()):
    def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
        case.validate_response(response, checks=CHECKS)  # as the stateless test


TestJobRoutesStateful = JobRoutes.TestCase
TestJobRoutesStateful.settings = settings(
    max_examples=15,
    stateful_step_count=4,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


def test_the_state_machine_follows_links_between_job_routes() -> None:
    """The stateful test above exercises real transitions, not only independent calls."""
    incoming = {
        label: [link.source.label for link in t.incoming]
        for label, t in JobRoutes._transitions.operations.items()
    }
    assert "POST /v1/jobs" in incoming["GET /v1/jobs/{job_id}"]
    assert "POST /v1/jobs" in incoming["POST /v1/jobs/{job_id}/cancel"]
    assert "POST /v1/datasets" in incoming["GET /v1/datasets/{dataset_id}"]
