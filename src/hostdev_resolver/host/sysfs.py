"""Host inventory read from a sysfs tree (the live /sys, or any directory laid out like it).

All reads of sysfs go through `SysfsReader`; the root is a constructor argument so
tests and captured trees work the same as the live host. A device that vanishes
while we read it (hot-unplug) is reported as absent, not as an error.
"""

from __future__ import annotations

import errno
import os
import stat

from ..model.errors import HostAccessError, InputError, Location
from ..model.identity import PciIdentity, UsbIdentity, format_dsn, parse_class, parse_id16
from ..model.inventory import PciDevice, UsbDevice
from ..model.pciaddress import MAX_DIGITS, PciAddress, decimal_digits, hex_digits, shown

# Not typing.TYPE_CHECKING: the hook avoids importing typing (see records.py).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .pcifacts import SysfsPciFacts

    # One PCI function as its sysfs directory has it, unparsed: vendor, device, subsystem
    # vendor and device, class, driver, serial (from config), iommu_group, numa_node,
    # the physfn link's target and the virtfnN links' targets in index order.
    _RawPci = tuple[
        str, str, str | None, str | None, str | None, str | None, str | None,
        str | None, str | None, str | None, list[str],
    ]  # fmt: skip
    # One row of `inventory`'s PCI table (`pci_table`, `pci_row`): iommu group, address,
    # class (base and sub class, or ----), vendor:device, subsystem, NUMA node (or -),
    # driver, serial, physical slot, PF address, number of VFs, vendor and device.
    PciRow = tuple[
        int | None, str, str, str, str | None, str, str | None, str | None, str | None,
        str | None, int, int, int,
    ]  # fmt: skip

# PCIe extended capabilities start at 0x100 of config space; Device Serial Number is ID 3
# (PCIe Base Spec 7.9.3). Unprivileged readers get only the first 64 bytes of `config`.
_EXT_CAP_START = 0x100
_EXT_CAP_DSN = 0x0003


# Bounds on what one attribute can hold. A text attribute is what a show() callback
# writes into one page (sysfs_emit, fs/sysfs/file.c): 4 KiB on x86, but up to 64 KiB on
# arm64/ppc64 kernels with 64 KiB pages. PCI `config` is at most the 4 KiB of PCIe
# extended configuration space (PCI_CFG_SPACE_EXP_SIZE). A SCSI VPD page is a 4-byte
# header plus a 16-bit page length (SPC-4 7.8.1).
TEXT_LIMIT = 64 * 1024
CONFIG_LIMIT = 4096
# What one read of a text attribute can return: sysfs hands a show() method one page
# (fs/sysfs/file.c, sysfs_kf_seq_show). The table's quick reads ask for no more (a
# 64 KiB buffer per read cost `inventory` ~0.7 us each); a longer answer is not sysfs's
# and goes the careful way, read up to TEXT_LIMIT.
SYSFS_PAGE = 4096
VPD_PAGE_LIMIT = 4 + 0xFFFF


def _not_an_attribute(path: str | os.PathLike[str], what: str) -> InputError:
    return InputError(
        f"{os.fspath(path)} {what}, so it is no sysfs attribute; not read",
        fix="give --sysfs a copy of /sys (or a tree laid out like it) with regular files",
    )


