from django.urls import include, path

urlpatterns = [
    path("", include("patients.urls")),
    path("", include("invitations.urls")),
    path("portal/", include("portal.urls")),
    path("audit/", include("audit.urls")),
    path("imports/", include("imports.urls")),
    path("demo/", include("demo.urls")),
]
