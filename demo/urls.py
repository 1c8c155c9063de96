from django.urls import path

from demo import views

urlpatterns = [
    path("mailbox/", views.mailbox, name="demo-mailbox"),
    path("mailbox/<str:key>/", views.mailbox_message, name="demo-mailbox-message"),
    path(
        "mailbox/<str:key>/html/",
        views.mailbox_message_html,
        name="demo-mailbox-message-html",
    ),
]
