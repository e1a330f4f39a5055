"""The running API keeps to its OpenAPI document, under generated and hostile requests.

Schemathesis generates requests for every operation from the document and runs its
default checks on each answer: no 5xx, documented status codes and content types,
bodies that match the response schemas, invalid input rejected, valid input accepted.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from tests.conftest import AUTH_KEY


@pytest.fixture
def api_schema(app):
    # Knowing the key, schemathesis also sends requests without it and expects 401.
    config = SchemathesisConfig.from_dict({"auth": {"openapi": {"apiKey": {"api_key": AUTH_KEY}}}})
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)


@pytest.fixture
def existing_owner_id(make_user):
    return make_user()["id"]


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=100,
    derandomize=True,  # the same requests on every run
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_keeps_to_its_document(case, existing_owner_id):
    positive = case.meta.generation.mode.is_positive
    if positive and isinstance(case.body, dict) and "owner_id" in case.body:
        # The document cannot say that owner_id must name an existing user.
        case.body["owner_id"] = existing_owner_id
    case.call_and_validate()
