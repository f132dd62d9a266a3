"""The mapping store on etcd v3 (SPEC §7a, docs/cluster.md).

Layout under PREFIX (the URL's path):

- `PREFIX/mappings/NAME`: one mapping's element exactly as it stands in the file form
  (`<pci name='gpu0'>…</pci>`, in the store namespace that the file form's
  `<mappings xmlns=…>` declares). Checked against schemas/store.xsd when written and
  when read.
- `PREFIX/nodes/NODE`: the node's published inventory, `{"node", "published"
  (seconds since the epoch), "inventory" (the 'inventory --format json' document)}`.

The file form of the whole store is `<mappings xmlns=…>` with the elements in name
order, so `store export` is deterministic. Writes are transactions conditioned on the
revision of the keys they read: a conflicting writer makes the transaction fail, and
the edit is re-read and re-applied (a few times, then refused), never overwritten.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..model.errors import HostAccessError, InputError, Location, RefusedError, UsageError
from ..model.records import frozen
from ..xml.store import NS, Mapping, Store, parse_store, validate_schema
from ..xml.storeedit import StoreEditor
from ..xml.xmldoc import parse_bytes
from .etcd import EtcdClient, KeyValue, Refused, Tls, b64, prefix_end

SCHEMES = ("etcd", "etcds")
HEAD = f"<mappings xmlns='{NS}'>\n".encode()
TAIL = b"</mappings>\n"
RETRIES = 8

T = TypeVar("T")


@frozen
class StoreUrl:
    scheme: str
    endpoints: tuple[str, ...]
    prefix: str

    def __str__(self) -> str:
        return f"{self.scheme}://{','.join(self.endpoints)}{self.prefix}"

    @classmethod
    def parse(cls, text: str) -> StoreUrl:
        fix = "write etcd://HOST:PORT[,HOST:PORT...]/PREFIX (etcds:// for TLS)"
        scheme, _, rest = text.partition("://")
        if scheme not in SCHEMES:
            raise UsageError(f"store URL {text!r}: unknown scheme {scheme!r}", fix=fix)
        hosts, slash, path = rest.partition("/")
        prefix = "/" + path.rstrip("/")
        if not slash or prefix == "/":
            raise UsageError(f"store URL {text!r} names no /PREFIX", fix=fix)
        if any(c in path for c in "?#") or any(ord(c) <= 0x20 for c in path):
            raise UsageError(f"store URL {text!r}: PREFIX holds a character keys cannot", fix=fix)
        endpoints: list[str] = []
        for item in hosts.split(","):
            host, colon, port = item.rpartition(":")
            if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise UsageError(f"store URL {text!r}: {item!r} is not HOST:PORT", fix=fix)
            if any(c in host for c in "/@ ") or (host.count(":") and not host.startswith("[")):
                raise UsageError(f"store URL {text!r}: bad host {host!r}", fix=fix)
            endpoints.append(f"{host}:{int(port)}")
        return cls(scheme, tuple(endpoints), prefix)


def wrap(element: bytes) -> bytes:
    """A one-mapping store in file form, around an element as stored."""
    return HEAD + b"  " + element + b"\n" + TAIL


class EtcdStore:
    """The store at `url`; every read and write is one or two gateway requests."""

    def __init__(self, url: StoreUrl, tls: Tls | None = None, timeout: float = 3.0) -> None:
        if url.scheme == "etcds" and tls is None:
            tls = Tls()
        if url.scheme == "etcd" and tls is not None and (tls.ca or tls.cert or tls.key):
            raise UsageError(
                f"--store-ca/--store-cert/--store-key are given but {url} is not etcds://",
                fix="use etcds:// for a TLS cluster",
            )
        self.url = url
        self.client = EtcdClient(url.endpoints, tls=tls, timeout=timeout)
        self.mappings_prefix = f"{url.prefix}/mappings/".encode()
        self.nodes_prefix = f"{url.prefix}/nodes/".encode()

    def key(self, name: str) -> bytes:
        return self.mappings_prefix + name.encode()

    def where(self, kv_key: bytes) -> Location:
        return Location(f"{self.url} key {kv_key.decode(errors='replace')}")

    # -- reading -------------------------------------------------------------------

    def check_element(self, kv: KeyValue, *, schema: bool = True) -> Mapping:
        """The value of a mapping key must be one valid mapping named as its key.
        schema=False leaves store.xsd to the caller (one validation for many keys)."""
        where = self.where(kv.key)
        name = kv.key[len(self.mappings_prefix) :].decode(errors="replace")
        try:
            doc = parse_bytes(wrap(kv.value), str(where))
            store = parse_store(doc)
            if schema:
                validate_schema(doc)
        except InputError as exc:
            raise InputError(
                f"{where}: {exc.what}", fix="fix it with 'hostdev-resolver map remove'"
            ) from None
        if list(store.mappings) != [name]:
            raise InputError(
                f"{where}: holds {', '.join(store.mappings) or 'no mapping'}, not one mapping {name!r}",
                fix="the key must hold the element of the mapping it is named after",
            )
        return store.mappings[name]

    def elements(self) -> tuple[int, dict[str, bytes]]:
        """Every mapping's element by name, checked, and the revision they were read at."""
        revision, kvs = self.client.range(self.mappings_prefix, prefix_end(self.mappings_prefix))
        out: dict[str, bytes] = {}
        for kv in kvs:
            self.check_element(kv, schema=False)
            out[kv.key[len(self.mappings_prefix) :].decode()] = kv.value
        self.check_schema(out)
        return revision, out

    def check_schema(self, elements: dict[str, bytes]) -> None:
        """store.xsd over all elements at once (building the schema costs more than
        checking a thousand mappings); a violation names the key it is in."""
        if not elements:
            return
        data = file_form(elements)
        try:
            validate_schema(parse_bytes(data, str(self.url)))
        except InputError as exc:
            line, name = 2, None
            for name in sorted(elements):
                line += elements[name].count(b"\n") + 1
                if exc.where.line is not None and exc.where.line < line:
                    break
            if name is None:
                raise
            raise InputError(
                f"{self.where(self.key(name))}: {exc.what}",
                fix="fix it with 'hostdev-resolver map remove'",
            ) from None

    def file_form(self) -> tuple[int, bytes]:
        revision, elements = self.elements()
        return revision, file_form(elements)

    def load(self) -> Store:
        _, data = self.file_form()
        return parse_store(parse_bytes(data, str(self.url)))

    # -- writing -------------------------------------------------------------------

    def edit_mapping(self, name: str, change: Callable[[StoreEditor], T]) -> T:
        """Apply `change` to mapping `name` (alone in a one-mapping store), and write the
        result if the key did not change since it was read; re-read and retry if it did."""
        key = self.key(name)
        for _ in range(RETRIES):
            _, kvs = self.client.range(key)
            old = kvs[0] if kvs else None
            if old is not None:
                self.check_element(old, schema=False)  # the result is checked below
            data = wrap(old.value) if old is not None else HEAD + TAIL
            editor = StoreEditor(parse_bytes(data, str(self.where(key))))
            result = change(editor)
            new = editor.result()
            if new == data:
                return result  # nothing to write (the same entry added again)
            doc = parse_bytes(new, str(self.where(key)))
            store = parse_store(doc)
            validate_schema(doc)
            compare = [
                {"target": "MOD", "key": b64(key), "mod_revision": str(old.mod_revision)}
                if old is not None
                else {"target": "CREATE", "key": b64(key), "create_revision": "0"}
            ]
            if not store.mappings:
                ops = [{"request_delete_range": {"key": b64(key)}}]
            else:
                ops = [{"request_put": {"key": b64(key), "value": b64(element_bytes(doc, name))}}]
            done, _ = self.client.txn(compare, ops)
            if done:
                return result
        raise RefusedError(
            f"mapping {name!r} in {self.url} kept changing while this edit was applied "
            f"({RETRIES} attempts); nothing was written",
            fix="run the command again",
        )

    def replace_all(self, data: bytes, source: str) -> int:
        """Make the store hold exactly the mappings of the file-form `data` (store
        import): one transaction, refused if any mapping changed since it was read."""
        doc = parse_bytes(data, source)
        store = parse_store(doc)
        validate_schema(doc)
        elements: dict[str, bytes] = {}
        for el in doc.root.children:
            name = el.get("name") or ""
            element = data[el.start : el.end]
            check = parse_store(parse_bytes(wrap(element), source))
            if check.mappings.get(name) != store.mappings[name]:
                raise InputError(
                    f"mapping {name!r} does not stand on its own outside <mappings>",
                    where=Location(source, el.line),
                    fix=f"declare the store namespace as the default (xmlns='{NS}') and use no prefix",
                )
            elements[name] = element
        end = prefix_end(self.mappings_prefix)
        revision, kvs = self.client.range(self.mappings_prefix, end)
        compare = [
            {
                "target": "MOD",
                "key": b64(self.mappings_prefix),
                "range_end": b64(end),
                "result": "LESS",
                "mod_revision": str(revision + 1),
            }
        ]
        # etcd refuses a transaction that deletes and puts the same key: delete only
        # the keys the file does not have.
        keep = {self.key(n) for n in elements}
        ops: list[dict[str, Any]] = [
            {"request_delete_range": {"key": b64(kv.key)}} for kv in kvs if kv.key not in keep
        ]
        ops += [
            {"request_put": {"key": b64(self.key(n)), "value": b64(e)}}
            for n, e in sorted(elements.items())
        ]
        try:
            done, _ = self.client.txn(compare, ops)
        except Refused as exc:
            if "too many operations" not in exc.reason and "too large" not in exc.reason:
                raise
            raise HostAccessError(
                f"{self.url}: etcd refused the import as one transaction of {len(ops)} "
                f"operations, {len(data)} bytes ({exc.reason}); nothing was written",
                fix="start the etcd members with --max-txn-ops and --max-request-bytes "
                "above these (defaults 128 and 1.5 MiB), see docs/cluster.md",
            ) from None
        if not done:
            raise RefusedError(
                f"{self.url} changed while the import was prepared; nothing was written",
                fix="run the import again",
            )
        return len(elements)

    # -- inventories -----------------------------------------------------------------

    def publish(self, node: str, inventory: dict[str, Any], now: float | None = None) -> None:
        doc = {"node": node, "published": now if now is not None else time.time()}
        doc["inventory"] = inventory
        self.client.put(self.nodes_prefix + node.encode(), json.dumps(doc).encode())

    def inventories(self) -> list[Published]:
        _, kvs = self.client.range(self.nodes_prefix, prefix_end(self.nodes_prefix))
        out: list[Published] = []
        for kv in kvs:
            where = self.where(kv.key)
            try:
                doc = json.loads(kv.value)
                out.append(Published(str(doc["node"]), float(doc["published"]), doc["inventory"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(
                    f"{where}: not a published inventory ({exc})",
                    fix="the agent of that node rewrites it; or delete the key",
                ) from None
        return out


@frozen
class Published:
    node: str
    published: float
    inventory: Any


def file_form(elements: dict[str, bytes]) -> bytes:
    body = b"".join(b"  " + elements[name] + b"\n" for name in sorted(elements))
    return HEAD + body + TAIL


def element_spans(elements: dict[str, bytes]) -> dict[str, tuple[int, int, int]]:
    """Where each element sits in `file_form(elements)`: (offset, length, line)."""
    spans: dict[str, tuple[int, int, int]] = {}
    offset, line = len(HEAD), 2
    for name in sorted(elements):
        element = elements[name]
        spans[name] = (offset + 2, len(element), line)
        offset += len(element) + 3
        line += element.count(b"\n") + 1
    return spans


def element_bytes(doc: Any, name: str) -> bytes:
    for el in doc.root.children:
        if el.get("name") == name:
            return bytes(doc.data[el.start : el.end])
    raise InputError(f"mapping {name!r} vanished from its own edit")  # pragma: no cover


def open_etcd_store(
    text: str, ca: str | None = None, cert: str | None = None, key: str | None = None
) -> EtcdStore:
    url = StoreUrl.parse(text)
    tls = Tls(ca, cert, key) if (ca or cert or key) else None
    if (cert is None) != (key is None):
        raise UsageError("--store-cert and --store-key go together")
    return EtcdStore(url, tls)
