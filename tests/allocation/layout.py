"""The PCI layout of a domain XML, in a form two documents can be compared by.

Devices are keyed so that libvirt's `dumpxml` (which reorders device types and
adds implicit devices) and our output line up: PCI controllers by index, other
controllers by type and index (USB2 companions also by model), every other
device by element name and position among its siblings of that name.
"""

from __future__ import annotations

from lxml import etree

Key = tuple[str, ...]
Value = tuple[str, ...]

_TARGET_ATTRS = ("chassisNr", "chassis", "port", "busNr", "hotplug")
_NOT_PCI_INPUT_BUSES = {"ps2", "usb", "xen", None}


def _int(text: str | None) -> str:
    return str(int(text, 0)) if text is not None else "-"


def _address(el: etree._Element) -> Value:
    addr = el.find("address")
    if addr is None or addr.get("type") != "pci":
        return ("none",)
    return (
        f"{_int(addr.get('domain', '0'))}:{_int(addr.get('bus'))}:{_int(addr.get('slot'))}.{_int(addr.get('function'))}",
        f"multi={addr.get('multifunction', '-')}",
    )


def pci_layout(xml: str | bytes) -> dict[Key, Value]:
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    devices = root.find("devices")
    assert devices is not None
    layout: dict[Key, Value] = {}
    counters: dict[str, int] = {}
    for el in devices:
        if not isinstance(el.tag, str):
            continue
        tag = el.tag
        if tag == "controller":
            ctype = el.get("type", "")
            model = el.get("model", "")
            key: Key = ("controller", ctype, el.get("index", "0"))
            if ctype == "usb" and model.startswith("ich9-"):
                key += (model,)
            value = _address(el)
            if ctype == "pci":
                target = el.find("target")
                name = el.find("model")
                extra = [f"model={model}", f"name={name.get('name') if name is not None else '-'}"]
                for attr in _TARGET_ATTRS:
                    raw = target.get(attr) if target is not None else None
                    extra.append(f"{attr}={_int(raw) if attr != 'hotplug' and raw else raw or '-'}")
                node = target.find("node") if target is not None else None
                extra.append(f"node={node.text if node is not None else '-'}")
                value += tuple(extra)
            layout[key] = value
            continue
        if tag in ("emulator", "graphics", "audio", "channel", "console", "serial") and _address(
            el
        ) == ("none",):
            continue
        if tag == "input" and el.get("bus") in _NOT_PCI_INPUT_BUSES:
            continue
        if tag == "disk":
            target = el.find("target")
            layout[("disk", target.get("dev", "?") if target is not None else "?")] = _address(el)
            continue
        n = counters.get(tag, 0)
        counters[tag] = n + 1
        layout[(tag, str(n))] = _address(el)
    return layout


def layout_diff(expected: dict[Key, Value], actual: dict[Key, Value]) -> list[str]:
    """Only the keys that differ, one line each (empty when identical)."""
    lines = []
    for key in sorted(set(expected) | set(actual)):
        want, got = expected.get(key), actual.get(key)
        if want != got:
            lines.append(f"{'/'.join(key)}: libvirt {want} != ours {got}")
    return lines
