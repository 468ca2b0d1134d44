import logging
import re

# Where a socket's access lines go when the access log is off (`config.websocket`): a
# logger of uvicorn's that lets only warnings and errors through (`config.serve`).
QUIET_SOCKETS = "uvicorn.error.sockets"

# `?token=<access JWT>` and `?ticket=...` in a handshake's URL are credentials.
_CREDENTIALS = re.compile(r"((?:token|ticket)=)[^&\s\"']+")


def redacted(text: str) -> str:
    return _CREDENTIALS.sub(r"\1[redacted]", text)


class RedactCredentials(logging.Filter):
    """Keeps tokens and tickets in socket URLs out of the server's logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redacted(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redacted(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True
