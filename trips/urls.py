from rest_framework.routers import SimpleRouter

from trips.api import TripViewSet

router = SimpleRouter()
router.register("trip", TripViewSet, basename="trip")

urlpatterns = router.urls
