from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="api_docs", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", include("accounts.urls")),
    path("api/", include("trips.urls")),
    path("api/", include("realtime.urls")),
    path("api/", include("dispatch.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api_schema"), name="api_docs"),
    path("api-auth/", include("rest_framework.urls")),
    *static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT),
]
