from django.urls import path

from realtime.api import WebSocketTicketView

urlpatterns = [path("ws-ticket/", WebSocketTicketView.as_view(), name="ws_ticket")]
