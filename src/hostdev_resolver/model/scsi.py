"""SCSI logical units, SCSI/FC hosts, FC targets, NPIV vports and dm-multipath maps.

Data only (frozen records and lookups over them, their JSON form, no I/O): what
resolution and verification work on. `host.scsisysfs` reads it from a sysfs root and a
dev root (`read_scsi_inventory`) and from udev device properties.

Host, channel, target and LUN numbers (`H:C:T:L`) are positions, not identities:
the host number is handed out by the SCSI midlayer in probe order and changes on
every rescan, reboot or iSCSI re-login (see libvir-list, "changes to domain XML
for SCSI support", 2011-10). Identities are the LUN's WWN (VPD page 0x83), its
T10 vendor ID or unit serial when it has no WWN, and the WWNN/WWPN of FC ports.
"""

from __future__ import annotations

from .errors import InputError, Location
from .pciaddress import decimal_digits
from .records import frozen
from .wwn import Wwn

# Not typing.TYPE_CHECKING: `inventory` reads SCSI devices on every run, and typing
# costs ~2.5 ms of start-up (issue 12).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

# SCSI peripheral device types (SPC-4 table 49) worth naming in messages.
PERIPHERAL_TYPES = {
    0: "disk",
    1: "tape",
    5: "cd/dvd",
    8: "medium changer",
    12: "raid",
    13: "enclosure",
}


@frozen(order=True)
class ScsiAddress:
    """`H:C:T:L` as the kernel names a SCSI device; libvirt's adapter/bus/target/unit."""

    host: int
    channel: int
    target: int
    lun: int

    @classmethod
    def parse(cls, text: str, where: Location | None = None) -> ScsiAddress:
        """`2:0:1:3`, `scsi_host2:0:1:3` (as messages print it)."""
        value = text.strip()
        if value.startswith("scsi_host"):
            value = value[len("scsi_host") :]
        parts = value.split(":")
        if len(parts) != 4 or not all(decimal_digits(p) for p in parts):
            raise InputError(
                f"{text!r} is not a SCSI address",
                where=where,
                fix="write host:channel:target:lun, e.g. 2:0:1:3",
            )
        host, channel, target, lun = (int(p) for p in parts)
        return cls(host, channel, target, lun)

    @property
    def adapter(self) -> str:
        """libvirt's name for the host adapter: `scsi_hostN`."""
        return f"scsi_host{self.host}"

    def __str__(self) -> str:
        return f"{self.host}:{self.channel}:{self.target}:{self.lun}"

    @property
    def described(self) -> str:
        return f"{self.adapter} bus {self.channel} target {self.target} unit {self.lun}"


@frozen
class LunIdentity:
    """What a logical unit *is*. A recorded identity names it by the first of wwn,
    t10_id, serial that is set; vendor/model, when recorded, must match too."""

    wwn: Wwn | None = None
    t10_id: str | None = None
    serial: str | None = None
    vendor: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        if self.wwn is None and self.t10_id is None and self.serial is None:
            raise InputError(
                "a LUN identity needs a WWN, a T10 vendor ID or a unit serial",
                fix="give --wwn, or capture the device with --device",
            )

    def describe(self) -> str:
        if self.wwn is not None:
            return f"WWN {self.wwn}"
        if self.t10_id is not None:
            return f"T10 ID {self.t10_id!r}"
        return f"serial {self.serial!r}"

    def matches(self, found: LunIdentity) -> bool:
        """Never by accident: only the recorded key counts, an absent one never matches."""
        if self.wwn is not None:
            return found.wwn is not None and self.wwn.covers(found.wwn)
        if self.t10_id is not None:
            if found.t10_id != self.t10_id:
                return False
        elif found.serial != self.serial:
            return False
        return all(
            mine is None or mine == theirs
            for mine, theirs in ((self.vendor, found.vendor), (self.model, found.model))
        )


@frozen
class FcLunPath:
    """One path to an FC LUN, by names only: initiator port WWPN (an HBA or an NPIV
    vport), target port WWPN, LUN number. The host, channel and target numbers that
    path has today are looked up in the inventory."""

    initiator: Wwn
    target: Wwn
    lun: int

    def __str__(self) -> str:
        return f"initiator {self.initiator} target {self.target} LUN {self.lun}"


@frozen
class ScsiDevice:
    """One SCSI device (`class/scsi_device/H:C:T:L`). `identity` is None when it could
    not be read; `problem` then says why."""

    address: ScsiAddress
    identity: LunIdentity | None
    peripheral_type: int | None = None
    block: str | None = None  # sdX
    generic: str | None = None  # sgN
    problem: str | None = None

    @property
    def kind(self) -> str:
        if self.peripheral_type is None:
            return "device"
        return PERIPHERAL_TYPES.get(self.peripheral_type, f"type {self.peripheral_type}")

    def describe(self) -> str:
        name = f" ({self.block})" if self.block else ""
        who = self.identity.describe() if self.identity else "unreadable identity"
        return f"{self.address}{name} {who}"


