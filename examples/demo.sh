#!/bin/sh
# hostdev-resolver in five steps, on a recorded two-GPU workstation (examples/workstation).
# Run by `make demo` (which creates .venv first); works from any directory, asks nothing,
# changes nothing outside a temporary directory. Exit 0 = every step behaved as it should.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WS="$ROOT/examples/workstation"
HR="$ROOT/.venv/bin/hostdev-resolver"
PY="$ROOT/.venv/bin/python"
NODE=ws1

if [ ! -x "$HR" ]; then
    echo "demo: $HR not found — run 'make demo' (it creates .venv)" >&2
    exit 2
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hostdev-resolver-demo.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
# Inputs are copied so the diff shows short names, and nothing in the checkout is written.
cp "$WS/ml-train.xml" "$WS/desktop.xml" "$WS/mappings.xml" "$TMP/"
cd "$TMP"

hr() { "$HR" "$@" --store mappings.xml --node "$NODE"; }

heading() { printf '\n=== %s\n\n' "$*"; }

fail() {
    echo "demo: FAILED: $*" >&2
    exit 1
}

heading "1. Inventory of node $NODE (recorded sysfs tree examples/workstation/sys)"
hr inventory --sysfs "$WS/sys"

heading "2. Resolve ml-train.xml: hr:map references become host addresses"
hr resolve ml-train.xml --sysfs "$WS/sys" -o ml-train.resolved.xml
# diff exits 1 when the files differ, which is the point here; 0 or 2 is a failure.
rc=0
diff -u ml-train.xml ml-train.resolved.xml || rc=$?
[ "$rc" -eq 1 ] || fail "diff -u exited $rc (expected 1: the resolved file differs)"

heading "2b. Allocate guest PCI addresses (tuned: GPU + audio on one slot, hotplug off, 2 spare ports)"
hr allocate ml-train.resolved.xml --policy tuned --spare-ports 2 --hotplug off -o ml-train.allocated.xml
rc=0
diff -u ml-train.resolved.xml ml-train.allocated.xml >allocate.diff || rc=$?
[ "$rc" -eq 1 ] || fail "diff -u exited $rc (expected 1: addresses were added)"
# The passthrough functions, as the guest will see them, and the root ports added.
grep -E "^\+ *<address type='pci'.*(bus='0x06')" allocate.diff || fail "GPU not on one guest slot"
grep -c "^+ *<controller type='pci' index='[0-9]*' model='pcie-root-port'>" allocate.diff |
    sed 's/^/root ports added: /'
grep -q "hotplug='off'" allocate.diff || fail "no hotplug='off' on the passthrough port"

heading "3. Validate the domains and the store offline"
hr validate ml-train.xml desktop.xml mappings.xml --sysfs "$WS/sys"

heading "4a. Verify the resolved domain at start time, on the same host: accepted"
hr verify ml-train.resolved.xml --sysfs "$WS/sys"

heading "4b. A second NVMe was fitted; firmware renumbered the buses: verify refuses"
"$PY" "$ROOT/examples/make-host-tree" --variant shifted "$WS/host.json" sys-shifted
rc=0
hr verify ml-train.resolved.xml --sysfs sys-shifted >verify-shifted.out || rc=$?
cat verify-shifted.out
[ "$rc" -eq 1 ] || fail "verify against the shifted host exited $rc (expected 1: refused)"
grep -q '^SHIFTED: .*gpu0: .* is now at ' verify-shifted.out ||
    fail "verify refused, but not because gpu0 shifted"
echo "(exit status 1: the hook would refuse to start ml-train, as it should)"

heading "5. The fix: resolve again for the changed host, and verify passes"
hr resolve ml-train.xml --sysfs sys-shifted -o ml-train.resolved.xml 2>resolve-shifted.err
sed 's/^/  /' resolve-shifted.err
grep -A2 '<source>' ml-train.resolved.xml | grep '<address domain' || fail "no PCI source address"
hr verify ml-train.resolved.xml --sysfs sys-shifted

heading "demo finished: all steps behaved as expected"
