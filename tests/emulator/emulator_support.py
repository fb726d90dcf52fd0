"""Helpers for the Stripe emulator tests (imported by conftest and the tests)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Request, Response

API_KEY = "sk_test_emulator_tests"


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class Raw:
    """Plain HTTP against the emulator, to see Stripe's exact JSON and headers."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {API_KEY}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.base_url + path, timeout=10, **kwargs)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        resp = requests.request(method, f"{self.base_url}/_emulator/{path}", json=body, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()


@dataclass
class Catalog:
    product: Any
    base: Any  # 30.00 / month / seat
    voice: Any  # 10.00 / month / seat
    customer: Any  # pays with pm_card_visa


@dataclass
class WebhookSink:
    """A real HTTP server that records what the emulator delivers."""

    fail_first: int = 0  # answer 500 to this many deliveries first
    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: BaseWSGIServer | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data(as_text=True)
        with self.lock:
            failing = self.fail_first > 0
            if failing:
                self.fail_first -= 1
            status = 500 if failing else self.status
            self.received.append({"body": body, "headers": dict(request.headers), "status": status})
        return Response("{}", status=status)(environ, start_response)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}/webhooks/stripe"

    def events(self, accepted_only: bool = True) -> list[dict[str, Any]]:
        with self.lock:
            return [
                json.loads(r["body"])
                for r in self.received
                if not accepted_only or r["status"] < 300
            ]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events()) >= count:
                break
            time.sleep(0.02)
        return self.events()
