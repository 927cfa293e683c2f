"""The image's HEALTHCHECK: GET /health/live on this container's web server, exit 0 when it answers 200.

Django answers 400 to a Host header it does not know, so the request names the first entry of ALLOWED_HOSTS
(a leading dot, Django's wildcard for subdomains, is dropped; `*` becomes `localhost`). Standard library only.
"""

from __future__ import annotations

import os
import sys
import urllib.request

PORT = os.environ.get("FDM_HEALTHCHECK_PORT", "8000")


def host_header() -> str:
    first = os.environ.get("ALLOWED_HOSTS", "localhost").split(",")[0].strip().lstrip(".")
    return "localhost" if first in {"", "*"} else first


def main() -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{PORT}/health/live", headers={"Host": host_header()})
    try:
        with urllib.request.urlopen(request, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as error:
        print(f"/health/live: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
