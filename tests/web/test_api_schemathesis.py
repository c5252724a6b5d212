"""Property-based run of schemathesis over the live OpenAPI document, against the Flask app.

Every operation gets a few generated requests (with a valid token of business acme); each
answer must not be a server error and must match what the document says: a documented status,
a documented content type, a body valid under the documented schema.
"""

from __future__ import annotations

import os
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crmcore.auth.service import create_api_token

#: examples per operation (raise it for a deeper local run: API_FUZZ_EXAMPLES=200)
EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "12"))
PROBLEM = "application/problem+json"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def seeded(ctx):
    """A little data so that generated ids sometimes hit real rows (ids start at 1 per test)."""
    from crmcore.fields.service import define_field
    from crmcore.parties.service import create_contact, create_party, party_details
    from crmcore.records import service as records

    party = create_party(ctx, {"name": "Seed", "mechanisms": [{"kind": "email", "value": "seed@example.com"}],
                               "addresses": [{"line1": "Seed St 1"}]})
    contact = create_contact(ctx, {"first_name": "Seed", "party_id": party.id})
    deal = records.create_record(ctx, "deal", {"title": "Seed deal", "party_id": party.id})
    lead = records.create_record(ctx, "lead", {"title": "Seed lead", "party_id": party.id})
    details = party_details(ctx, party.id)
    field = define_field(ctx, "party", {"key": "size", "label": "Size", "type": "integer"})
    return {"party_id": party.id, "contact_id": contact.id, "record_id": deal.id, "lead_id": lead.id,
            "mechanism_id": details["mechanisms"][0].id, "address_id": details["addresses"][0].id,
            "pipeline_id": deal.pipeline_id, "field_id": field.id, "name": "core-records"}


def test_the_api_keeps_its_documented_promises(app, ctx, seeded):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    auth = {"Authorization": f"Bearer {create_api_token(ctx, 'schemathesis')[1]}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40

    failures = []
    for operation in operations:
        names = re.findall(r"{(\w+)}", operation.path)
        ids = {name: seeded[name] for name in names if name in seeded}
        if operation.path.endswith("/qualify"):
            ids["record_id"] = seeded["lead_id"]
        strategy = operation.as_strategy(path_parameters=ids) | operation.as_strategy()

        @given(case=strategy)
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def run(case):
            case.call_and_validate(headers=auth, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, not only the first
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)



def test_invalid_requests_never_get_a_server_error(app, ctx, seeded):
    """Requests that break the document (wrong types, missing fields, bad paths) are answered
    with a 4xx problem, never a 5xx."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    auth = {"Authorization": f"Bearer {create_api_token(ctx, 'negative')[1]}"}
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        @settings(max_examples=max(EXAMPLES // 3, 3), deadline=None, derandomize=True, database=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        def run(case):
            response = case.call(headers=auth)
            assert response.status_code < 500, response.text[:500]
            if response.status_code >= 400:
                assert response.headers["content-type"][0].startswith(PROBLEM), response.headers

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
