"""The project's URLs: the admin, the REST API (/api/v1/...), the health endpoints (/health/live, /health/ready)
and the metrics (/metrics).

The top of the house: the only module of `fdm` that knows the apps. Each API area is a plain list of paths from
the app that owns it; a new area is one more `path("<area>/", include(...))` line in `v1`.
"""

from typing import Any

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer, OpenApiYamlRenderer2
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.exceptions import NotAuthenticated
from rest_framework.renderers import JSONRenderer

from fdm.api import health
from fdm.api.metrics import metrics
from fdm.apikeys import urls as apikeys_urls
from fdm.notifications import urls as notifications_urls
from syncengine.api.urls import admin_urls, data_urls, metadata_urls, pipeline_urls, table_urls

# JSON first: the schema by default, and errors (401, 403) in the API's error body as application/json.
schema_view = SpectacularAPIView.as_view(
    renderer_classes=[JSONRenderer, OpenApiJsonRenderer, OpenApiYamlRenderer, OpenApiYamlRenderer2]
)


class DocsView(SpectacularSwaggerSplitView):
    """The interactive docs: a person who is not logged in is sent to the admin's login page and back. Its
    start-up script is a request of its own (`?script=`), so that the page needs no inline script (CSP)."""

    def handle_exception(self, exc: Exception) -> Any:
        if isinstance(exc, NotAuthenticated):
            return redirect_to_login(self.request.get_full_path(), login_url="/admin/login/")
        return super().handle_exception(exc)


v1 = [
    path("tables/", include(table_urls)),
    path("tables/", include("syncconfig.api.urls")),
    path("pipeline/", include(pipeline_urls)),
    path("metadata/", include(metadata_urls)),
    path("data/", include(data_urls)),
    path("admin/", include(apikeys_urls.urlpatterns + admin_urls)),
    path("incidents/", include(notifications_urls.urlpatterns)),
    path("schema/", schema_view, name="schema"),
    path("docs/", DocsView.as_view(url_name="api:schema"), name="docs"),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include((v1, "api"))),
    path("health/live", health.LiveView.as_view(), name="health-live"),
    path("health/ready", health.ReadyView.as_view(), name="health-ready"),
    path("metrics", metrics, name="prometheus-django-metrics"),  # FDM_METRICS_TOKEN guards it when set
]

# Errors outside the API's views (no URL matched) in the API's error body under /api/ and /health/.
handler404 = "fdm.api.errors.not_found"
handler500 = "fdm.api.errors.server_error"
