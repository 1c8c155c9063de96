from django.urls import path

from imports import views

urlpatterns = [
    path("", views.import_list, name="import-list"),
    path("new/", views.import_new, name="import-new"),
    path("<int:pk>/", views.import_run, name="import-run"),
    path("<int:pk>/progress/", views.import_run_progress, name="import-run-progress"),
]
