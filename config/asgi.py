import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before anything imports models.
django.setup(set_prefix=False)

from config.http import SyncChainASGIHandler  # noqa: E402

django_http = SyncChainASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.lifespan import Lifespan  # noqa: E402
from realtime.auth import SocketAuthMiddleware  # noqa: E402
from realtime.origins import OriginCheck  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402
from trips.fast_list import TripListFastPath  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": TripListFastPath(django_http),
        "lifespan": Lifespan(),
        "websocket": OriginCheck(SocketAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
