"""Reading SCSI logical units, SCSI/FC hosts, FC targets, NPIV vports and dm-multipath
maps from a sysfs root and a dev root (`read_scsi_inventory`), through
`sysfs.SysfsReader`, and LUN identities from udev device properties
(`lun_identity_from_udev`). The values are `model.scsi`'s.
"""

from __future__ import annotations

import os

from ..model.errors import InputError, Location
from ..model.pciaddress import decimal_digits
from ..model.scsi import (
    DevLink,
    FcHost,
    FcTarget,
    LunIdentity,
    MultipathMap,
    ScsiAddress,
    ScsiDevice,
    ScsiInventory,
    Unreadable,
)
from ..model.vpd import parse_pg80, parse_pg83, parse_wwid
from ..model.wwn import Wwn, parse_fc_attribute
from .sysfs import VPD_PAGE_LIMIT, SysfsReader

# Not typing.TYPE_CHECKING, and os.path rather than pathlib: `inventory` imports this
# module on every run, and typing with pathlib cost it ~6 ms (issue 12).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Protocol

    class UdevDevice(Protocol):
        """The part of `pyudev.Device` we read (umockdev serves the same)."""

        @property
        def properties(self) -> Mapping[str, str]: ...


# -- reading sysfs -------------------------------------------------------------------


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and decimal_digits(text) else None


def _host_number(name: str) -> int | None:
    return int(name[4:]) if name.startswith("host") and decimal_digits(name[4:]) else None


def _read_identity(r: SysfsReader, dev: str) -> LunIdentity:
    """A device's identity from VPD pages (or `wwid` on kernels without them).

    Raises InputError (VpdError included) when a page is present but unusable.
    """
    where = Location(str(dev))
    wwn: Wwn | None = None
    t10: str | None = None
    pg83 = r.bytes(os.path.join(dev, "vpd_pg83"), VPD_PAGE_LIMIT)
    if pg83 is not None:
        ident = parse_pg83(pg83)
        wwn, t10 = ident.wwn, ident.t10_vendor_id
    else:
        # vpd_pg83 appeared in Linux 4.2; `wwid` (3.19) carries only the preferred designator.
        wwid = r.text(os.path.join(dev, "wwid"))
        if wwid:
            try:
                wwn, t10 = parse_wwid(wwid)
            except InputError as exc:
                raise InputError(exc.what, where=where) from None
    pg80 = r.bytes(os.path.join(dev, "vpd_pg80"), VPD_PAGE_LIMIT)
    serial = parse_pg80(pg80) if pg80 is not None else None
    vendor = r.text(os.path.join(dev, "vendor")) or None
    model = r.text(os.path.join(dev, "model")) or None
    if wwn is None and t10 is None and serial is None:
        raise InputError(
            "reports no WWN, T10 vendor ID or unit serial (no VPD pages 0x83/0x80)",
            where=where,
        )
    return LunIdentity(wwn, t10, serial, vendor, model)


def _read_device(r: SysfsReader, name: str) -> ScsiDevice | None:
    try:
        address = ScsiAddress.parse(name)
    except InputError:
        return None
    dev = r.path("class", "scsi_device", name, "device")
    if not os.path.isdir(dev):
        return None  # a dangling class entry: the device went away while we listed them
    # CONFIG_SYSFS_DEPRECATED kernels used `block:sdX` links instead of a `block/` dir;
    # gone since 2.6.38, not supported.
    blocks = r.listdir(os.path.join(dev, "block"))
    generics = r.listdir(os.path.join(dev, "scsi_generic"))
    ptype = _int_or_none(r.text(os.path.join(dev, "type")))
    try:
        identity = _read_identity(r, dev)
    except InputError as exc:
        return ScsiDevice(
            address,
            None,
            ptype,
            blocks[0] if blocks else None,
            generics[0] if generics else None,
            problem=exc.what,
        )
    return ScsiDevice(
        address, identity, ptype, blocks[0] if blocks else None, generics[0] if generics else None
    )


def _vport_parent(r: SysfsReader, host_dir: str) -> int | None:
    """The physical host of an NPIV vport: its device sits below `hostP/vport-P:C-N/`
    (drivers/scsi/scsi_transport_fc.c, fc_vport_setup)."""
    real = os.path.realpath(host_dir)
    parts = real.split(os.sep)
    for i, part in enumerate(parts):
        if part.startswith("vport-") and i > 0:
            return _host_number(parts[i - 1])
    return None


def _read_fc_hosts(r: SysfsReader) -> tuple[list[FcHost], list[Unreadable]]:
    hosts: list[FcHost] = []
    bad: list[Unreadable] = []
    base = r.path("class", "fc_host")
    for name in r.listdir(base):
        number = _host_number(name)
        if number is None:
            continue
        d = os.path.join(base, name)
        try:
            wwnn = parse_fc_attribute(r.text(os.path.join(d, "node_name")))
            wwpn = parse_fc_attribute(r.text(os.path.join(d, "port_name")))
            fabric = parse_fc_attribute(r.text(os.path.join(d, "fabric_name")))
        except InputError as exc:
            bad.append(Unreadable(str(d), exc.what))
            continue
        if wwnn is None or wwpn is None:
            bad.append(Unreadable(str(d), "has no node_name/port_name"))
            continue
        # vport_create is write-only (S_IWUSR, scsi_transport_fc.c): only its presence
        # says the HBA can carry NPIV vports, so test for it instead of reading it.
        npiv = os.path.exists(r.path("class", "fc_host", name, "vport_create"))
        hosts.append(
            FcHost(
                number,
                wwnn,
                wwpn,
                r.text(os.path.join(d, "port_state")),
                fabric,
                _vport_parent(r, os.path.join(d, "device")),
                npiv,
            )
        )
    return hosts, bad


