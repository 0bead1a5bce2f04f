"""The OpenAPI schema: valid, every error documented, its docs page served from this site; and the API checked
against it by schemathesis (in-process, through the WSGI application, with a token and the tiny real model).

Bounded for `make test`; set DETECTOR_SCHEMA_EXAMPLES for a longer run.
"""

import json
import os
import uuid
from http import HTTPStatus

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from tests.web.conftest import upload_file

pytestmark = pytest.mark.django_db
EXAMPLES = int(os.environ.get("DETECTOR_SCHEMA_EXAMPLES", "30"))
UPLOAD_OPERATION = "POST /api/v1/detections/"
# The upload keeps every check but the two that judge whether a request is schema-valid. A schema can say
# "binary", not "a JPEG that decodes", so schema-valid bytes that are no image are rightly refused (415, 400,
# 413); and schemathesis 4.32.5's coverage phase labels a valid array of 19 files as invalid. The file checks
# and the file-count limit have their own tests (test_api.py, test_batch.py).
UPLOAD_EXCLUDED_CHECKS = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection]
# Registering a callback: a schema can say "uri", not "an https address that resolves to a public one", so a
# schema-valid address that does not resolve (the tests' resolver knows no name) is rightly refused (400). The
# address checks have their own tests (test_webhooks.py).
WEBHOOK_OPERATION = "POST /api/v1/webhooks/"
WEBHOOK_EXCLUDED_CHECKS = [schemathesis.checks.positive_data_acceptance]


def generated_schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_the_schema_is_valid_openapi_3():
    schema = generated_schema()
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")


def test_the_schema_is_served_as_json(client):
    response = client.get(reverse("api:schema"), {"format": "json"})
    assert response.status_code == HTTPStatus.OK
    assert set(response.json()["paths"]) == {
        "/api/v1/detections/",
        "/api/v1/detections/{id}/",
        "/api/v1/detections/{id}/faces/{number}/{kind}.png",
        "/api/v1/detections/{id}/report.{kind}",
        "/api/v1/detections/{id}/tracks/{track}/stills/{number}/{kind}",
        "/api/v1/model/",
        "/api/v1/webhooks/",
        "/api/v1/webhooks/{id}/",
    }


def operations():
    for path, methods in generated_schema()["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


@pytest.mark.parametrize("path, method, operation", list(operations()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_operation_documents_its_errors_with_examples(path, method, operation):
    responses = operation["responses"]
    assert "401" in responses and operation["summary"]
    for status, response in responses.items():
        if status.startswith(("4", "5")):
            content = response["content"]["application/json"]
            assert content["schema"]["$ref"].endswith(("/Error", "/UploadError")), status
            assert content["examples"], f"{method} {path} {status} has no example"


def test_the_docs_page_loads_swagger_ui_from_this_site_under_a_strict_policy(client):
    response = client.get(reverse("api:docs"))
    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "<script>" not in page and "<style>" not in page and "//cdn" not in page
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp


def test_the_docs_page_script_is_a_file_of_its_own(client):
    response = client.get(reverse("api:docs"), {"script": ""})
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"].startswith("application/javascript")
    assert reverse("api:schema") in response.content.decode()


# schemathesis


@pytest.fixture
def no_rate_limit(settings):
    # Set once per test, not per example; the limit has its own tests, here it would make most answers 429s.
    settings.DETECTOR_RATE_LIMIT = ""
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]


@pytest.fixture
def keep_connection():
    """Keep the test's database connection (and its transaction) open between requests, as Django's test
    client does: the WSGI handler would otherwise close it when each request finishes. Ask for it after the
    fixtures that use the test client, which connects the handlers again after each of its requests."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# The schema as the server generates it (loaded at collection: schemathesis's lazy fixture loader does not
# work with pytest 9), sent to the WSGI application in-process.
schema = schemathesis.openapi.from_dict(json.loads(OpenApiJsonRenderer().render(generated_schema())))
schema.app = get_wsgi_application()
OWNED = {}  # the id of a detection of the token's user, made for each test


@schema.hook
def map_path_parameters(context, path_parameters):
    """Send about half the well-formed ids to a detection that exists, so that reading, deleting and the face
    pictures are exercised beyond their 404s."""
    pk = (path_parameters or {}).get("id")
    if OWNED and isinstance(pk, str) and is_uuid(pk) and uuid.UUID(pk).int % 2 == 0:
        return {**path_parameters, "id": OWNED["id"]}
    return path_parameters


def non_empty(item):
    """Werkzeug's test encoder (the WSGI transport) writes an empty file part without the line break before the
    next boundary, and Django then does not see that part; so an empty file gets one byte here (the API's answer
    to an empty file has its own test)."""
    return b"\x00" if getattr(item, "data", item) in (b"", "") else item


def is_uuid(text):
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@pytest.fixture
def owned_detection(api):
    OWNED["id"] = api.post(reverse("api:detections"), {"image": upload_file()}).json()["results"][0]["detection"]["id"]
    yield OWNED["id"]
    OWNED.clear()


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_answers_as_its_schema_says(
    case, token, tiny_detector, no_rate_limit, owned_detection, keep_connection, run_counts
):
    upload = case.operation.label == UPLOAD_OPERATION
    if upload and isinstance(case.body, dict) and isinstance(case.body.get("image"), list):
        case.body = {**case.body, "image": [non_empty(item) for item in case.body["image"]]}
    response = case.call_and_validate(
        base_url="http://localhost",
        headers={"Authorization": f"Token {token}"},
        excluded_checks=UPLOAD_EXCLUDED_CHECKS
        if upload
        else WEBHOOK_EXCLUDED_CHECKS
        if case.operation.label == WEBHOOK_OPERATION
        else [],
    )
    counts = run_counts(f"schemathesis: requests by status (DETECTOR_SCHEMA_EXAMPLES={EXAMPLES})")
    counts["requests"] += 1
    counts[f"HTTP {response.status_code}"] += 1
