"""hostdev-resolver: name libvirt host devices by their stable identity."""
