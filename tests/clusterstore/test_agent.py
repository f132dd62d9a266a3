"""The node agent against a real etcd: the cache follows the store, survives etcd going
away, and feeds the hook, which never talks to etcd itself."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hostdev_resolver.doors import hook
from hostdev_resolver.host.cachefile import read_header, view_path
from hostdev_resolver.host.etcdstore import EtcdStore, StoreUrl
from hostdev_resolver.host.storeread import load_store
from tests.clusterstore.conftest import REPO, cli
from tests.hook.fixtures import GPU, Host, domain_xml, gpu_host, make_host, mapped
from tests.support.etcd import EtcdCluster


@contextmanager
def running_agent(url: str, cache: Path, host: Host, node: str = "hv1") -> Iterator[Path]:
    """`hostdev-resolver agent` as a process; yields its log file; stopped by PID."""
    log = cache.parent / f"agent-{node}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hostdev_resolver.doors.cli.main",
                "agent",
                "--store",
                url,
                "--cache",
                str(cache),
                "--node",
                node,
                "--sysfs",
                str(host.root),
                "--heartbeat",
                "1",
            ],
            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: cache.exists(), 30, f"agent wrote no cache: {log.read_text()}")
        yield log
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def wait_for(check, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(what)
        time.sleep(0.02)
    return time.monotonic() - start


def import_host(tmp_path: Path, url: str) -> Host:
    """hv1's host tree, its store imported into etcd at `url`."""
    host = make_host(tmp_path)
    cli("store", "import", str(host.store), "--store", url)
    return host


@pytest.fixture
def host(tmp_path: Path, url: str) -> Host:
    """hv1's host tree, its store imported into this test's etcd prefix (`url`)."""
    return import_host(tmp_path, url)


def agent_once(url: str, cache: Path, host: Host, node: str = "hv1") -> None:
    """`hostdev-resolver agent --once`: one sync of the cache and the node's inventory."""
    cli("agent", "--once", "--store", url, "--cache", str(cache), "--node", node,
        "--sysfs", str(host.root))  # fmt: skip


def map_add_pci(
    url: str, host: Host, name: str, address: str, node: str = "hv1", check: int | None = 0
) -> subprocess.CompletedProcess[str]:
    return cli("map", "add", "pci", name, "--node", node, "--address", address,
               "--store", url, "--sysfs", str(host.root), check=check)  # fmt: skip


def write_hook_config(host: Host, cache: Path, log: Path, extra: str = "") -> None:
    """The hook config of a cluster node: its store is the agent's cache."""
    host.config.write_text(
        f"store = '{cache}'\nnode = 'hv1'\nsysfs = '{host.root}'\n"
        f"state_dir = '{host.state}'\nlog_file = '{log}'\nsyslog = false\n{extra}"
    )


def prepare(host: Host, cache: Path, extra: str = "") -> tuple[int, str]:
    """The hook's `prepare begin` for a domain using nvme0, reading the agent's cache."""
    log = host.config.with_name("hook.log")
    write_hook_config(host, cache, log, extra)
    log.unlink(missing_ok=True)
    xml = host.resolve(domain_xml("vm1", mapped("nvme0", managed="yes")))
    err = io.StringIO()

    def no_writes(root: str):  # type: ignore[no-untyped-def]
        raise AssertionError("libvirt binds a managed nvme0: the hook writes no sysfs")

    code = hook.main(
        ["vm1", "prepare", "begin", "-"],
        io.BytesIO(xml),
        stdout=io.BytesIO(),
        stderr=err,
        environ={"HOSTDEV_RESOLVER_CONFIG": str(host.config)},
        writer_factory=no_writes,
    )
    return code, err.getvalue() + (log.read_text() if log.exists() else "")


