from django.urls import path

from syncconfig.api import views

# Table names are lower-case letters, digits and _ (syncconfig.schema), so the hyphenated paths never clash.
urlpatterns = [
    path("", views.TableListView.as_view(), name="table-list"),
    path("yaml-export/", views.TableExportView.as_view(), name="table-export"),
    path("yaml-import/", views.TableImportView.as_view(), name="table-import"),
    path("<str:name>/", views.TableDetailView.as_view(), name="table-detail"),
    path("<str:name>/history/", views.TableHistoryView.as_view(), name="table-history"),
]
