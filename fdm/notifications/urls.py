"""The incident endpoints, for `fdm.urls` to include under /api/v1/incidents/."""

from django.urls import path

from fdm.notifications import api

urlpatterns = [
    path("", api.IncidentListView.as_view(), name="incident-list"),
]
