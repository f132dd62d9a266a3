"""hostdev-resolver: name libvirt host devices by their stable identity."""

# Kept equal to pyproject.toml's (tests/test_version.py); a plain constant, since
# importlib.metadata costs the hook milliseconds and is wrong in an uninstalled checkout.
__version__ = "0.1.1"