def _read_attribute(path: str | os.PathLike[str], limit: int) -> bytes | None:
    """An attribute's contents, at most `limit` bytes; None when the kernel has none.

    A tree given as --sysfs may hold anything: a FIFO would block `open` (and every
    command, or libvirtd waiting on the hook), a link to /dev/zero reads forever. Only
    regular files are opened, non-blocking, and a file larger than any attribute of
    its kind is refused: the kernel's own attributes are always regular files. (A
    directory is merely absent: reading it fails at once, as a vanished device does.)
    """
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            return None
        if not stat.S_ISREG(info.st_mode):
            raise _not_an_attribute(path, "is not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except PermissionError as exc:
        raise HostAccessError(
            f"cannot read {os.fspath(path)}: permission denied", fix="run as root"
        ) from exc
    except OSError:
        # Absent, or unreadable as a device goes away (ENODEV, ENXIO, EIO): the kernel
        # has no value for us, which callers treat like an attribute the device lacks.
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _not_an_attribute(path, "is not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit and (chunk := os.read(fd, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise _not_an_attribute(path, f"is larger than {limit} bytes")
        return b"".join(chunks)
    except PermissionError as exc:
        raise HostAccessError(
            f"cannot read {os.fspath(path)}: permission denied", fix="run as root"
        ) from exc
    except OSError:  # gone or unreadable while we read it: as above
        return None
    finally:
        os.close(fd)


_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _open_directory(path: str, dir_fd: int | None = None, parent: str | None = None) -> int | None:
    """A directory's descriptor (`path` relative to `dir_fd` when given, which is the
    directory `parent`); None when it is not there or went away; no permission is the
    one-line error naming it."""
    try:
        return os.open(path, _DIRECTORY_FLAGS, dir_fd=dir_fd)
    except PermissionError as exc:
        shown = path if parent is None else os.path.join(parent, path)
        raise HostAccessError(f"cannot open {shown}: permission denied", fix="run as root") from exc
    except OSError:
        return None


class SysfsReader:
    """Reads files and links below a sysfs root; the one place sysfs is read.

    Paths are plain strings (os.path): pathlib imports fnmatch, re and urllib, more
    than the hook can afford on every start. The methods take any path-like object.
    """

    def __init__(self, root: str | os.PathLike[str] = "/sys") -> None:
        self.root = os.fspath(root)

    def check_root(self) -> None:
        if not os.path.isdir(self.root):
            raise InputError(
                f"sysfs root {self.root} does not exist or is not a directory",
                fix="give --sysfs a directory laid out like /sys",
            )

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def text(self, path: str | os.PathLike[str]) -> str | None:
        data = _read_attribute(path, TEXT_LIMIT)
        return None if data is None else data.decode("utf-8", errors="replace").strip()

    def bytes(self, path: str | os.PathLike[str], limit: int = CONFIG_LIMIT) -> bytes | None:
        """A binary attribute's contents (at most `limit` bytes); None when absent."""
        return _read_attribute(path, limit)

    def link_name(self, path: str | os.PathLike[str]) -> str | None:
        """The last component of a symlink's target (driver, iommu_group...)."""
        try:
            return os.path.basename(os.readlink(path))
        except OSError:  # not there, not a link: the device has no such relation
            return None

    def directory(self, path: str | os.PathLike[str]) -> SysfsDir | None:
        """One device's directory, opened once: its attributes are then read relative to
        it (no path walk per attribute). None when it is not there (or went away)."""
        fd = _open_directory(os.fspath(path))
        return None if fd is None else SysfsDir(os.fspath(path), fd)

    def listdir(self, path: str | os.PathLike[str]) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except PermissionError as exc:
            raise HostAccessError(
                f"cannot list {os.fspath(path)}: permission denied", fix="run as root"
            ) from exc
        except OSError:  # absent, or gone while we looked
            return []

    def has_entries(self, path: str | os.PathLike[str]) -> bool:
        """Whether `listdir(path)` would list anything, without listing it all (a host's
        kernel/iommu_groups has an entry per group: thousands)."""
        try:
            with os.scandir(path) as entries:
                return next(entries, None) is not None
        except PermissionError as exc:
            raise HostAccessError(
                f"cannot list {os.fspath(path)}: permission denied", fix="run as root"
            ) from exc
        except OSError:
            return False


# An attribute is opened without following a link: the kernel's attributes are regular
# files, never links, and a link in a --sysfs tree (to /dev/zero, say) fails the open
# with ELOOP and takes the checked path below. Non-blocking and O_NOCTTY: a FIFO or
# terminal in the tree is opened without waiting or side effects, then refused. The
# one thing no longer checked before the open is a device node made in the tree itself
# (only root can make one; sysfs has none): it is opened before being refused. The
# stat that ruled it out cost `inventory` a sixth of its time (three per function).
_ATTRIBUTE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NOCTTY


def read_attribute(dir_fd: int, name: str, where: str, limit: int = TEXT_LIMIT) -> bytes | None:
    """An attribute's bytes (at most `limit`), read relative to its device's directory;
    None when the kernel has no value for us (absent, or unreadable as the device goes
    away). Only a regular file's bytes are ever returned, and nothing can hang a
    command: the same rules as `_read_attribute`, in three system calls for what the
    kernel writes (open, read, close; `inventory` reads three attributes of each of
    thousands of devices). What is not a regular file shows itself when it is read: a
    FIFO or /dev/null gives nothing, /dev/zero more than any attribute holds, a
    directory an error; only then is the type asked for, to say which."""
    try:
        fd = os.open(name, _ATTRIBUTE_FLAGS, dir_fd=dir_fd)
    except PermissionError as exc:
        raise HostAccessError(
            f"cannot read {os.path.join(where, name)}: permission denied", fix="run as root"
        ) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link: follow it only to a regular file
            return _read_attribute(os.path.join(where, name), limit)
        return None
    try:
        try:
            # One read asks for more than any attribute of its kind holds: sysfs hands a
            # text attribute (one page) or `config` (its 4 KiB) over whole, and a regular
            # file gives what it has; a short read is the end of the file.
            data = os.read(fd, limit + 1)
        except PermissionError as exc:
            raise HostAccessError(
                f"cannot read {os.path.join(where, name)}: permission denied", fix="run as root"
            ) from exc
        except OSError:  # ENODEV, EIO as the device goes; EISDIR; EAGAIN from a FIFO
            _check_regular(fd, where, name)
            return None
        if 0 < len(data) <= limit:
            return data
        if not _check_regular(fd, where, name):
            return None
        if not data:
            return data
        chunks = [data]
        size = len(data)
        try:
            while size <= limit and (chunk := os.read(fd, limit + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
        except OSError:
            return None
        if size > limit:
            raise _not_an_attribute(os.path.join(where, name), f"is larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check_regular(fd: int, where: str, name: str) -> bool:
    """True for a regular file, False for a directory (an attribute the device lacks);
    anything else is refused."""
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        return False
    if not stat.S_ISREG(mode):
        raise _not_an_attribute(os.path.join(where, name), "is not a regular file")
    return True


def _text_at(dir_fd: int, name: str, where: str) -> str | None:
    data = read_attribute(dir_fd, name, where)
    return None if data is None else data.decode("utf-8", "replace").strip()


def _link_name_at(dir_fd: int, name: str) -> str | None:
    try:
        return os.readlink(name, dir_fd=dir_fd).rpartition("/")[2]
    except OSError:  # not a link, or gone: no such relation
        return None


def _optional_link_name_at(dir_fd: int, name: str) -> str | None:
    """`_link_name_at` for a link most devices lack (physfn, virtfnN): asking whether it
    is there costs half a failed readlink, which raises an exception besides."""
    if not os.access(name, os.F_OK, dir_fd=dir_fd, follow_symlinks=False):
        return None
    return _link_name_at(dir_fd, name)


class SysfsDir:
    """An open device directory (from `SysfsReader.directory`); close it after use."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    def bytes(self, name: str, limit: int = TEXT_LIMIT) -> bytes | None:
        return read_attribute(self.fd, name, self.path, limit)

    def text(self, name: str) -> str | None:
        return _text_at(self.fd, name, self.path)

    def link_name(self, name: str) -> str | None:
        return _link_name_at(self.fd, name)

    def optional_link_name(self, name: str) -> str | None:
        return _optional_link_name_at(self.fd, name)

    def close(self) -> None:
        os.close(self.fd)


def _uevent_ids(
    uevent: str | None,
) -> tuple[str, str, str | None, str | None, str | None, str | None] | None:
    """(vendor, device, subsystem vendor, subsystem device, class, driver) from a PCI
    device's uevent, one read instead of five attributes and the `driver` link. The
    kernel writes PCI_ID=%04X:%04X, PCI_SUBSYS_ID=%04X:%04X and PCI_CLASS=%X from the
    same fields as the vendor, device, subsystem_* and class attributes
    (drivers/pci/pci-driver.c, pci_uevent), and DRIVER=<name> exactly when the device is
    bound, before them (drivers/base/core.c, dev_uevent): the name the `driver` link's
    target has, a driver's directory being named after it (drivers/base/bus.c)."""
    if not uevent:
        return None
    fields = {}
    for line in uevent.splitlines():
        key, _, value = line.partition("=")
        fields[key] = value
    pci_id = fields.get("PCI_ID", "").split(":")
    if len(pci_id) != 2:
        return None
    sub = fields.get("PCI_SUBSYS_ID", "").split(":")
    sub_vendor, sub_device = (sub[0], sub[1]) if len(sub) == 2 else (None, None)
    klass = fields.get("PCI_CLASS")
    return (
        pci_id[0],
        pci_id[1],
        sub_vendor,
        sub_device,
        klass.zfill(6) if klass else None,
        fields.get("DRIVER") or None,
    )


def read_dsn(config: bytes | None) -> str | None:
    """The PCIe Device Serial Number from raw config space, or None."""
    if config is None or len(config) < _EXT_CAP_START + 4:
        return None
    offset = _EXT_CAP_START
    seen: set[int] = set()
    while offset and offset not in seen and offset + 12 <= len(config):
        seen.add(offset)
        header = int.from_bytes(config[offset : offset + 4], "little")
        if header in (0, 0xFFFFFFFF):
            return None
        if header & 0xFFFF == _EXT_CAP_DSN:
            low = int.from_bytes(config[offset + 4 : offset + 8], "little")
            high = int.from_bytes(config[offset + 8 : offset + 12], "little")
            return format_dsn((high << 32) | low)
        offset = (header >> 20) & 0xFFC
    return None


def port_path_of(real: str) -> str | None:
    """`/sys/devices/pci0000:40/0000:40:01.1/0000:41:00.0` -> `pci0000:40/01.1/00.0`."""
    parts = real.split("/")
    for i, part in enumerate(parts):
        if part.startswith("pci") and ":" in part:
            hops = [p.split(":")[-1] for p in parts[i + 1 :] if p.count(":") == 2]
            return "/".join([part, *hops])
    return None


def _driver_link(dir_fd: int, prefix: str) -> str | None:
    """The driver a function's uevent does not name: none, as the kernel shows an
    unbound function; but a tree made by hand or by an older make-host-tree may have
    uevent files without DRIVER= beside its driver links, and the link is what it says."""
    return _link_name_at(dir_fd, prefix + "driver")


def _read_pci(dir_fd: int, prefix: str, where: str) -> _RawPci | None:
    """The attributes and links of the function whose directory is `prefix` (a name
    ending in "/", or "" for `dir_fd` itself) below `dir_fd`, which is `where`; None
    when it has no vendor and device (gone, or no device). Per function: three
    attributes (uevent, config, numa_node; each open, read, close), the iommu_group
    link, and whether physfn and virtfn0 are there; the driver comes from uevent (the
    `driver` link is read only when uevent names none)."""
    ids = _uevent_ids(_text_at(dir_fd, prefix + "uevent", where))
    vendor: str | None
    device: str | None
    if ids is not None:
        vendor, device, sub_vendor, sub_device, klass, driver = ids
    else:  # a tree copied without uevent files: one file per field
        vendor, device = (
            _text_at(dir_fd, prefix + "vendor", where),
            _text_at(dir_fd, prefix + "device", where),
        )
        sub_vendor = _text_at(dir_fd, prefix + "subsystem_vendor", where)
        sub_device = _text_at(dir_fd, prefix + "subsystem_device", where)
        klass = _text_at(dir_fd, prefix + "class", where)
        driver = None
    if vendor is None or device is None:
        return None
    if driver is None:
        driver = _driver_link(dir_fd, prefix)
    serial = read_dsn(read_attribute(dir_fd, prefix + "config", where, CONFIG_LIMIT))
    group = _link_name_at(dir_fd, prefix + "iommu_group")
    numa = _text_at(dir_fd, prefix + "numa_node", where)
    physfn = _optional_link_name_at(dir_fd, prefix + "physfn")
    # The kernel links a PF's VFs as virtfn0..virtfn<sriov_numvfs-1>, without gaps
    # (drivers/pci/iov.c): reading them in turn costs a non-PF one failed access(),
    # where listing the directory cost every device four system calls.
    virtfns: list[str] = []
    while (vf := _optional_link_name_at(dir_fd, f"{prefix}virtfn{len(virtfns)}")) is not None:
        virtfns.append(vf)
    return (
        vendor, device, sub_vendor, sub_device, klass, driver, serial, group, numa, physfn,
        virtfns,
    )  # fmt: skip


def _pci_device(
    address: PciAddress,
    raw: _RawPci,
    where: Location,
    slot: str | None,
    port_path: str | None,
) -> PciDevice:
    vendor, device, sub_vendor, sub_device, klass, driver, serial, group, numa, physfn, vfs = raw
    # Records made with every field in order take the constructor's fast path:
    # a host has thousands of functions.
    identity = PciIdentity(
        parse_id16(vendor, "vendor", where),
        parse_id16(device, "device", where),
        parse_id16(sub_vendor, "subsystem_vendor", where) if sub_vendor else None,
        parse_id16(sub_device, "subsystem_device", where) if sub_device else None,
        parse_class(klass, where) if klass else None,
        serial,
    )
    return PciDevice(
        address,
        identity,
        int(group) if group is not None and decimal_digits(group) else None,
        int(numa) if numa is not None and decimal_digits(numa) else None,
        driver,
        slot,
        port_path,
        PciAddress.parse(physfn) if physfn else None,
        tuple(sorted(PciAddress.parse(vf) for vf in vfs)),
    )


def pci_row(dev: PciDevice) -> PciRow:
    """What `inventory`'s table shows of `dev`."""
    ident = dev.identity
    return (
        dev.iommu_group,
        str(dev.address),
        "----" if ident.class_code is None else f"{ident.class_code >> 8:04x}",
        ident.ids,
        ident.subsystem,
        "-" if dev.numa_node is None else str(dev.numa_node),
        dev.driver,
        ident.serial,
        dev.physical_slot,
        None if dev.physfn is None else str(dev.physfn),
        len(dev.virtfns),
        ident.vendor,
        ident.device,
    )


def _row(name: str, raw: _RawPci, slot: str | None) -> PciRow | None:
    """`pci_row` of the device `_pci_device` makes of `raw`, straight from the strings
    the kernel writes (uevent's IDs are four hex digits, its class six once padded);
    None for anything else, which `_pci_device` then reads or refuses as it always has.
    No record is made: `inventory` only prints them."""
    vendor, device, sub_vendor, sub_device, klass, driver, serial, group, numa, physfn, vfs = raw
    if not (hex_digits(vendor, 4, 4) and hex_digits(device, 4, 4)):
        return None
    if sub_vendor is None and sub_device is None:
        subsystem = None
    elif (
        sub_vendor is not None
        and sub_device is not None
        and hex_digits(sub_vendor, 4, 4)
        and hex_digits(sub_device, 4, 4)
    ):
        subsystem = f"{sub_vendor}:{sub_device}".lower()
    else:
        return None
    if klass is None:
        shown_class = "----"
    elif hex_digits(klass, 6, 6):
        shown_class = klass[:4].lower()
    else:
        return None
    pf = str(PciAddress.parse(physfn)) if physfn else None
    for vf in vfs:  # refused here as by _pci_device
        PciAddress.parse(vf)
    return (
        int(group) if group is not None and decimal_digits(group) else None,
        name,
        shown_class,
        f"{vendor}:{device}".lower(),
        subsystem,
        str(int(numa)) if numa is not None and decimal_digits(numa) else "-",
        driver,
        serial,
        slot,
        pf,
        len(vfs),
        int(vendor, 16),
        int(device, 16),
    )


def _kernel_name(name: str) -> bool:
    """`dddd:bb:ss.f` in lower-case hex with slot <= 1f, function <= 7: how the kernel
    names a function of a 16-bit PCI domain (pci_setup_device, "%04x:%02x:%02x.%d").
    Such names sort as their addresses do, and are their addresses' str()."""
    return (
        len(name) == 12
        and name[4] == ":"
        and name[7] == ":"
        and name[10] == "."
        and name[8] in "01"
        and name[11] in "01234567"
        and not (name[:4] + name[5:7] + name[9]).strip("0123456789abcdef")
    )


def _quick(dir_fd: int, name: str, limit: int) -> bytes | None:
    """An attribute's bytes as the kernel hands them over, in one read: b"" when the
    device has no such attribute; None for anything else (no permission, empty, an
    error, more than `limit`: not what sysfs gives), which `read_attribute` then
    reads, refuses or reports as it always does."""
    try:
        fd = os.open(name, _ATTRIBUTE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return b""
    except OSError:
        return None
    try:
        data = os.read(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if 0 < len(data) <= limit else None


def _quick_row(dir_fd: int, name: str, slot: str | None) -> PciRow | None:
    """`_row` of the function `name` (a `_kernel_name`) whose directory is `dir_fd`,
    from the same reads as `_read_pci` but the virtfnN links, when everything is as the
    kernel writes it; None otherwise, and the function is then read the careful way.
    The row counts no VFs: `pci_table` reads again, the careful way, the few functions
    its VFs name as their physfn. Only what the table shows is made: one uevent parse
    and one tuple."""
    uevent = _quick(dir_fd, "uevent", SYSFS_PAGE)
    if not uevent:
        return None
    ids = _uevent_ids(uevent.decode("utf-8", "replace").strip())
    if ids is None:
        return None
    vendor, device, sub_vendor, sub_device, klass, driver = ids
    if len(vendor) != 4 or len(device) != 4 or (vendor + device).strip(_HEX):
        return None
    if sub_vendor is None and sub_device is None:
        subsystem = None
    elif (
        sub_vendor is not None
        and sub_device is not None
        and len(sub_vendor) == 4
        and len(sub_device) == 4
        and not (sub_vendor + sub_device).strip(_HEX)
    ):
        subsystem = f"{sub_vendor}:{sub_device}".lower()
    else:
        return None
    if klass is None:
        shown_class = "----"
    elif len(klass) == 6 and not klass.strip(_HEX):
        shown_class = klass[:4].lower()
    else:
        return None
    config = _quick(dir_fd, "config", CONFIG_LIMIT)
    numa = _quick(dir_fd, "numa_node", SYSFS_PAGE)
    if config is None or numa is None:
        return None
    node = numa.strip()
    if node.isdigit() and len(node) <= MAX_DIGITS:  # bytes: ASCII digits only
        shown_numa = str(int(node))
    else:  # -1 (no node), or absent: as _read_pci reads it
        text = numa.decode("utf-8", "replace").strip()
        shown_numa = str(int(text)) if decimal_digits(text) else "-"
    group = _link_name_at(dir_fd, "iommu_group")
    physfn = _optional_link_name_at(dir_fd, "physfn")
    if driver is None:
        driver = _driver_link(dir_fd, "")
    return (
        int(group) if group is not None and decimal_digits(group) else None,
        name,
        shown_class,
        f"{vendor}:{device}".lower(),
        subsystem,
        shown_numa,
        driver,
        read_dsn(config),
        slot,
        str(PciAddress.parse(physfn)) if physfn else None,
        0,
        int(vendor, 16),
        int(device, 16),
    )


_HEX = "0123456789abcdefABCDEF"


def pci_table(inventory: SysfsInventory) -> tuple[list[PciRow], list[PciAddress]]:
    """`inventory`'s PCI table rows in address order (`pci_row` of each of
    `pci_devices()`), and the mdev parents (`SysfsPciFacts.mdev_parents`).

    For a host's thousands of functions this is what `inventory` costs. Per function,
    the reads `pci_devices` makes (its directory opened once; uevent, config and
    numa_node; the iommu_group link; whether physfn is there) but two: the bus link
    `pci_devices` reads for the port path, which the table does not show, and the
    virtfnN links. The kernel links a VF to its PF as physfn whenever it links the PF
    to the VF as virtfnN (drivers/pci/iov.c, pci_iov_sysfs_link), and a VF is a
    function of the bus: the PFs with VFs are the functions the VFs name, and only they
    are read again, the careful way, once every function has been read. (A tree that
    breaks this, a PF's virtfnN links without VFs on the bus that link back, shows the
    PF with no VFs here, where `pci_devices` counts the links.) (Naming each
    attribute through bus/pci/devices instead, "NAME/uevent", saves the directory's
    open and close but costs more: every such name follows the bus link again, which
    sysfs builds anew each time.)"""
    reader = inventory.reader
    base = reader.path("bus", "pci", "devices")
    names = reader.listdir(base)
    kernel_names = all(map(_kernel_name, names))
    if kernel_names:  # the listing's order is the addresses' order
        addresses = None
    else:
        addresses = sorted(PciAddress.parse(name) for name in names)
        names = [str(address) for address in addresses]
    fd = _open_directory(base)
    if fd is None:
        return [], []
    slots = inventory._slot_map()
    rows: list[PciRow] = []
    quick: dict[str, int] = {}  # name -> index in rows, of the rows read the quick way
    try:
        for i, name in enumerate(names):
            dfd = _open_directory(name, fd, base)
            if dfd is None:  # gone since it was listed
                continue
            try:
                row = None
                if kernel_names:
                    # The slot map's keys are "dddd:bb:ss", the name's first ten characters.
                    row = _quick_row(dfd, name, slots.get(name[:10]) if slots else None)
                    if row is not None:
                        quick[name] = len(rows)
                if row is None:
                    address = None if addresses is None else addresses[i]
                    row = _careful_row(inventory, dfd, base, name, address)
                    if row is None:
                        continue
            finally:
                os.close(dfd)
            rows.append(row)
        # The PFs among the rows read the quick way: the functions VFs name (row[9]).
        gone = []
        for pf in {row[9] for row in rows if row[9] is not None}:
            index = quick.get(pf)
            if index is None:
                continue
            dfd = _open_directory(pf, fd, base)
            row = None
            if dfd is not None:
                try:
                    row = _careful_row(inventory, dfd, base, pf, None)
                finally:
                    os.close(dfd)
            if row is None:  # gone since it was read: not listed, as pci_devices would not
                gone.append(index)
            else:
                rows[index] = row
        for index in sorted(gone, reverse=True):
            del rows[index]
    finally:
        os.close(fd)
    if not os.path.isdir(reader.path("class", "mdev_bus")):
        return rows, []  # the mdev core is not loaded: no parents (and no import)
    return rows, inventory.pci_facts().mdev_parents()


def _careful_row(
    inventory: SysfsInventory, dfd: int, base: str, name: str, address: PciAddress | None
) -> PciRow | None:
    """The table row of the function `name` (at `address`, else its name parsed), read
    and checked as `pci_devices` reads it."""
    where = os.path.join(base, name)
    raw = _read_pci(dfd, "", where)
    if raw is None:
        return None
    if address is None:
        address = PciAddress.parse(name)
    slot = inventory._slot_of(address)
    row = _row(name, raw, slot)
    if row is None:
        row = pci_row(_pci_device(address, raw, Location(where), slot, None))
    return row


class SysfsInventory:
    """`HostInventory` over a sysfs root."""

    def __init__(
        self, root: str | os.PathLike[str] = "/sys", *, reader: SysfsReader | None = None
    ) -> None:
        self.reader = reader or SysfsReader(root)
        self.reader.check_root()
        self._slots: dict[str, str] | None = None

    # -- PCI -------------------------------------------------------------

    def pci_facts(self) -> SysfsPciFacts:
        """SR-IOV counts, reset methods, mdev types of the devices below this root."""
        from .pcifacts import SysfsPciFacts

        return SysfsPciFacts(self.reader)

    def _pci_dir(self, address: PciAddress) -> str:
        return self.reader.path("bus", "pci", "devices", str(address))

    def pci_device(self, address: PciAddress) -> PciDevice | None:
        base = self._pci_dir(address)
        d = self.reader.directory(base)
        if d is None:
            return None
        try:
            return self._pci_from(address, d)
        finally:
            d.close()

    def _pci_from(
        self, address: PciAddress, d: SysfsDir, link: str | None = None
    ) -> PciDevice | None:
        """The device in directory `d`; `link` is the target of its bus/pci/devices
        entry when the caller has read it already."""
        raw = _read_pci(d.fd, "", d.path)
        if raw is None:
            return None
        return _pci_device(
            address,
            raw,
            Location(d.path),
            self._slot_of(address),
            port_path_of(self._real_dir(d.path, link)),
        )

    @staticmethod
    def _real_dir(base: str, target: str | None = None) -> str:
        # bus/pci/devices/X is a link to ../../../devices/pci0000:00/.../X on every
        # kernel: its target has the port path already, without resolving every hop.
        if target is None:
            try:
                target = os.readlink(base)
            except OSError:
                target = ""
        if target.startswith("../../../devices/pci"):
            return target
        try:
            return os.path.realpath(base)
        except OSError:
            return base

    def _slot_map(self) -> dict[str, str]:
        # /sys/bus/pci/slots/NAME/address holds "dddd:bb:ss" (no function): the slot's
        # functions all share it. There are few slots, however many functions.
        if self._slots is None:
            slots_dir = self.reader.path("bus", "pci", "slots")
            self._slots = {}
            for name in self.reader.listdir(slots_dir):
                addr = self.reader.text(os.path.join(slots_dir, name, "address"))
                if addr:
                    self._slots[addr.lower()] = name
        return self._slots

    def _slot_of(self, address: PciAddress) -> str | None:
        slots = self._slot_map()
        if not slots:
            return None
        key = f"{address.domain:04x}:{address.bus:02x}:{address.slot:02x}"
        return slots.get(key)

    def pci_addresses(self) -> list[PciAddress]:
        return sorted(
            PciAddress.parse(name)
            for name in self.reader.listdir(self.reader.path("bus", "pci", "devices"))
        )

    def pci_devices(self) -> Sequence[PciDevice]:
        """Every PCI function. The same reads as `pci_device` for each, but relative to
        one open bus/pci/devices directory: no walk from the root per device (a host has
        thousands of functions with SR-IOV)."""
        base = self.reader.path("bus", "pci", "devices")
        addresses = self.pci_addresses()
        devices = _open_directory(base)
        if devices is None:
            return []
        out = []
        try:
            for address in addresses:
                name = str(address)
                fd = _open_directory(name, devices, base)
                if fd is None:  # gone since it was listed
                    continue
                d = SysfsDir(os.path.join(base, name), fd)
                try:
                    try:
                        link = os.readlink(name, dir_fd=devices)
                    except OSError:
                        link = ""
                    dev = self._pci_from(address, d, link)
                finally:
                    d.close()
                if dev is not None:
                    out.append(dev)
        finally:
            os.close(devices)
        return out

    def iommu_group_members(self, group: int) -> Sequence[PciAddress]:
        path = self.reader.path("kernel", "iommu_groups", str(group), "devices")
        return sorted(PciAddress.parse(name) for name in self.reader.listdir(path))

    # -- USB -------------------------------------------------------------
    def usb_devices(self) -> Sequence[UsbDevice]:
        r = self.reader
        base = r.path("bus", "usb", "devices")
        out = []
        for name in r.listdir(base):
            if ":" in name:  # interfaces, e.g. 1-2:1.0
                continue
            d = os.path.join(base, name)
            vendor = r.text(os.path.join(d, "idVendor"))
            product = r.text(os.path.join(d, "idProduct"))
            busnum = r.text(os.path.join(d, "busnum"))
            devnum = r.text(os.path.join(d, "devnum"))
            if vendor is None or product is None or busnum is None or devnum is None:
                continue
            where = Location(str(d))
            out.append(
                UsbDevice(
                    bus=_usb_number(busnum, os.path.join(d, "busnum")),
                    device=_usb_number(devnum, os.path.join(d, "devnum")),
                    identity=UsbIdentity(
                        parse_id16(vendor, "idVendor", where),
                        parse_id16(product, "idProduct", where),
                        r.text(os.path.join(d, "serial")) or None,
                    ),
                    port_path=name,
                    manufacturer=r.text(os.path.join(d, "manufacturer")),
                    product_name=r.text(os.path.join(d, "product")),
                    driver=r.link_name(os.path.join(d, "driver")),
                )
            )
        return out


def _usb_number(text: str, path: str) -> int:
    """busnum/devnum: the kernel writes them in decimal (drivers/usb/core/sysfs.c)."""
    if not decimal_digits(text):
        raise InputError(
            f"{shown(text)} is not a USB bus or device number",
            where=Location(path),
            fix="the kernel writes a decimal number here; check the tree given as --sysfs",
        )
    return int(text)
