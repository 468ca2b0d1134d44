from config.exceptions import DomainError


class UsernameTaken(DomainError):
    code = "username_taken"
    field = "username"


class InvalidRefreshToken(DomainError):
    code = "invalid_refresh_token"
    field = "refresh"
