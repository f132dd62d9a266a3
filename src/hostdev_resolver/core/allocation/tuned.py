"""Policy `tuned`: libvirt's placement plus what libvirt does not do (SPEC §8).

- `spare_ports=N`: exactly N empty hotplug-capable root ports (q35) or free
  hotplug slots (pc), instead of libvirt's one-off single spare port;
- `numa_aware`: a host device whose host NUMA node is known goes behind a
  pcie-expander-bus (pxb-pcie; pci-expander-bus on pc) whose <target><node> is
  the guest NUMA cell bound to that host node (<numatune><memnode>), or the cell
  with the same number when there is no binding. libvirt never adds expander
  buses itself (domain_addr.c: "we can't automatically decide which numa node to
  associate it with") — we can, because the host node is passed in;
- `group_multifunction`: functions of one host multifunction device (GPU
  41:00.0 + its HDMI audio 41:00.1) share one guest slot as functions 0..n,
  multifunction='on', so the guest sees the same topology as the host;
- `hotplug=False`: the root ports carrying passthrough devices get
  <target hotplug='off'/> (a guest OS then cannot surprise-remove them).

Everything else, and every address given in the input, is placed exactly as by
the `libvirt` policy.
"""

from __future__ import annotations

from ...model.pciaddress import PciAddress
from ...model.records import replace
from .libvirt_policy import EngineOptions, assign
from .model import (
    Allocation,
    Device,
    DeviceKind,
    DomainDevices,
    MachineType,
    PciControllerOptions,
    Policy,
)


def _passthrough(dev: Device) -> bool:
    return dev.kind is DeviceKind.HOSTDEV and dev.type == "pci" and dev.host_address is not None


def _groups(devices: list[Device]) -> dict[int, list[Device]]:
    """leader ref -> its other functions, for unaddressed host multifunction devices."""
    by_slot: dict[tuple[int, int, int], list[Device]] = {}
    for dev in devices:
        if (
            _passthrough(dev)
            and dev.address is None
            and dev.host_address is not None
            and dev.ref is not None
        ):
            host = dev.host_address
            by_slot.setdefault((host.domain, host.bus, host.slot), []).append(dev)
    groups: dict[int, list[Device]] = {}
    for members in by_slot.values():
        if len(members) < 2 or len(members) > 8:
            continue
        members.sort(key=lambda d: d.host_address.function if d.host_address else 0)
        leader = members[0]
        assert leader.ref is not None
        groups[leader.ref] = members[1:]
    return groups


def _guest_cell(domain: DomainDevices, host_node: int) -> int | None:
    for cell, nodes in domain.cell_host_nodes:
        if host_node in nodes:
            return cell
    return host_node if host_node in domain.numa_cells else None


def allocate_tuned(domain: DomainDevices, policy: Policy) -> Allocation:
    devices = list(domain.devices)
    notes: list[str] = []
    groups = _groups(devices) if policy.group_multifunction else {}
    followers: list[tuple[int, int, int]] = []
    for leader_ref, members in groups.items():
        followers.extend(
            (m.ref, leader_ref, fn) for fn, m in enumerate(members, start=1) if m.ref is not None
        )

    if policy.numa_aware:
        devices, placed = _numa_place(domain, devices, policy, groups, notes)
        followers = [f for f in followers if f[1] not in placed]

    allocation = assign(
        replace(domain, devices=tuple(devices)),
        EngineOptions(spare_ports=policy.spare_ports, followers=tuple(followers)),
    )
    result = list(allocation.devices)
    if not policy.hotplug:
        result = _hotplug_off(result)
    return Allocation(allocation.machine, tuple(result), tuple(notes))


def _numa_place(
    domain: DomainDevices,
    devices: list[Device],
    policy: Policy,
    groups: dict[int, list[Device]],
    notes: list[str],
) -> tuple[list[Device], set[int]]:
    """Put NUMA-known host devices behind expander buses; returns the placed leader refs."""
    placed: set[int] = set()
    if not domain.numa_cells:
        notes.append(
            "the guest has no NUMA cells (<cpu><numa>): host devices are placed without NUMA affinity"
        )
        return devices, placed
    q35 = domain.machine is MachineType.Q35
    follower_refs = {m.ref for members in groups.values() for m in members}
    next_index = 1 + max((d.index or 0 for d in devices if d.is_pci_controller), default=0)
    expander_of_cell: dict[int, int] = {}
    used_on_expander: dict[int, int] = {}
    added: list[Device] = []
    out = list(devices)
    for pos, dev in enumerate(devices):
        if not _passthrough(dev) or dev.address is not None or dev.ref in follower_refs:
            continue
        assert dev.host_address is not None and dev.ref is not None
        info = policy.host_device(dev.host_address)
        if info is None or info.numa_node is None:
            continue
        cell = _guest_cell(domain, info.numa_node)
        if cell is None:
            notes.append(
                f"{dev.label}: host NUMA node {info.numa_node} is bound to no guest NUMA cell; placed without affinity"
            )
            continue
        expander = expander_of_cell.get(cell)
        if expander is None:
            expander = next_index
            next_index += 1
            expander_of_cell[cell] = expander
            added.append(
                Device(
                    DeviceKind.CONTROLLER,
                    model="pcie-expander-bus" if q35 else "pci-expander-bus",
                    type="pci",
                    index=expander,
                    pci=PciControllerOptions(node=cell),
                )
            )
        k = used_on_expander.get(expander, 0)
        used_on_expander[expander] = k + 1
        if q35:
            # pxb-pcie takes only root ports; pack them as functions like libvirt does
            port = next_index
            next_index += 1
            added.append(
                Device(
                    DeviceKind.CONTROLLER,
                    model="pcie-root-port",
                    type="pci",
                    index=port,
                    address=PciAddress(0, expander, k // 8, k % 8),
                    pci=PciControllerOptions(hotplug=None if policy.hotplug else False),
                )
            )
            slot = PciAddress(0, port, 0, 0)
        else:
            slot = PciAddress(0, expander, k, 0)
        members = groups.get(dev.ref, [])
        out[pos] = replace(dev, address=slot, multifunction=True if members else None)
        for fn, member in enumerate(members, start=1):
            mpos = next(i for i, d in enumerate(out) if d.ref == member.ref)
            out[mpos] = replace(member, address=PciAddress(0, slot.bus, slot.slot, fn))
        placed.add(dev.ref)
    return out + added, placed


def _hotplug_off(devices: list[Device]) -> list[Device]:
    """hotplug='off' on the root ports we added whose only devices are passthrough ones."""
    occupants: dict[int, list[Device]] = {}
    for dev in devices:
        if dev.address is not None:
            occupants.setdefault(dev.address.bus, []).append(dev)
    out = []
    for dev in devices:
        if (
            dev.ref is None
            and dev.is_pci_controller
            and dev.model == "pcie-root-port"
            and dev.index is not None
            and occupants.get(dev.index)
            and all(_passthrough(o) for o in occupants[dev.index])
        ):
            dev = replace(dev, pci=replace(dev.pci or PciControllerOptions(), hotplug=False))
        out.append(dev)
    return out
