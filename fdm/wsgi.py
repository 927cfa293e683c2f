import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fdm.settings")
application = get_wsgi_application()

# A web process serves decrypted reads: refuse to start with a missing or malformed keyring, as commands do.
from django.core import checks  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

_errors = [message for message in checks.run_checks(tags=["fdm"]) if message.is_serious()]
if _errors:
    raise ImproperlyConfigured("; ".join(f"{message.id}: {message.msg}" for message in _errors))
