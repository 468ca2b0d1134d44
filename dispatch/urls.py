from django.urls import path

from dispatch import api

urlpatterns = [
    path("driver/online/", api.DriverOnlineView.as_view(), name="driver_online"),
    path("driver/offline/", api.DriverOfflineView.as_view(), name="driver_offline"),
    path("driver/location/", api.DriverLocationView.as_view(), name="driver_location"),
]
