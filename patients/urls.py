from django.urls import path

from patients import views

urlpatterns = [
    path("", views.onboarding, name="onboarding"),
    path("actions/", views.bulk_action, name="bulk-action"),
    path("patients/<int:pk>/", views.patient_portal, name="patient-portal"),
    path(
        "patients/<int:pk>/username/",
        views.patient_username,
        name="patient-username",
    ),
    path("patients/<int:pk>/email/", views.patient_email, name="patient-email"),
    path("patients/<int:pk>/access/", views.patient_access, name="patient-access"),
    path("patients/<int:pk>/invite/", views.patient_invite, name="patient-invite"),
    path("staff/login/", views.staff_login, name="staff-login"),
    path("staff/logout/", views.staff_logout, name="staff-logout"),
]
