from django.urls import path

from invitations import views

urlpatterns = [
    path("invite/", views.invitation_verify, name="invitation-verify"),
    path("invite/account/", views.invitation_signup, name="invitation-signup"),
    path("invite/ready/", views.invitation_done, name="invitation-done"),
    path("invite/<str:token>/", views.invitation_link, name="invitation-link"),
]
