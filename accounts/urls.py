from django.urls import path
from rest_framework_simplejwt.views import TokenRefreshView

from accounts import api

urlpatterns = [
    path("sign_up/", api.SignUpView.as_view(), name="sign_up"),
    path("log_in/", api.LogInView.as_view(), name="log_in"),
    path("log_out/", api.LogOutView.as_view(), name="log_out"),
    path("token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("me/", api.MeView.as_view(), name="me"),
]