@frozen
class FcHost:
    """An FC initiator port (`class/fc_host/hostN`), physical or an NPIV vport."""

    host: int
    wwnn: Wwn
    wwpn: Wwn
    port_state: str | None = None
    fabric: Wwn | None = None
    parent: int | None = None  # the physical host of an NPIV vport
    npiv_capable: bool = False  # has vport_create

    @property
    def adapter(self) -> str:
        return f"scsi_host{self.host}"


@frozen
class FcTarget:
    """An FC remote target port (`class/fc_transport/targetH:C:T`)."""

    host: int
    channel: int
    target: int
    wwpn: Wwn
    wwnn: Wwn | None = None


@frozen
class MultipathMap:
    """A dm-multipath map (`block/dm-N` whose `dm/uuid` starts with `mpath-`)."""

    dm: str  # dm-N
    uuid: str
    name: str | None
    slaves: tuple[str, ...]

    @property
    def by_id_name(self) -> str:
        # 13-dm-disk.rules: SYMLINK+="disk/by-id/dm-uuid-$env{DM_UUID}"
        return f"dm-uuid-{self.uuid}"


@frozen
class DevLink:
    """A `/dev/disk/by-id` link and the kernel name it leads to (`sdb`, `dm-3`)."""

    name: str
    target: str


@frozen
class Unreadable:
    """Something the inventory skipped, and why (a broken FC host, a vanished device)."""

    path: str
    problem: str


@frozen
class ScsiInventory:
    """The SCSI side of one host, as data. `links` is None when no dev root was read."""

    devices: tuple[ScsiDevice, ...] = ()
    fc_hosts: tuple[FcHost, ...] = ()
    fc_targets: tuple[FcTarget, ...] = ()
    multipaths: tuple[MultipathMap, ...] = ()
    links: tuple[DevLink, ...] | None = None
    unreadable: tuple[Unreadable, ...] = ()

    def device(self, address: ScsiAddress) -> ScsiDevice | None:
        return next((d for d in self.devices if d.address == address), None)

    def device_by_block(self, block: str) -> ScsiDevice | None:
        return next((d for d in self.devices if d.block == block), None)

    def find(self, identity: LunIdentity) -> list[ScsiDevice]:
        """Every readable device (every path) whose identity matches, in address order."""
        return sorted(
            (d for d in self.devices if d.identity is not None and identity.matches(d.identity)),
            key=lambda d: d.address,
        )

    def fc_host(self, host: int) -> FcHost | None:
        return next((h for h in self.fc_hosts if h.host == host), None)

    def fc_host_by_wwpn(self, wwpn: Wwn) -> FcHost | None:
        return next((h for h in self.fc_hosts if h.wwpn == wwpn), None)

    def fc_target(self, host: int, channel: int, target: int) -> FcTarget | None:
        return next(
            (
                t
                for t in self.fc_targets
                if (t.host, t.channel, t.target) == (host, channel, target)
            ),
            None,
        )

    def fc_targets_by_wwpn(self, host: int, wwpn: Wwn) -> list[FcTarget]:
        return [t for t in self.fc_targets if t.host == host and t.wwpn == wwpn]

    def multipath_of(self, paths: Iterable[ScsiDevice]) -> MultipathMap | None:
        blocks = {d.block for d in paths if d.block}
        return next((m for m in self.multipaths if blocks & set(m.slaves)), None)

    def link_target(self, name: str) -> str | None:
        if self.links is None:
            return None
        return next((link.target for link in self.links if link.name == name), None)

    def links_to(self, target: str) -> list[str]:
        return sorted(link.name for link in self.links or () if link.target == target)


# -- presenting ----------------------------------------------------------------------


def scsi_to_json(inventory: ScsiInventory) -> dict[str, Any]:
    """The SCSI part of `inventory --format json`: what `map add lun|scsi|vhba` can use."""

    def ident(i: LunIdentity | None) -> dict[str, str | None] | None:
        if i is None:
            return None
        wwn = None if i.wwn is None else str(i.wwn)
        return {
            "wwn": wwn,
            "t10_id": i.t10_id,
            "serial": i.serial,
            "vendor": i.vendor,
            "model": i.model,
        }

    return {
        "devices": [
            {
                "address": str(d.address),
                "type": d.kind,
                "peripheral_type": d.peripheral_type,
                "block": d.block,
                "generic": d.generic,
                "identity": ident(d.identity),
                "problem": d.problem,
                "by_id": inventory.links_to(d.block) if d.block else [],
            }
            for d in inventory.devices
        ],
        "fc_hosts": [
            {
                "adapter": h.adapter,
                "wwnn": str(h.wwnn),
                "wwpn": str(h.wwpn),
                "fabric": None if h.fabric is None else str(h.fabric),
                "port_state": h.port_state,
                "parent": None if h.parent is None else f"scsi_host{h.parent}",
                "npiv_capable": h.npiv_capable,
            }
            for h in inventory.fc_hosts
        ],
        "fc_targets": [
            {
                "target": f"{t.host}:{t.channel}:{t.target}",
                "wwpn": str(t.wwpn),
                "wwnn": None if t.wwnn is None else str(t.wwnn),
            }
            for t in inventory.fc_targets
        ],
        "multipath": [
            {"dm": m.dm, "name": m.name, "uuid": m.uuid, "paths": list(m.slaves)}
            for m in inventory.multipaths
        ],
        "links": None
        if inventory.links is None
        else [{"name": link.name, "target": link.target} for link in inventory.links],
        "unreadable": [{"path": u.path, "problem": u.problem} for u in inventory.unreadable],
    }


