from django.urls import path

from portal import views

urlpatterns = [
    path("email/", views.email_change, name="portal-email-change"),
    path("email/sent/", views.email_change_sent, name="portal-email-sent"),
    path("email/confirm/", views.email_change_confirm, name="portal-email-confirm"),
    path(
        "email/confirm/<str:token>/",
        views.email_change_link,
        name="portal-email-confirm-link",
    ),
    path("", views.portal_home, name="portal-home"),
    path("login/", views.portal_login, name="portal-login"),
    path("logout/", views.portal_logout, name="portal-logout"),
    path("password-reset/", views.password_reset, name="portal-password-reset"),
    path(
        "password-reset/sent/",
        views.password_reset_sent,
        name="portal-password-reset-sent",
    ),
    path(
        "password-reset/done/",
        views.password_reset_complete,
        name="portal-password-reset-complete",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        views.password_reset_confirm,
        name="portal-password-reset-confirm",
    ),
    path("forgot-username/", views.forgot_username, name="portal-forgot-username"),
    path(
        "forgot-username/sent/",
        views.forgot_username_sent,
        name="portal-forgot-username-sent",
    ),
]
