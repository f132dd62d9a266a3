"""A small etcd v3 client over etcd's JSON gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/watch`).

Why not a client from the package index: python-etcd3 breaks with current protobuf, and
etcd3gw (OpenStack's gateway client) talks to one `host:port` only and pulls in
requests, futurist and pbr; a cluster URL names several members and a client must move
to the next when one is down. The gateway's JSON is small: keys and values are
base64, 64-bit integers are decimal strings, and false/zero fields are left out
(a failed transaction has no "succeeded" key). etcd 3.4 serves it at `/v3/` (and the
deprecated `/v3beta/`); 3.3 had only `/v3beta/`, which is not supported here.

Imported only by the commands that talk to etcd, never by the hook.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from collections.abc import Iterator, Sequence
from typing import Any

from ..model.errors import HostAccessError
from ..model.records import frozen

API = "/v3"
# gRPC codes that mean "this member cannot answer now" (no leader, no quorum, timed
# out, shutting down): another member may.
_TRY_NEXT = (1, 4, 14)


@frozen
class Tls:
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


@frozen
class KeyValue:
    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int


@frozen
class Event:
    """One change seen by a watch: a put (value) or a delete (value None)."""

    key: bytes
    value: bytes | None
    mod_revision: int


class Unavailable(HostAccessError):
    """No endpoint answered (or none had quorum); `tried` names them."""

    def __init__(self, tried: Sequence[str], reason: str) -> None:
        self.tried = tuple(tried)
        self.reason = reason
        super().__init__(
            f"etcd unreachable: tried {', '.join(tried)} ({reason})",
            fix="check that the etcd members are up and reachable from this host, "
            "or that a majority of them is (writes need quorum)",
        )


class Refused(HostAccessError):
    """A member answered and refused the request itself (`reason` is etcd's message)."""

    def __init__(self, endpoint: str, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"etcd at {endpoint} refused the request: {reason}",
            fix="this is a bug or a version mismatch; etcd >= 3.4 is needed",
        )


class Compacted(HostAccessError):
    """The revision a watch asked for is gone (compacted): read everything again."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that makes a range cover every key starting with `prefix`."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def _kv(item: dict[str, Any]) -> KeyValue:
    return KeyValue(
        unb64(item.get("key")),
        unb64(item.get("value")),
        int(item.get("mod_revision", 0)),
        int(item.get("create_revision", 0)),
    )


class EtcdClient:
    """Requests go to the first endpoint that answers; the next request starts there."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        tls: Tls | None = None,
        timeout: float = 3.0,
    ) -> None:
        self.endpoints = list(endpoints)
        self.tls = tls
        self.timeout = timeout
        self._ssl: ssl.SSLContext | None = None
        if tls is not None:
            self._ssl = ssl.create_default_context(cafile=tls.ca)
            if tls.cert:
                self._ssl.load_cert_chain(tls.cert, tls.key)

    def _connection(self, endpoint: str, timeout: float | None) -> http.client.HTTPConnection:
        host, _, port = endpoint.rpartition(":")
        if self._ssl is not None:
            return http.client.HTTPSConnection(host, int(port), timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(host, int(port), timeout=timeout)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = json.dumps(body).encode()
        reasons: list[str] = []
        tried: list[str] = []
        for i, endpoint in enumerate(list(self.endpoints)):
            tried.append(endpoint)
            conn = self._connection(endpoint, self.timeout)
            try:
                conn.request("POST", API + path, payload, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                reasons.append(f"{endpoint}: {_reason(exc)}")
                continue
            finally:
                conn.close()
            try:
                answer = json.loads(data) if data else {}
            except ValueError:
                reasons.append(f"{endpoint}: not an etcd v3 JSON gateway (HTTP {resp.status})")
                continue
            if resp.status != 200 or "error" in answer:
                message = str(answer.get("message") or answer.get("error") or resp.reason)
                if answer.get("code") not in _TRY_NEXT and resp.status < 500:
                    raise Refused(endpoint, message)
                # A member without quorum (or still electing) answers with an error;
                # another member may have it.
                reasons.append(f"{endpoint}: {message}")
                continue
            if i:
                # Start with the member that answered next time.
                self.endpoints = self.endpoints[i:] + self.endpoints[:i]
            return dict(answer)
        raise Unavailable(tried, reasons[-1] if reasons else "no endpoint")

    # -- kv ----------------------------------------------------------------------

    def range(self, key: bytes, range_end: bytes | None = None) -> tuple[int, list[KeyValue]]:
        """Keys in [key, range_end) (just `key` when range_end is None), and the revision."""
        body: dict[str, Any] = {"key": b64(key)}
        if range_end is not None:
            body["range_end"] = b64(range_end)
        answer = self._post("/kv/range", body)
        revision = int(answer.get("header", {}).get("revision", 0))
        return revision, [_kv(item) for item in answer.get("kvs", [])]

    def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]]) -> tuple[bool, int]:
        """Run `success` if every comparison holds; (whether it ran, the new revision)."""
        answer = self._post("/kv/txn", {"compare": compare, "success": success})
        return bool(answer.get("succeeded")), int(answer.get("header", {}).get("revision", 0))

    def put(self, key: bytes, value: bytes) -> int:
        answer = self._post("/kv/put", {"key": b64(key), "value": b64(value)})
        return int(answer.get("header", {}).get("revision", 0))

    # -- watch -------------------------------------------------------------------

    def watch(
        self, key: bytes, range_end: bytes, start_revision: int, idle: float
    ) -> Iterator[list[Event]]:
        """Batches of events from `start_revision` on, until the stream breaks or nothing
        arrived for `idle` seconds (then the iterator ends: the caller re-creates it).
        Raises Unavailable when no endpoint takes the watch, or when the revision
        was compacted (the caller resyncs from a full read)."""
        body = {
            "create_request": {
                "key": b64(key),
                "range_end": b64(range_end),
                "start_revision": str(start_revision),
            }
        }
        reasons: list[str] = []
        for endpoint in list(self.endpoints):
            conn = self._connection(endpoint, idle)
            try:
                conn.request(
                    "POST", API + "/watch", json.dumps(body), {"Content-Type": "application/json"}
                )
                resp = conn.getresponse()
                if resp.status != 200:
                    reasons.append(f"{endpoint}: HTTP {resp.status}")
                    conn.close()
                    continue
            except (OSError, http.client.HTTPException) as exc:
                reasons.append(f"{endpoint}: {_reason(exc)}")
                conn.close()
                continue
            yield from _stream(conn, resp, endpoint)
            return
        raise Unavailable(list(self.endpoints), reasons[-1] if reasons else "no endpoint")


def _stream(
    conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, endpoint: str
) -> Iterator[list[Event]]:
    try:
        while True:
            try:
                line = resp.readline()
            except TimeoutError:
                return
            except (OSError, http.client.HTTPException):
                return
            if not line:
                return
            try:
                message = json.loads(line)
            except ValueError:
                return
            if "error" in message:
                return
            result = message.get("result", {})
            if result.get("compact_revision") and result.get("canceled"):
                raise Compacted(
                    f"{endpoint}: watch revision compacted at {result['compact_revision']}"
                )
            events = [
                Event(
                    unb64(ev["kv"].get("key")),
                    None if ev.get("type") == "DELETE" else unb64(ev["kv"].get("value")),
                    int(ev["kv"].get("mod_revision", 0)),
                )
                for ev in result.get("events", [])
            ]
            if events:
                yield events
            elif result.get("canceled"):
                return
    finally:
        conn.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