def scsi_from_json(data: Any, where: Location) -> ScsiInventory:
    """The inverse of `scsi_to_json`: a node's SCSI view from its host snapshot."""

    def wwn(value: Any, name: str) -> Wwn | None:
        return None if value is None else Wwn.parse(str(value), name=name, where=where)

    def text(value: Any, name: str) -> str | None:
        """A string field (null: absent); anything else is malformed (TypeError)."""
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a string or null, not {type(value).__name__}")
        return value

    def number(value: Any, name: str) -> int | None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{name} must be an integer or null, not {type(value).__name__}")
        return value

    def identity(value: Any) -> LunIdentity | None:
        if value is None:
            return None
        return LunIdentity(
            wwn(value.get("wwn"), "wwn"),
            text(value.get("t10_id"), "t10_id"),
            text(value.get("serial"), "serial"),
            text(value.get("vendor"), "vendor"),
            text(value.get("model"), "model"),
        )

    def host_number(adapter: Any) -> int | None:
        return None if adapter is None else int(str(adapter).removeprefix("scsi_host"))

    try:
        devices = tuple(
            ScsiDevice(
                ScsiAddress.parse(d["address"], where),
                identity(d.get("identity")),
                number(d.get("peripheral_type"), "peripheral_type"),
                text(d.get("block"), "block"),
                text(d.get("generic"), "generic"),
                text(d.get("problem"), "problem"),
            )
            for d in data.get("devices", [])
        )
        fc_hosts = tuple(
            FcHost(
                int(h["adapter"].removeprefix("scsi_host")),
                Wwn.parse(h["wwnn"], name="wwnn", where=where),
                Wwn.parse(h["wwpn"], name="wwpn", where=where),
                text(h.get("port_state"), "port_state"),
                wwn(h.get("fabric"), "fabric"),
                host_number(h.get("parent")),
                bool(h.get("npiv_capable")),
            )
            for h in data.get("fc_hosts", [])
        )
        targets = []
        for t in data.get("fc_targets", []):
            host, channel, target = (int(x) for x in str(t["target"]).split(":"))
            wwpn = Wwn.parse(t["wwpn"], name="wwpn", where=where)
            targets.append(FcTarget(host, channel, target, wwpn, wwn(t.get("wwnn"), "wwnn")))
        multipaths = tuple(
            MultipathMap(
                str(m["dm"]),
                str(m["uuid"]),
                text(m.get("name"), "name"),
                tuple(str(p) for p in m.get("paths", [])),
            )
            for m in data.get("multipath", [])
        )
        links_data = data.get("links")
        links = (
            None
            if links_data is None
            else tuple(DevLink(str(x["name"]), str(x["target"])) for x in links_data)
        )
        unreadable = tuple(
            Unreadable(str(u["path"]), str(u["problem"])) for u in data.get("unreadable", [])
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(
            f"malformed SCSI part of the host snapshot: {exc!r}", where=where
        ) from None
    return ScsiInventory(devices, fc_hosts, tuple(targets), multipaths, links, unreadable)


def describe_scsi(inventory: ScsiInventory) -> list[str]:
    """One line per SCSI device, FC port and multipath map, for `inventory` text output."""
    lines = []
    for d in inventory.devices:
        name = " ".join(n for n in (d.block, d.generic) if n)
        who = d.identity.describe() if d.identity else f"UNREADABLE: {d.problem}"
        lines.append(f"scsi {d.address} {d.kind} {name} {who}")
    for h in inventory.fc_hosts:
        parent = f" vport of scsi_host{h.parent}" if h.parent is not None else ""
        fabric = f" fabric {h.fabric}" if h.fabric else ""
        lines.append(
            f"fc {h.adapter} wwnn {h.wwnn} wwpn {h.wwpn} {h.port_state or '?'}{fabric}{parent}"
        )
    for m in inventory.multipaths:
        lines.append(f"multipath {m.name or m.dm} {m.uuid} paths {' '.join(m.slaves)}")
    for u in inventory.unreadable:
        lines.append(f"unreadable {u.path}: {u.problem}")
    return lines
