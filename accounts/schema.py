from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class RevocableJWTScheme(SimpleJWTScheme):
    """Documents our log-out-aware JWT authentication as the bearer scheme it is."""

    target_class = "accounts.authentication.RevocableJWTAuthentication"
