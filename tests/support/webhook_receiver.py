"""A real HTTP receiver on loopback for webhook tests: it records every request (headers and
raw body) and answers each as the test scripted: a status, a delay first, or held until the
test lets it go. Start and stop it on a fixed port to play a receiver that is down."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    # Seconds to wait before answering (a slow receiver).
    delay: float = 0.0
    # Set: answer only once the event is set (a receiver that holds the request).
    hold: threading.Event | None = None


@dataclass
class Receiver:
    port: int
    received: list[Received] = field(default_factory=list)
    script: deque[Answer] = field(default_factory=deque)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.arrived:
                    receiver.received.append(Received(dict(self.headers.items()), body))
                    answer = receiver.script.popleft() if receiver.script else Answer()
                    receiver.arrived.notify_all()
                if answer.hold is not None:
                    answer.hold.wait(60)
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"
