"""API-key authentication: `Authorization: Api-Key <key>`.

The key is looked up by its SHA-256 digest; it is never logged, stored or echoed. A revoked, expired or unknown
key is refused with 401, exactly like a missing one would be for an endpoint that needs a login, so that a
caller cannot tell which keys ever existed.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from fdm.apikeys import selectors, services

KEYWORD = "Api-Key"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates a request that carries `Authorization: Api-Key <key>`; `request.auth` is the ApiKey."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != KEYWORD.lower().encode():
            return None  # another scheme, or none: let the next authenticator look
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Api-Key header: expected `Api-Key <key>`.")
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        api_key = selectors.api_key_for_secret(key=key)
        if api_key is None or not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        services.api_key_touch(api_key=api_key)
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        # Makes unauthenticated requests 401 (with this challenge) rather than 403.
        return KEYWORD


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes the Api-Key header in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; create a key with `manage.py create_api_key` or /api/v1/admin/keys/.",
        }


class SessionAuthentication(authentication.SessionAuthentication):
    """The admin's login session, for the browsable API and the docs; a session that lacks a second factor its
    user needs (a login from before the user was granted `read_decrypted`) counts as no login."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        from fdm.two_factor import second_factor_satisfied

        result = super().authenticate(request)
        if result is None or not second_factor_satisfied(result[0]):
            return None
        return result


class SessionAuthenticationScheme(SessionScheme):
    """Describes the session cookie in the OpenAPI schema, as drf-spectacular does for DRF's own class."""

    target_class = "fdm.api.authentication.SessionAuthentication"
    priority = 0
