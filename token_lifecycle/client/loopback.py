"""A one-shot HTTP listener on the loopback interface, for a native app's redirect (RFC 8252 §7.3).

The app cannot receive an HTTP request from the server; the user's browser
can make one to the app. So the app listens on ``127.0.0.1`` on a port the
operating system picks (port 0, so two apps or two logins never collide and
no port needs registering: the server accepts a loopback redirect URI on any
port), points the redirect URI at it, and takes the first request for its
path. ``127.0.0.1`` rather than ``localhost`` (RFC 8252 §8.3): a name could
resolve to another interface, or to IPv6 where nothing listens.

Exactly one redirect is taken: requests for other paths (``/favicon.ico``)
get a 404 and the wait goes on; a second redirect, or one arriving after the
first, finds the listener answering 404 or gone. The page shown in the
browser says only whether the login went through: never a code or a token.
It is sent with ``Referrer-Policy: no-referrer`` (its URL holds the code).
"""

from __future__ import annotations

import http.server
import socketserver
import threading
from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: The redirect's query parameters, each with every value it came with.
Params = dict[str, list[str]]
#: Decides what the browser is shown for the redirect: ``(HTTP status, HTML body)``.
PageFor = Callable[[Params], tuple[int, str]]

LOOPBACK_HOST = "127.0.0.1"
DEFAULT_PATH = "/callback"
#: A connection that sends nothing is dropped after this long, so it cannot hold the listener.
CONNECTION_TIMEOUT = 5.0

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><main><h1>{title}</h1><p>{text}</p></main></body></html>
"""


def page(title: str, text: str) -> str:
    """A minimal HTML page (both parts are escaped)."""
    return PAGE.format(title=escape(title), text=escape(text))


class LoopbackListener:
    """Listens on ``http://127.0.0.1:{port}{path}`` until one redirect arrives or time runs out.

    Binding happens in the constructor, so :attr:`redirect_uri` (with the
    port) is known before the browser is sent anywhere; serving happens in a
    background thread, so a browser opener that blocks (a text-mode browser)
    does not stop the listener. Use as a context manager, or call
    :meth:`close`.
    """

    def __init__(self, path: str = DEFAULT_PATH, *, page_for: PageFor | None = None) -> None:
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        self.path = path
        self._server = _Server(path, page_for or _plain_page)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="token_lifecycle loopback listener",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def redirect_uri(self) -> str:
        return f"http://{LOOPBACK_HOST}:{self.port}{self.path}"

    def wait(self, timeout: float) -> Params | None:
        """The redirect's query parameters, or ``None`` if none came within ``timeout`` seconds."""
        if not self._server.received.wait(timeout):
            return None
        return self._server.params

    def close(self) -> None:
        """Stop listening (a later request is refused by the operating system)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> LoopbackListener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _plain_page(params: Params) -> tuple[int, str]:
    return 200, page("Login received", "You may close this window.")


class _Server(http.server.HTTPServer):
    def __init__(self, path: str, page_for: PageFor) -> None:
        self.callback_path = path
        self.page_for = page_for
        self.params: Params | None = None
        self.received = threading.Event()
        self._once = threading.Lock()
        super().__init__((LOOPBACK_HOST, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer's own looks the address up in DNS (getfqdn), which can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = LOOPBACK_HOST, self.server_address[1]

    def take(self, params: Params) -> bool:
        """Record the first redirect; False for any later one."""
        with self._once:
            if self.received.is_set():
                return False
            self.params = params
            self.received.set()
            return True


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = CONNECTION_TIMEOUT
    server_version = "token_lifecycle"
    sys_version = ""

    def do_GET(self) -> None:
        target = urlsplit(self.path)
        if target.path != self.server.callback_path:
            self._answer(404, page("Not found", "Nothing here."))
            return
        params = parse_qs(target.query, keep_blank_values=True)
        if not self.server.take(params):
            self._answer(404, page("Already done", "This login was already completed."))
            return
        try:
            status, body = self.server.page_for(params)
        except Exception:  # the page is a courtesy; the waiting app sees the parameters anyway
            status, body = 500, page("Login failed", "Return to the application.")
        self._answer(status, body)

    def _answer(self, status: int, body: str) -> None:
        payload = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        # http.server writes every request line to stderr; this one holds the code.
        pass
