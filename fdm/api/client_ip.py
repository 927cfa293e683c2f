"""The client's address, as the login lockout (django-axes) counts it and the audit of decrypted reads records it.

X-Forwarded-For can be written by anyone; only the entries that trusted proxies appended can be believed. With
FDM_TRUSTED_PROXY_COUNT proxies in front (by default one when FDM_PROXY_SSL_HEADER names a proxy, else none),
the client is the address that the outermost of them appended: that many entries from the right. Without
trusted proxies it is the connection's own address.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    remote: str | None = request.META.get("REMOTE_ADDR")
    proxies: int = settings.FDM_TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < proxies:
        return remote  # the header did not pass through every proxy: it is the client's own word
    return forwarded[-proxies]
