from django.urls import path

from patients import job_views, letter_views, twofactor_views, views

urlpatterns = [
    path("", views.onboarding, name="onboarding"),
    path("actions/", views.bulk_action, name="bulk-action"),
    path("actions/<int:pk>/", job_views.bulk_job, name="bulk-job"),
    path("actions/<int:pk>/resume/", job_views.bulk_job_resume, name="bulk-job-resume"),
    path("patients/<int:pk>/", views.patient_portal, name="patient-portal"),
    path(
        "patients/<int:pk>/username/",
        views.patient_username,
        name="patient-username",
    ),
    path("patients/<int:pk>/email/", views.patient_email, name="patient-email"),
    path("patients/<int:pk>/access/", views.patient_access, name="patient-access"),
    path("patients/<int:pk>/invite/", views.patient_invite, name="patient-invite"),
    path(
        "patients/<int:pk>/letter/",
        letter_views.patient_letter,
        name="patient-letter",
    ),
    path("staff/login/", views.staff_login, name="staff-login"),
    path(
        "staff/login/code/",
        twofactor_views.staff_login_code,
        name="staff-login-code",
    ),
    path(
        "staff/login/authenticator/",
        twofactor_views.staff_two_factor_enrol,
        name="staff-two-factor-enrol",
    ),
    path("staff/logout/", views.staff_logout, name="staff-logout"),
]
