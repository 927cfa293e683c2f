from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("", include("fdm.api.urls")),  # /api/v1/..., /health/live, /health/ready
    path("", include("django_prometheus.urls")),  # /metrics
]

# Errors outside the API's views (no URL matched) in the API's error body under /api/ and /health/.
handler404 = "fdm.api.errors.not_found"
handler500 = "fdm.api.errors.server_error"