def test_the_cache_follows_a_write_within_a_second(tmp_path: Path, url: str, host: Host) -> None:
    cache = tmp_path / "cache.xml"
    with running_agent(url, cache, host):
        assert load_store(str(cache)).mappings == load_store(str(host.store)).mappings
        assert oct(cache.stat().st_mode & 0o777) == "0o600"
        store = EtcdStore(StoreUrl.parse(url))
        store.edit_mapping(
            "lun0", lambda e: e.add_entry("lun", "lun0", None, extra={"wwn": "0x5000c500a1b2c3d4"})
        )
        took = wait_for(lambda: b"lun0" in cache.read_bytes(), 1.0, "cache not updated in 1 s")
        assert took < 1.0
        revision, _ = read_header(cache.read_bytes()) or (0, 0)
        assert revision == store.client.range(store.key("lun0"))[1][0].mod_revision
        # The cache is the store's exact file form, after its one header line.
        body = cache.read_bytes().split(b"\n", 1)[1]
        assert body == store.file_form()[1]
        cli("map", "remove", "lun0", "--store", url)
        wait_for(lambda: b"lun0" not in cache.read_bytes(), 1.0, "removal not cached in 1 s")


def test_node_view_holds_only_this_nodes_mappings(tmp_path: Path, url: str, host: Host) -> None:
    map_add_pci(url, host, "other", GPU, node="hv9")
    cache = tmp_path / "cache.xml"
    agent_once(url, cache, host)
    view = load_store(view_path(str(cache), "hv1"))
    assert sorted(view.mappings) == ["gpu0", "gpu0-audio", "gpu0-usb", "nvme0"]
    assert "other" in load_store(str(cache)).mappings
    code, err = prepare(host, cache)
    assert code == 0, err
    # nvme0 loses its hv1 entry: no longer in hv1's view, so the hook reads the whole
    # cache and says what happened to the mapping (not that it does not exist).
    cli("map", "remove", "nvme0", "--node", "hv1", "--store", url)
    agent_once(url, cache, host)
    assert "nvme0" not in load_store(view_path(str(cache), "hv1")).mappings
    code, err = prepare(host, cache)
    assert code == 1 and "the store's entry for node hv1 no longer matches" in err, err


def test_etcd_gone_the_cache_stays_and_the_hook_still_verifies(tmp_path: Path) -> None:
    cluster = EtcdCluster(tmp_path / "etcd").start()
    try:
        url = cluster.url()
        host = import_host(tmp_path, url)
        cache = tmp_path / "cache.xml"
        with running_agent(url, cache, host) as log:
            before = cache.read_bytes()
            member = cluster.members[0]
            member.stop(signal.SIGKILL)
            wait_for(lambda: "etcd unreachable" in log.read_text(), 10, "agent did not notice")
            assert cache.read_bytes().split(b"\n", 1)[1] == before.split(b"\n", 1)[1]
            code, err = prepare(host, cache)
            assert code == 0, err
            code, err = prepare(host, cache, "cache_max_age = 0\n")
            assert code == 0 and "s old (etcd revision" in err, err
            # etcd comes back; a write lands before the agent has reconnected.
            cluster.restart(member)
            map_add_pci(url, host, "nic9", "0000:43:00.0")
            wait_for(lambda: b"nic9" in cache.read_bytes(), 15, f"no catch-up: {log.read_text()}")
            assert "etcd reachable again" in log.read_text()
        # A write while the agent is not running at all: the next start catches up.
        cli("map", "remove", "gpu0-usb", "--store", url)
        agent_once(url, cache, host)
        assert "gpu0-usb" not in load_store(str(cache)).mappings
    finally:
        cluster.stop()


def test_three_members_one_down_writes_two_down_refused_cache_still_read(
    tmp_path: Path,
) -> None:
    cluster = EtcdCluster(tmp_path / "etcd", size=3).start()
    try:
        url = cluster.url()
        host = import_host(tmp_path, url)
        cache = tmp_path / "cache.xml"
        cluster.members[0].stop()
        map_add_pci(url, host, "nic1", "0000:43:00.0")
        agent_once(url, cache, host)
        assert "nic1" in load_store(str(cache)).mappings
        cluster.members[1].stop()
        proc = map_add_pci(url, host, "nic2", "0000:43:00.0", check=3)
        endpoints = ", ".join(m.endpoint for m in cluster.members)
        assert proc.stderr.count("\n") == 1
        assert "etcd unreachable: tried" in proc.stderr
        assert all(m.endpoint in proc.stderr for m in cluster.members), (endpoints, proc.stderr)
        # Reads go on from the cache: the hook and the CLI with --store CACHE.
        assert prepare(host, cache)[0] == 0
        assert "nic1" in cli("map", "list", "--store", str(cache)).stdout
    finally:
        cluster.stop()


