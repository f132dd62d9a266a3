"""The mapping store on a real etcd: URLs, layout, transactional writes, export/import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostdev_resolver.doors.cli import main as cli_main
from hostdev_resolver.host.etcd import EtcdClient, b64
from hostdev_resolver.host.etcdstore import EtcdStore, StoreUrl
from hostdev_resolver.host.storeread import load_store
from hostdev_resolver.model.errors import RefusedError
from tests.clusterstore.conftest import REPO, cli
from tests.hook.fixtures import GPU, NVME, domain_xml, make_host, mapped
from tests.support.etcd import EtcdCluster, Pki, free_port


@pytest.mark.parametrize(
    "bad",
    [
        "etcd://127.0.0.1/x",  # no port
        "etcd://127.0.0.1:2379",  # no prefix
        "etcd://127.0.0.1:2379/",
        "etcd://127.0.0.1:99999/x",
        "etcd://a:1,,b:2/x",
        "etcdx://127.0.0.1:2379/x",
    ],
)
def test_a_bad_url_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["map", "list", "--store", bad]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and bad in err and "etcd://HOST:PORT" in err


def test_an_unreachable_cluster_names_every_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    a, b = free_port(), free_port()
    assert cli_main.main(["map", "list", "--store", f"etcd://127.0.0.1:{a},127.0.0.1:{b}/x"]) == 3
    err = capsys.readouterr().err
    assert f"tried 127.0.0.1:{a}, 127.0.0.1:{b}" in err and err.count("\n") == 1


def test_url_parsing_keeps_endpoints_and_prefix() -> None:
    url = StoreUrl.parse("etcds://h1:2379,h2:2380/clusters/a/")
    assert url.endpoints == ("h1:2379", "h2:2380") and url.prefix == "/clusters/a"
    assert str(url) == "etcds://h1:2379,h2:2380/clusters/a"


def test_one_key_per_mapping_holding_its_element(tmp_path: Path, url: str) -> None:
    host = make_host(tmp_path)
    cli(
        "map",
        "add",
        "pci",
        "gpu0",
        "--node",
        "hv1",
        "--address",
        GPU,
        "--store",
        url,
        "--sysfs",
        str(host.root),
        "--allow",
        "ml-*",
    )
    store = EtcdStore(StoreUrl.parse(url))
    _, kvs = store.client.range(store.key("gpu0"))
    assert len(kvs) == 1
    value = kvs[0].value.decode()
    assert value.startswith("<pci name='gpu0'>") and value.endswith("</pci>")
    assert "<node name='hv1' address='0000:41:00.0' vendor='10de' device='1e84'" in value
    assert "<allow domain='ml-*'/>" in value
    # The same entry again changes nothing, so nothing is written (no new revision).
    cli("map", "add", "pci", "gpu0", "--node", "hv1", "--address", GPU, "--store", url,
        "--sysfs", str(host.root), "--allow", "ml-*")  # fmt: skip
    assert store.client.range(store.key("gpu0"))[1][0].mod_revision == kvs[0].mod_revision


def test_a_key_that_breaks_the_schema_is_refused_on_read(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = EtcdStore(StoreUrl.parse(url))
    store.client.put(store.key("gpu0"), b"<pci name='gpu0'><node name='hv1'/></pci>")
    assert cli_main.main(["map", "list", "--store", url]) == 2
    err = capsys.readouterr().err
    assert f"key {StoreUrl.parse(url).prefix}/mappings/gpu0" in err
    store.client.put(store.key("gpu1"), b"<usb name='other'/>")
    store.client.put(store.key("gpu0"), b"<lun name='gpu0' wwn='0x5000c500a1b2c3d4'/>")
    assert cli_main.main(["map", "list", "--store", url]) == 2
    assert "holds other, not one mapping 'gpu1'" in capsys.readouterr().err


def test_32_concurrent_map_adds_from_four_nodes_lose_nothing(tmp_path: Path, url: str) -> None:
    """8 mappings x 4 nodes: writers of one mapping race for its key and retry."""
    host = make_host(tmp_path)
    env_path = str(REPO / "src")
    procs = []
    for i in range(32):
        name, node = f"dev{i % 8}", f"hv{i // 8}"
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hostdev_resolver.doors.cli.main",
                    "map",
                    "add",
                    "pci",
                    name,
                    "--node",
                    node,
                    "--address",
                    GPU if i % 2 else NVME,
                    "--store",
                    url,
                    "--sysfs",
                    str(host.root),
                ],
                env={
                    "PYTHONPATH": env_path,
                    "PATH": "/usr/bin:/bin",
                    # the store-verdict cache of this test, never root's /var/cache
                    "HOSTDEV_RESOLVER_CACHE": os.environ["HOSTDEV_RESOLVER_CACHE"],
                },
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    exported = tmp_path / "export.xml"
    cli("store", "export", "--store", url, "-o", str(exported))
    store = load_store(str(exported))  # schema-checked
    assert sorted(store.mappings) == [f"dev{i}" for i in range(8)]
    for i in range(8):
        entries = store.mappings[f"dev{i}"].entries  # type: ignore[union-attr]
        assert sorted(e.node for e in entries) == ["hv0", "hv1", "hv2", "hv3"]


def test_a_write_racing_another_is_retried_and_loses_nothing(tmp_path: Path, url: str) -> None:
    host = make_host(tmp_path)
    cli(
        "map",
        "add",
        "pci",
        "gpu0",
        "--node",
        "hv1",
        "--address",
        GPU,
        "--store",
        url,
        "--sysfs",
        str(host.root),
    )
    store = EtcdStore(StoreUrl.parse(url))
    (_, kvs) = store.client.range(store.key("gpu0"))
    first = kvs[0].value
    calls = []

    def change(editor):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            # Another host's write lands between our read and our transaction.
            cli(
                "map",
                "add",
                "pci",
                "gpu0",
                "--node",
                "hv2",
                "--address",
                GPU,
                "--store",
                url,
                "--sysfs",
                str(host.root),
            )
        editor.remove("gpu0", "hv1")
        return "done"

    assert store.edit_mapping("gpu0", change) == "done"
    assert len(calls) == 2  # refused once, re-read, re-applied
    mapping = store.load().mappings["gpu0"]
    assert [e.node for e in mapping.entries] == ["hv2"]  # type: ignore[union-attr]
    assert first != store.client.range(store.key("gpu0"))[1][0].value


def test_a_write_that_keeps_losing_is_refused_with_a_message(tmp_path: Path, url: str) -> None:
    store = EtcdStore(StoreUrl.parse(url))
    rival = EtcdClient(store.url.endpoints)
    n = 0

    def change(editor):  # type: ignore[no-untyped-def]
        nonlocal n
        n += 1
        rival.put(store.key("x"), f"<lun name='x' wwn='0x5000c500a1b2c3{n:02x}'/>".encode())
        if editor.store.get("x") is None:
            editor.add_entry("lun", "x", None, extra={"wwn": "0x5000c500a1b2c3ff"})
        else:
            editor.remove("x")

    with pytest.raises(RefusedError, match="kept changing while this edit was applied"):
        store.edit_mapping("x", change)
    # The rival's last write stands: nothing was overwritten.
    assert store.load().mappings["x"].wwn is not None  # type: ignore[union-attr]
    assert str(store.load().mappings["x"].wwn).endswith(f"{n:02x}")  # type: ignore[union-attr]


def test_export_import_round_trip_is_byte_stable(
    tmp_path: Path, url: str, etcd: EtcdCluster
) -> None:
    host = make_host(tmp_path)
    original = load_store(str(host.store))
    cli("store", "import", str(host.store), "--store", url)
    first = cli("store", "export", "--store", url).stdout
    exported = tmp_path / "a.xml"
    exported.write_text(first)
    assert load_store(str(exported)).mappings == original.mappings
    other = etcd.url("/copy-" + url.rsplit("/", 1)[1])
    cli("store", "import", str(exported), "--store", other)
    assert cli("store", "export", "--store", other).stdout == first
    # Import replaces: a mapping only in etcd goes, one changed in etcd is reset.
    cli("map", "remove", "gpu0", "--store", other)
    cli(
        "map",
        "add",
        "pci",
        "extra",
        "--node",
        "hv1",
        "--address",
        "0000:43:00.0",
        "--store",
        other,
        "--sysfs",
        str(host.root),
        check=None,
    )
    cli("store", "import", str(exported), "--store", other)
    assert cli("store", "export", "--store", other).stdout == first


def test_export_and_import_need_an_etcd_store(tmp_path: Path) -> None:
    proc = cli("store", "export", "--store", str(tmp_path / "m.xml"), check=2)
    assert "needs --store etcd://" in proc.stderr


def test_import_is_one_transaction_refused_on_a_bad_file(tmp_path: Path, url: str) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'><pci/></mappings>")
    proc = cli("store", "import", str(bad), "--store", url, check=2)
    assert "bad.xml" in proc.stderr
    store = EtcdStore(StoreUrl.parse(url))
    assert store.load().mappings == {}


def test_writes_use_the_json_gateway_of_etcd_3_4(url: str) -> None:
    """The gateway's JSON as etcd 3.4 speaks it: base64 keys, revisions as strings."""
    client = EtcdClient(StoreUrl.parse(url).endpoints)
    key = b"/gw-check"
    ok, _ = client.txn(
        [{"target": "CREATE", "key": b64(key), "create_revision": "0"}],
        [{"request_put": {"key": b64(key), "value": b64(b"1")}}],
    )
    again, _ = client.txn(
        [{"target": "CREATE", "key": b64(key), "create_revision": "0"}],
        [{"request_put": {"key": b64(key), "value": b64(b"2")}}],
    )
    assert (ok, again) == (True, False)
    assert client.range(key)[1][0].value == b"1"


