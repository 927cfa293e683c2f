"""The key and user endpoints, for `fdm.urls` to include under /api/v1/admin/."""

from django.urls import path

from fdm.apikeys import api

urlpatterns = [
    path("keys/", api.ApiKeyListView.as_view(), name="key-list"),
    path("keys/<int:key_id>/", api.ApiKeyDetailView.as_view(), name="key-detail"),
    path("keys/<int:key_id>/history/", api.ApiKeyHistoryView.as_view(), name="key-history"),
    path("users/", api.UserListView.as_view(), name="user-list"),
    path("users/<str:username>/role/", api.UserRoleView.as_view(), name="user-role"),
]
