from django.urls import path

from syncengine.api import admin, data, metadata, pipeline, reconciliations, validate

pipeline_urls = [
    path("runs/", pipeline.RunListView.as_view(), name="run-list"),
    path("runs/<int:run_id>/", pipeline.RunDetailView.as_view(), name="run-detail"),
    path("runs/<int:run_id>/cancel/", pipeline.RunCancelView.as_view(), name="run-cancel"),
    path("runs/<int:run_id>/evidence/", pipeline.RunEvidenceView.as_view(), name="run-evidence"),
    path("tables/", pipeline.TableStatusListView.as_view(), name="table-status-list"),
    path("tables/<str:name>/", pipeline.TableStatusView.as_view(), name="table-status"),
    path(
        "tables/<str:name>/reconcile/", reconciliations.TableReconcileView.as_view(), name="table-reconcile"
    ),
    path("reconciliations/", reconciliations.ReconciliationListView.as_view(), name="reconciliation-list"),
    path(
        "reconciliations/<int:reconciliation_id>/",
        reconciliations.ReconciliationDetailView.as_view(),
        name="reconciliation-detail",
    ),
]

# Mounted under /api/v1/tables/ beside the configuration's own endpoints.
table_urls = [
    path("<str:name>/validate/", validate.TableValidateView.as_view(), name="table-validate"),
]

metadata_urls = [
    path("type-mapping/", metadata.TypeMappingView.as_view(), name="type-mapping"),
    path("tables/<str:name>/", metadata.TableMetadataView.as_view(), name="table-metadata"),
    path("tables/<str:name>/row-counts/", metadata.RowCountsView.as_view(), name="row-counts"),
]

admin_urls = [
    path("workers/", admin.WorkerStatusView.as_view(), name="workers"),
    path("runs/purge/", admin.RunPurgeView.as_view(), name="run-purge"),
]

data_urls = [
    path("<str:name>/", data.TableDataView.as_view(), name="table-data"),
    path("<str:name>/search/", data.TableSearchView.as_view(), name="table-search"),
]