def test_an_import_beyond_etcds_transaction_limit_says_which_limit(
    tmp_path: Path, url: str
) -> None:
    """etcd refuses more than --max-txn-ops (default 128) operations in one transaction;
    the import stays one transaction and says what to raise."""
    lines = [f"  <lun name='lun{i}' wwn='0x5000c500a1b2{i:04x}'/>" for i in range(130)]
    big = tmp_path / "big.xml"
    big.write_text(
        "<mappings xmlns='http://hostdev-resolver.org/xmlns/store/1'>\n"
        + "\n".join(lines)
        + "\n</mappings>\n"
    )
    proc = cli("store", "import", str(big), "--store", url, check=3)
    assert "one transaction of 130 operations" in proc.stderr
    assert "--max-txn-ops" in proc.stderr and "nothing was written" in proc.stderr
    assert EtcdStore(StoreUrl.parse(url)).load().mappings == {}


def test_etcds_with_client_certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pki = Pki(tmp_path / "pki")
    cluster = EtcdCluster(tmp_path / "etcd", tls=pki).start()
    try:
        url = cluster.url()
        assert url.startswith("etcds://")
        host = make_host(tmp_path)
        tls = ["--store-ca", str(pki.ca), "--store-cert", str(pki.client_cert),
               "--store-key", str(pki.client_key)]  # fmt: skip
        cli("store", "import", str(host.store), "--store", url, *tls)
        out = cli("map", "list", "--store", url, *tls).stdout
        assert "nvme0" in out
        # Without the client certificate the server refuses the handshake: exit 3.
        proc = cli("map", "list", "--store", url, "--store-ca", str(pki.ca), check=3)
        assert "etcd unreachable: tried" in proc.stderr
        # No TLS options: those of the cluster config, as the agent reads them.
        config = tmp_path / "cluster.toml"
        config.write_text(
            f"store = '{url}'\nstore_ca = '{pki.ca}'\nstore_cert = '{pki.client_cert}'\n"
            f"store_key = '{pki.client_key}'\n"
        )
        monkeypatch.setenv("HOSTDEV_RESOLVER_CLUSTER_CONFIG", str(config))
        assert "nvme0" in cli("map", "list", "--store", url).stdout
        # TLS options with a plain etcd:// URL are a usage error.
        proc = cli("map", "list", "--store", url.replace("etcds", "etcd", 1), *tls, check=2)
        assert "is not etcds://" in proc.stderr
    finally:
        cluster.stop()


def test_validate_and_resolve_read_an_etcd_store(tmp_path: Path, url: str) -> None:
    host = make_host(tmp_path)
    cli("store", "import", str(host.store), "--store", url)
    domain = tmp_path / "vm.xml"
    domain.write_text(domain_xml("vm", mapped("nvme0")))
    common = ["--store", url, "--sysfs", str(host.root), "--node", "hv1"]
    resolved = cli("resolve", str(domain), *common).stdout
    assert "bus='0x42'" in resolved
    domain.write_text(resolved)
    cli("validate", str(domain), *common)
