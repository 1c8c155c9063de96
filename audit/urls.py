from django.urls import path

from audit import views

urlpatterns = [
    path("", views.audit_log, name="audit-log"),
    path("export.csv", views.export_csv, name="audit-export-csv"),
    path("export.ndjson", views.export_fhir, name="audit-export-fhir"),
]