def test_map_check_reads_the_inventories_two_agents_published(tmp_path: Path, url: str) -> None:
    hv1 = import_host(tmp_path / "hv1", url)
    # On hv2 a card was added and the GPU moved from 41:00.0 to 44:00.0.
    hv2 = make_host(tmp_path / "hv2", gpu_host(gpu_at="0000:44:00.0"))
    for node, host in (("hv1", hv1), ("hv2", hv2)):
        agent_once(url, tmp_path / f"{node}.xml", host, node)
    proc = cli("map", "check", "--store", url, check=1)
    rows = {tuple(line.split()[:3]) for line in proc.stdout.splitlines()[1:] if line}
    assert ("gpu0", "hv1", "ok") in rows
    assert ("gpu0", "hv2", "shifted") in rows
    assert ("nvme0", "hv2", "no-entry") in rows
    assert "s old)" in proc.stdout  # each node's inventory age
    # hv2's agent went quiet long ago: its rows are stale, not failures.
    store = EtcdStore(StoreUrl.parse(url))
    published = {p.node: p for p in store.inventories()}
    store.publish("hv2", published["hv2"].inventory, now=time.time() - 3600)
    proc = cli("map", "check", "--store", url, "--max-age", "600", check=None)
    rows = {tuple(line.split()[:3]) for line in proc.stdout.splitlines()[1:] if line}
    assert ("gpu0", "hv2", "stale") in rows and ("gpu0", "hv1", "ok") in rows
    assert re.search(r"hv2's agent last published 36\d\d s ago", proc.stdout)
    assert proc.stdout.endswith("4 ok, 4 stale, 0 not ok\n")
    assert proc.returncode == 0  # every hv2 row (its shift too) is stale: not a failure


def test_the_hook_reading_a_cache_opens_no_network_connection(
    tmp_path: Path, url: str, host: Host
) -> None:
    """No socket module, no etcd client on the hook's path: it cannot talk to etcd."""
    cache = tmp_path / "cache.xml"
    agent_once(url, cache, host)
    log = tmp_path / "hook.log"
    write_hook_config(host, cache, log, "cache_max_age = 0\n")
    xml = tmp_path / "vm1.xml"
    xml.write_bytes(host.resolve(domain_xml("vm1", mapped("nvme0", managed="yes"))))
    script = (
        "import sys\n"
        "from hostdev_resolver.doors import hook\n"
        f"code = hook.main(['vm1', 'prepare', 'begin', '-'], open({str(xml)!r}, 'rb'))\n"
        "net = sorted(m for m in sys.modules if m in ('socket', 'ssl', 'http.client',"
        " 'urllib.request', 'hostdev_resolver.host.etcd', 'hostdev_resolver.host.etcdstore'))\n"
        "print(code, net)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(REPO / "src"),
             "HOSTDEV_RESOLVER_CONFIG": str(host.config)},
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert proc.stdout.strip() == "0 []", proc.stderr
    assert "s old (etcd revision" in log.read_text()


def test_the_agent_logs_a_mapped_device_that_vanishes_and_comes_back(
    tmp_path: Path, url: str, host: Host
) -> None:
    from hostdev_resolver.doors.agent import Agent
    from hostdev_resolver.host.snapshot import inventory_to_json
    from hostdev_resolver.host.sysfs import SysfsInventory
    from tests.hook.fixtures import NVME
    from tests.support.hosttree import PciSpec

    def inventory():  # type: ignore[no-untyped-def]
        inv = SysfsInventory(host.root)
        return inv, inventory_to_json(inv, "hv1")

    log = io.StringIO()
    agent = Agent(EtcdStore(StoreUrl.parse(url)), str(tmp_path / "c.xml"), "hv1", inventory,
                  log=log)  # fmt: skip
    agent.once()
    assert log.getvalue() == ""  # everything where the store says: nothing to tell
    host.tree.remove_pci(NVME)
    agent.publish()
    assert log.getvalue().count("\n") == 1
    assert "nvme0 on hv1: ok -> missing" in log.getvalue()
    host.tree.add_pci(PciSpec(NVME, "144d", "a808", "144d", "a801", "010802", 32, 0, "nvme"))
    agent.publish()
    assert "nvme0 on hv1: missing -> ok" in log.getvalue().splitlines()[-1]
    published = {p.node: p for p in agent.store.inventories()}
    assert any(d["address"] == NVME for d in published["hv1"].inventory["pci"])
