"""Builds SCSI/FC sysfs trees and /dev trees laid out like the kernel's and udev's.

Layout produced (as on a real kernel, symlinks relative):

    devices/pci0000:00/0000:41:00.0/host2/                 an HBA (or devices/platform/hostN)
        scsi_host/host2/                                    class/scsi_host/host2 -> here
        fc_host/host2/{node_name,port_name,port_state,fabric_name,vport_create}
                                                            class/fc_host/host2 -> here, device -> ../../
        vport-2:0-0/host9/fc_host/host9/...                 an NPIV vport of host2
        rport-2:0-0/target2:0:0/
            fc_transport/target2:0:0/{port_name,node_name}  class/fc_transport/target2:0:0 -> here
            2:0:0:1/{vendor,model,type,wwid,vpd_pg83,vpd_pg80}
                block/sdb/dev, scsi_generic/sg1/dev
                scsi_device/2:0:0:1/device -> ../../         class/scsi_device/2:0:0:1 -> here
    block/sdb -> ../devices/.../2:0:0:1/block/sdb
    devices/virtual/block/dm-0/{dm/uuid,dm/name,slaves/sdb -> ...}   block/dm-0 -> here

and under the dev root: sdb, dm-0, disk/by-id/wwn-0x… -> ../../sdb, mapper/NAME -> ../dm-0.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# SPC-4 designator types and code sets
NAA, EUI64, T10 = 3, 2, 1
BINARY, ASCII = 1, 2


def designator(
    kind: int, value: bytes, *, association: int = 0, code_set: int = BINARY, protocol: int = 0
) -> bytes:
    return bytes([(protocol << 4) | code_set, (association << 4) | kind, 0, len(value)]) + value


def naa(hex_digits: str, *, association: int = 0) -> bytes:
    return designator(NAA, bytes.fromhex(hex_digits), association=association)


def eui(hex_digits: str) -> bytes:
    return designator(EUI64, bytes.fromhex(hex_digits))


def t10(vendor: str, rest: str) -> bytes:
    """A T10 vendor ID designator: 8-byte space-padded vendor, then vendor-specific text."""
    return designator(T10, f"{vendor:<8}{rest}".encode(), code_set=ASCII)


def page83(*designators: bytes, peripheral: int = 0) -> bytes:
    body = b"".join(designators)
    return bytes([peripheral, 0x83]) + len(body).to_bytes(2, "big") + body


def page80(serial: str, peripheral: int = 0) -> bytes:
    body = serial.encode()
    return bytes([peripheral, 0x80]) + len(body).to_bytes(2, "big") + body


def _rel(target: Path, link: Path) -> str:
    return os.path.relpath(target, link.parent)


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(_rel(target, link))


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


class ScsiTree:
    """A kernel-like sysfs tree under `sysfs` and a udev-like dev tree under `dev`."""

    def __init__(self, sysfs: Path, dev: Path) -> None:
        self.sysfs = sysfs
        self.dev = dev
        for d in ("class/scsi_device", "class/scsi_host", "block", "devices"):
            (sysfs / d).mkdir(parents=True, exist_ok=True)
        (dev / "disk" / "by-id").mkdir(parents=True, exist_ok=True)
        self._hosts: dict[int, Path] = {}
        self._targets: dict[tuple[int, int, int], Path] = {}
        self._blocks: dict[str, Path] = {}

    # -- hosts -----------------------------------------------------------------------
    def add_host(self, host: int, parent: Path | None = None) -> Path:
        base = parent or self.sysfs / "devices" / "platform"
        path = base / f"host{host}"
        (path / "scsi_host" / f"host{host}").mkdir(parents=True)
        _write(path / "scsi_host" / f"host{host}" / "proc_name", "test")
        _link(
            self.sysfs / "class" / "scsi_host" / f"host{host}", path / "scsi_host" / f"host{host}"
        )
        self._hosts[host] = path
        return path

    def add_hba(
        self,
        host: int,
        *,
        pci: str = "0000:41:00.0",
        wwnn: str,
        wwpn: str,
        fabric: str = "0x0",
        port_state: str = "Online",
        npiv: bool = True,
    ) -> Path:
        """A physical FC HBA port on a PCI function."""
        parent = self.sysfs / "devices" / f"pci{pci[:7]}" / pci
        path = self.add_host(host, parent)
        self._fc_host(path, host, wwnn, wwpn, fabric, port_state, npiv)
        return path

    def add_vport(
        self, host: int, parent: int, *, wwnn: str, wwpn: str, fabric: str = "0x0", index: int = 0
    ) -> Path:
        """An NPIV vport of `parent` (scsi_transport_fc.c: hostP/vport-P:0-N/hostV)."""
        base = self._hosts[parent] / f"vport-{parent}:0-{index}"
        _write(base / "fc_vports" / f"vport-{parent}:0-{index}" / "port_name", wwpn)
        path = self.add_host(host, base)
        self._fc_host(path, host, wwnn, wwpn, fabric, "Online", npiv=False)
        return path

    def _fc_host(
        self, path: Path, host: int, wwnn: str, wwpn: str, fabric: str, state: str, npiv: bool
    ) -> None:
        fc = path / "fc_host" / f"host{host}"
        _write(fc / "node_name", wwnn)
        _write(fc / "port_name", wwpn)
        _write(fc / "fabric_name", fabric)
        _write(fc / "port_state", state)
        if npiv:
            # write-only in the kernel (S_IWUSR); only its presence matters to readers
            _write(fc / "vport_create", "")
            _write(fc / "max_npiv_vports", "255")
        _link(fc / "device", path)
        _link(self.sysfs / "class" / "fc_host" / f"host{host}", fc)

    # -- targets and devices -------------------------------------------------------------
    def add_fc_target(
        self, host: int, channel: int, target: int, *, wwpn: str, wwnn: str = "0x0", rport: int = 0
    ) -> Path:
        rp = self._hosts[host] / f"rport-{host}:{channel}-{rport}"
        _write(rp / "fc_remote_ports" / f"rport-{host}:{channel}-{rport}" / "port_name", wwpn)
        name = f"target{host}:{channel}:{target}"
        path = rp / name
        ft = path / "fc_transport" / name
        _write(ft / "port_name", wwpn)
        _write(ft / "node_name", wwnn)
        _link(self.sysfs / "class" / "fc_transport" / name, ft)
        self._targets[(host, channel, target)] = path
        return path

    def add_device(
        self,
        address: str,
        *,
        vendor: str = "NETAPP",
        model: str = "LUN C-Mode",
        ptype: int = 0,
        pg83: bytes | None = None,
        pg80: bytes | None = None,
        wwid: str | None = None,
        block: str | None = None,
        sg: str | None = None,
        links: Iterable[str] = (),
    ) -> Path:
        """A SCSI device at `H:C:T:L`, below its FC target when one was added."""
        host, channel, target, _lun = (int(p) for p in address.split(":"))
        parent = self._targets.get((host, channel, target))
        if parent is None:
            parent = self._hosts[host] / f"target{host}:{channel}:{target}"
        path = parent / address
        _write(path / "vendor", f"{vendor:<8}")
        _write(path / "model", f"{model:<16}")
        _write(path / "type", str(ptype))
        if pg83 is not None:
            (path / "vpd_pg83").write_bytes(pg83)
        if pg80 is not None:
            (path / "vpd_pg80").write_bytes(pg80)
        if wwid is not None:
            _write(path / "wwid", wwid)
        cls = path / "scsi_device" / address
        cls.mkdir(parents=True)
        _link(cls / "device", path)
        _link(self.sysfs / "class" / "scsi_device" / address, cls)
        if block is not None:
            _write(path / "block" / block / "dev", "8:16")
            _link(self.sysfs / "block" / block, path / "block" / block)
            self._blocks[block] = path / "block" / block
            (self.dev / block).touch()
            for name in links:
                self.add_link(name, block)
        if sg is not None:
            _write(path / "scsi_generic" / sg / "dev", "21:1")
        return path

    def add_link(self, name: str, target: str) -> None:
        _link(self.dev / "disk" / "by-id" / name, self.dev / target)

    def add_multipath(self, dm: str, uuid: str, name: str, slaves: list[str]) -> Path:
        path = self.sysfs / "devices" / "virtual" / "block" / dm
        _write(path / "dm" / "uuid", uuid)
        _write(path / "dm" / "name", name)
        (path / "slaves").mkdir(parents=True)
        for slave in slaves:
            _link(path / "slaves" / slave, self._blocks[slave])
        _link(self.sysfs / "block" / dm, path)
        (self.dev / dm).touch()
        _link(self.dev / "mapper" / name, self.dev / dm)
        self.add_link(f"dm-uuid-{uuid}", dm)
        self.add_link(f"dm-name-{name}", dm)
        return path
