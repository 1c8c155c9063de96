from django.urls import path

from invitations import activation, views

urlpatterns = [
    path("activate/", activation.activate, name="activate"),
    path("invite/", views.invitation_verify, name="invitation-verify"),
    path("invite/code/", activation.invitation_code, name="invitation-code"),
    path("invite/account/", views.invitation_signup, name="invitation-signup"),
    path("invite/ready/", views.invitation_done, name="invitation-done"),
    path("invite/<str:token>/", views.invitation_link, name="invitation-link"),
]
