"""The docs page (Swagger UI) loads only what fdm serves itself, under a Content-Security-Policy that allows no
other origin and no inline script; the admin carries the same policy."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders


@pytest.fixture
def logged_in(client, db):
    client.force_login(User.objects.create_user("viewer-person", is_staff=True, is_superuser=True))
    return client


def _policy(response) -> dict[str, list[str]]:
    policy: dict[str, list[str]] = {}
    for directive in response["Content-Security-Policy"].split(";"):
        name, *values = directive.split()
        policy[name] = values
    return policy


def test_the_docs_page_references_only_same_origin_assets(logged_in):
    response = logged_in.get("/api/v1/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert {"swagger-ui-bundle.js", "swagger-ui.css"} <= {url.rsplit("/", 1)[-1] for url in assets}
    for url in assets:
        assert not urlsplit(url).netloc, f"{url} comes from another origin"
        assert url.startswith(("/static/", "/api/v1/docs/")), url
    assert "<script>" not in page  # the start-up script is a request of its own


def test_the_docs_assets_are_served_from_this_installation(logged_in):
    page = logged_in.get("/api/v1/docs/").content.decode()
    for url in re.findall(r'(?:src|href)="(/static/[^"?]+)', page):
        assert finders.find(url.removeprefix("/static/")), f"{url} is not among the static files"
    script = logged_in.get("/api/v1/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert b"/api/v1/schema/" in script.content


@pytest.mark.parametrize("path", ["/api/v1/docs/", "/admin/", "/admin/login/"])
def test_pages_carry_a_content_security_policy_that_allows_no_other_origin(logged_in, path):
    response = logged_in.get(path)

    policy = _policy(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval, no CDN
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    for values in policy.values():
        assert all(value.startswith("'") or value == "data:" for value in values), values
