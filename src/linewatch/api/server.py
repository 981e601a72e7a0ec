"""The HTTP server's own answers as JSON too. A request the HTTP parser refuses (a Content-Length that is not a
number, control characters in a header, a broken request line) never reaches the application: uvicorn answers it
with a plain-text 400. ``http_protocol()`` is uvicorn's protocol with that answer in the API's JSON form."""

from __future__ import annotations

import json


def _json_400(msg: str) -> bytes:
    body = json.dumps({"detail": f"malformed HTTP request: {msg.rstrip('.')}"}).encode()
    head = (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"content-type: application/json\r\n"
        b"x-content-type-options: nosniff\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n"
    )
    return head + body


def http_protocol() -> type:
    """uvicorn's HTTP/1.1 protocol (httptools when installed, else h11) answering unparsable requests in JSON."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    class JsonErrorsProtocol(Base):  # type: ignore[misc, valid-type]
        def send_400_response(self, msg: str) -> None:
            self.transport.write(_json_400(msg))
            self.transport.close()

    return JsonErrorsProtocol
