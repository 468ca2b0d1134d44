from django.urls import path

from realtime.consumers import TripConsumer

websocket_urlpatterns = [path("taxi/", TripConsumer.as_asgi())]
