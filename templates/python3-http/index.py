"""Fjord's python3-http wrapper: serves $PORT and calls function.handler.handle(event, context).

The handler gets an event (body as bytes, headers, method, path, query) and returns a string,
bytes, or a dict {"statusCode": int, "body": str|bytes, "headers": {...}}.
"""
import os
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "function"))
import handler  # noqa: E402


class Event:
    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body


class Context:
    def __init__(self):
        self.hostname = os.environ.get("HOSTNAME", "localhost")


class Wrapper(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def answer(self, status, body, headers=None):
        if isinstance(body, str):
            body = body.encode()
        elif body is None:
            body = b""
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path == "/_/health":
            self.answer(200, "ok")
            return
        event = Event(self.command, url.path, parse_qs(url.query), dict(self.headers), body)
        try:
            result = handler.handle(event, Context())
        except Exception:
            traceback.print_exc()
            self.answer(500, "the handler raised an exception\n")
            return
        if isinstance(result, dict):
            self.answer(int(result.get("statusCode", 200)), result.get("body"), result.get("headers"))
        else:
            self.answer(200, result)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    ThreadingHTTPServer(("0.0.0.0", port), Wrapper).serve_forever()
