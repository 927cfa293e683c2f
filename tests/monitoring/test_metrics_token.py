"""/metrics behind FDM_METRICS_TOKEN: open when the token is unset, a bearer token when it is set."""

from __future__ import annotations

import pytest

TOKEN = "s3cret-metrics-token"


@pytest.fixture
def metrics_token(settings) -> str:
    settings.FDM_METRICS_TOKEN = TOKEN
    return TOKEN


def test_without_a_token_configured_metrics_are_open(client, db, settings):
    settings.FDM_METRICS_TOKEN = None

    response = client.get("/metrics")

    assert response.status_code == 200
    assert b"fdm_collector_up" in response.content


def test_with_a_token_configured_a_scrape_without_it_is_refused(client, db, metrics_token):
    response = client.get("/metrics")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"fdm_" not in response.content


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", "Bearer s3cret", f"Basic {TOKEN}", TOKEN, "Bearer ", f"Api-Key {TOKEN}"],
)
def test_a_wrong_token_is_refused(client, db, metrics_token, authorization):
    assert client.get("/metrics", HTTP_AUTHORIZATION=authorization).status_code == 401


def test_the_right_bearer_token_gets_the_metrics(client, db, metrics_token):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert b"fdm_collector_up" in response.content


def test_metrics_are_not_redirected_to_https(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.FDM_METRICS_TOKEN = None

    assert client.get("/metrics").status_code == 200
