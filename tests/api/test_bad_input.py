"""Hostile bodies get a clear 4xx, never a 500, and are refused before they are read whole."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import reverse

from fdm.api.parsers import MAX_DEPTH
from syncconfig import yaml_io
from syncconfig.models import TableConfig
from tests.api.conftest import error_of, table_dict

pytestmark = pytest.mark.django_db


class CountingStream(io.BytesIO):
    """A request body that tells how much of it the server read."""

    @property
    def read_bytes(self) -> int:
        return self.tell()


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_deeply_nested_json_is_refused_with_400(operator, depth):
    body = table_dict("deep", notes=None)
    body["notes"] = "x"
    nested = json.dumps(body)[:-1] + ', "column_names": ' + "[" * depth + "]" * depth + "}"
    for method, url in (("POST", "/api/v1/tables/"), ("PUT", "/api/v1/tables/deep/")):
        response = operator.generic(method, url, nested, content_type="application/json")
        assert response.status_code in (400, 404), response.content
        if method == "POST":
            assert response.status_code == 400
            assert "nested more than 32 levels deep" in error_of(response)["message"]
    assert not TableConfig.objects.exists()


def test_json_nested_within_the_limit_reaches_the_schema(operator):
    nested = table_dict("deep", column_names={"A": [[[["x"]]]]})
    response = operator.post("/api/v1/tables/", nested, format="json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "validation_error"


@pytest.mark.parametrize(
    "document",
    [
        "[" * 50_000,
        "tables: " + "[" * 5_000 + "]" * 5_000,
        "a:\n" + "".join(f"{'  ' * i}b{i}:\n" for i in range(1, 60)),
    ],
)
def test_deeply_nested_yaml_is_refused_with_400_naming_the_line(operator, document):
    response = operator.generic(
        "POST", "/api/v1/tables/yaml-import/", document, content_type="application/yaml"
    )
    assert response.status_code == 400, response.content
    messages = [detail["message"] for detail in error_of(response)["details"]]
    assert any("nest more than 32 levels deep" in m and "line" in m for m in messages), messages


def test_a_json_body_over_the_limit_is_413_before_it_is_read(operator, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps(table_dict("big", notes="x" * 20_000)).encode()
    stream = CountingStream(body)
    response = operator.generic(
        "POST",
        "/api/v1/tables/",
        b"",
        content_type="application/json",
        **{"CONTENT_LENGTH": str(len(body)), "wsgi.input": stream},
    )
    assert response.status_code == 413, response.content
    assert error_of(response)["code"] == "payload_too_large"
    assert stream.read_bytes == 0


def test_a_yaml_body_over_the_limit_is_413_before_it_is_read(operator):
    body = b"tables: []\n#" + b"x" * yaml_io.MAX_DOCUMENT_BYTES
    stream = CountingStream(body)
    response = operator.generic(
        "POST",
        "/api/v1/tables/yaml-import/",
        b"",
        content_type="application/yaml",
        **{"CONTENT_LENGTH": str(len(body)), "wsgi.input": stream},
    )
    assert response.status_code == 413, response.content
    assert stream.read_bytes == 0


def test_an_admin_upload_over_the_limit_is_refused_before_it_is_read(admin_client):
    big = SimpleUploadedFile("tables.yaml", b"tables: []\n#" + b"x" * (2 * yaml_io.MAX_DOCUMENT_BYTES))
    response = admin_client.post(reverse("admin:syncconfig_tableconfig_import"), {"file": big})
    assert response.status_code == 413
    assert "larger than the limit" in response.content.decode()


def _csrf_client(admin_user):
    """A logged-in browser: CSRF enforced, with the token its import page gave it."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    page = browser.get(reverse("admin:syncconfig_tableconfig_import"))
    return browser, str(page.context["csrf_token"])


def test_an_admin_upload_over_the_limit_is_not_read_even_for_its_csrf_token(admin_user):
    browser, token = _csrf_client(admin_user)
    big = b"tables: []\n#" + b"x" * (2 * yaml_io.MAX_DOCUMENT_BYTES)
    body = encode_multipart(BOUNDARY, {"csrfmiddlewaretoken": token, "file": io.BytesIO(big)})
    stream = CountingStream(body)
    response = browser.generic(
        "POST",
        reverse("admin:syncconfig_tableconfig_import"),
        b"",
        **{"CONTENT_TYPE": MULTIPART_CONTENT, "CONTENT_LENGTH": str(len(body)), "wsgi.input": stream},
    )
    assert response.status_code == 413
    assert stream.read_bytes == 0


def test_the_import_page_still_checks_csrf_for_a_body_within_the_limit(admin_user):
    browser, token = _csrf_client(admin_user)
    url = reverse("admin:syncconfig_tableconfig_import")
    document = SimpleUploadedFile("tables.yaml", b"tables: []\n")
    assert browser.post(url, {"file": document}).status_code == 403
    document.seek(0)
    preview = browser.post(url, {"file": document, "csrfmiddlewaretoken": token})
    assert preview.status_code == 200 and not preview.context["errors"]