def _read_fc_targets(r: SysfsReader) -> tuple[list[FcTarget], list[Unreadable]]:
    targets: list[FcTarget] = []
    bad: list[Unreadable] = []
    base = r.path("class", "fc_transport")
    for name in r.listdir(base):
        parts = name.removeprefix("target").split(":")
        if (
            not name.startswith("target")
            or len(parts) != 3
            or not all(decimal_digits(p) for p in parts)
        ):
            continue
        d = os.path.join(base, name)
        try:
            wwpn = parse_fc_attribute(r.text(os.path.join(d, "port_name")))
            wwnn = parse_fc_attribute(r.text(os.path.join(d, "node_name")))
        except InputError as exc:
            bad.append(Unreadable(str(d), exc.what))
            continue
        if wwpn is None:
            bad.append(Unreadable(str(d), "has no port_name"))
            continue
        host, channel, target = (int(p) for p in parts)
        targets.append(FcTarget(host, channel, target, wwpn, wwnn))
    return targets, bad


def _read_multipaths(r: SysfsReader) -> list[MultipathMap]:
    out = []
    base = r.path("block")
    for name in r.listdir(base):
        if not name.startswith("dm-"):
            continue
        uuid = r.text(os.path.join(base, name, "dm", "uuid"))
        # multipathd names maps "mpath-<WWID>"; other dm targets (LVM "LVM-…", crypt
        # "CRYPT-…") stack on disks too but are not paths to a LUN.
        if not uuid or not uuid.startswith("mpath-"):
            continue
        out.append(
            MultipathMap(
                name,
                uuid,
                r.text(os.path.join(base, name, "dm", "name")) or None,
                tuple(r.listdir(os.path.join(base, name, "slaves"))),
            )
        )
    return out


def _read_links(dev_root: str) -> tuple[DevLink, ...]:
    r = SysfsReader(dev_root)
    base = r.path("disk", "by-id")
    links = []
    for name in r.listdir(base):
        target = r.link_name(os.path.join(base, name))
        if target is not None:
            links.append(DevLink(name, target))
    return tuple(links)


def read_scsi_inventory(
    root: str | os.PathLike[str] = "/sys",
    dev_root: str | os.PathLike[str] | None = "/dev",
    *,
    reader: SysfsReader | None = None,
) -> ScsiInventory:
    """The SCSI inventory of the host whose sysfs is at `root` and devices at `dev_root`
    (None: do not read /dev/disk/by-id, e.g. for a captured sysfs tree)."""
    r = reader or SysfsReader(root)
    r.check_root()
    devices = []
    for name in r.listdir(r.path("class", "scsi_device")):
        device = _read_device(r, name)
        if device is not None:
            devices.append(device)
    fc_hosts, bad_hosts = _read_fc_hosts(r)
    fc_targets, bad_targets = _read_fc_targets(r)
    return ScsiInventory(
        devices=tuple(sorted(devices, key=lambda d: d.address)),
        fc_hosts=tuple(sorted(fc_hosts, key=lambda h: h.host)),
        fc_targets=tuple(fc_targets),
        multipaths=tuple(_read_multipaths(r)),
        links=None if dev_root is None else _read_links(os.fspath(dev_root)),
        unreadable=tuple(bad_hosts + bad_targets),
    )


# -- reading udev -------------------------------------------------------------------


def lun_identity_from_udev(device: UdevDevice) -> LunIdentity | None:
    """A disk's identity from its udev properties, None when udev gave it none.

    `ID_WWN_WITH_EXTENSION` is the full NAA name (`ID_WWN` drops a type 6 name's
    second half); `ID_SCSI_SERIAL` is page 0x80 (scsi_id --export). For USB disks
    usb_id sets `ID_SERIAL_SHORT` from the USB descriptor instead, which is what
    the bridge also reports as page 0x80 on the sticks we have seen — but not on
    all; the sysfs reading is the authority, this is the cross-check `inventory`
    prints. Raises InputError when udev's WWN is malformed.
    """
    props = device.properties
    wwn_text = props.get("ID_WWN_WITH_EXTENSION") or props.get("ID_WWN")
    wwn = Wwn.parse(wwn_text, name="ID_WWN") if wwn_text else None
    serial = props.get("ID_SCSI_SERIAL") or props.get("ID_SERIAL_SHORT") or None
    vendor = props.get("ID_VENDOR") or None
    model = props.get("ID_MODEL") or None
    if wwn is None and serial is None:
        return None
    return LunIdentity(wwn=wwn, serial=serial, vendor=vendor, model=model)


def udev_by_id_links(device: UdevDevice) -> tuple[str, ...]:
    """The `/dev/disk/by-id` link names of a udev device, sorted.

    Read from the DEVLINKS property (space-separated, as udev exports it) rather than
    libudev's devlinks list: the two carry the same links, and the property is also
    what umockdev testbeds and `udevadm info --export` give.
    """
    prefix = "/dev/disk/by-id/"
    links = device.properties.get("DEVLINKS", "").split()
    return tuple(sorted(link[len(prefix) :] for link in links if link.startswith(prefix)))
