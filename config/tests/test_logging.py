import logging

from config.logging import RedactCredentials


def test_socket_credentials_never_reach_the_log():
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        "%s - 'WebSocket %s' [accepted]",
        (("127.0.0.1", 5000), "/taxi/?token=eyJhbGciOi.secret.sig&x=1"),
        None,
    )
    ticket = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, "GET /taxi/?ticket=abc123 HTTP/1.1", (), None
    )

    RedactCredentials().filter(record)
    RedactCredentials().filter(ticket)

    assert record.getMessage() == (
        "('127.0.0.1', 5000) - 'WebSocket /taxi/?token=[redacted]&x=1' [accepted]"
    )
    assert ticket.getMessage() == "GET /taxi/?ticket=[redacted] HTTP/1.1"
