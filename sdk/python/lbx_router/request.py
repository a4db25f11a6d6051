"""The incoming request as a plugin sees it: method, path, query, authority, headers, cookies,
the client's address, and the first bytes of the body (raw and as parsed JSON).

Every accessor of the host's request copies a string across the Wasm boundary (~95 ns each, and
more to make a Python `str`), so `Request` asks only for what the plugin reads, and keeps what it
got for the rest of the decision: a rule list that reads `path()` five times pays once.
"""

from __future__ import annotations

import json
from typing import Any, Optional

_UNSET: Any = object()


class Request:
    """The request being routed. Subclasses provide the `_fetch_*` readers (the host's request in
    the Wasm build, `testkit.FakeRequest` in tests); the public methods cache their answers."""

    __slots__ = ("_path", "_method", "_body", "_json")

    def __init__(self) -> None:
        self._path: Any = _UNSET
        self._method: Any = _UNSET
        self._body: Any = _UNSET
        self._json: Any = _UNSET

    def method(self) -> str:
        """The HTTP method, e.g. `GET`."""
        if self._method is _UNSET:
            self._method = self._fetch_method()
        return self._method

    def path(self) -> str:
        """The path without the query string, e.g. `/api/users`."""
        if self._path is _UNSET:
            self._path = self._fetch_path()
        return self._path

    def query(self) -> Optional[str]:
        """The query string without the leading `?`, if any."""
        return self._fetch_query()

    def authority(self) -> Optional[str]:
        """The Host header (or HTTP/2 `:authority`), if any."""
        return self._fetch_authority()

    def header(self, name: str) -> Optional[str]:
        """The first header called `name` (case-insensitive), if present and valid text."""
        return self._fetch_header(name.lower())

    def cookie(self, name: str) -> Optional[str]:
        """The value of the cookie `name`, if present."""
        return self._fetch_cookie(name)

    def client_ip(self) -> str:
        """The client's IP address as text, e.g. `127.0.0.1` or `::1`."""
        return self._fetch_client_ip()

    def client_port(self) -> int:
        """The client's TCP port."""
        return self._fetch_client_port()

    def client(self) -> str:
        """The client's address as `ip:port` (`[ip]:port` for IPv6)."""
        ip = self.client_ip()
        return f"[{ip}]:{self.client_port()}" if ":" in ip else f"{ip}:{self.client_port()}"

    def body_prefix(self) -> Optional[bytes]:
        """The first bytes of the body, up to the plugin's `body_prefix` limit; None when the
        limit is 0 (lbx did not read ahead), `b""` for a request without a body."""
        if self._body is _UNSET:
            self._body = self._fetch_body_prefix()
        return self._body

    def body_json(self) -> Any:
        """The body prefix parsed as JSON; None when absent, truncated or not JSON."""
        if self._json is _UNSET:
            body = self.body_prefix()
            try:
                self._json = json.loads(body) if body else None
            except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors.
                self._json = None
        return self._json

    # What a concrete request provides.
    def _fetch_method(self) -> str:
        raise NotImplementedError

    def _fetch_path(self) -> str:
        raise NotImplementedError

    def _fetch_query(self) -> Optional[str]:
        raise NotImplementedError

    def _fetch_authority(self) -> Optional[str]:
        raise NotImplementedError

    def _fetch_header(self, lower_name: str) -> Optional[str]:
        raise NotImplementedError

    def _fetch_cookie(self, name: str) -> Optional[str]:
        raise NotImplementedError

    def _fetch_client_ip(self) -> str:
        raise NotImplementedError

    def _fetch_client_port(self) -> int:
        raise NotImplementedError

    def _fetch_body_prefix(self) -> Optional[bytes]:
        raise NotImplementedError
