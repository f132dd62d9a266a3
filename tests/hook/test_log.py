"""The hook's log: each decision once, naming program, domain and operation; syslog or file."""

from __future__ import annotations

import io
import os
import re
import socket
from pathlib import Path

from hostdev_resolver.doors.hookops import Log

from .fixtures import domain_xml, gpu_host, make_host, mapped
from .test_hook import Call


def _syslog_server(tmp_path: Path) -> tuple[socket.socket, Path]:
    path = tmp_path / "log.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    return server, path


def test_lines_go_to_syslog_as_glibc_writes_them(tmp_path: Path) -> None:
    server, path = _syslog_server(tmp_path)
    err = io.StringIO()
    log = Log("ml-train", "prepare begin", err, dev_log=str(path), log_file=str(tmp_path / "f"))
    log.info("gpu0: 0000:41:00.0 on node hv1 is as expected")
    log.problem("domain.xml:5: gpu0: moved — fix it", logged="start refused: shifted: gpu0: moved")
    info, problem = server.recv(4096).decode(), server.recv(4096).decode()
    pid = os.getpid()
    # facility daemon (3): info 3*8+6, err 3*8+3
    assert re.fullmatch(
        rf"<30>\w{{3}} [ \d]\d \d\d:\d\d:\d\d hostdev-resolver\[{pid}\]: "
        r"ml-train: prepare begin: gpu0: 0000:41:00.0 on node hv1 is as expected",
        info,
    ), info
    assert problem.endswith(
        f"hostdev-resolver[{pid}]: ml-train: prepare begin: start refused: shifted: gpu0: moved"
    )
    assert problem.startswith("<27>")
    # libvirt shows stderr: the problem, once, with one prefix; nothing else.
    assert err.getvalue() == "hostdev-resolver: domain.xml:5: gpu0: moved — fix it\n"
    assert not (tmp_path / "f").exists()
    server.close()


def test_without_syslog_lines_are_appended_to_the_log_file(tmp_path: Path) -> None:
    err = io.StringIO()
    log_file = tmp_path / "var" / "log" / "hostdev-resolver" / "hook.log"
    log = Log("g", "release end", err, dev_log=str(tmp_path / "none"), log_file=str(log_file))
    log.info("original drivers restored (3 writes)")
    log.warning("cannot read the vfio state file")
    lines = log_file.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        f"hostdev-resolver[{os.getpid()}]: g: release end: original drivers restored (3 writes)",
        f"hostdev-resolver[{os.getpid()}]: g: release end: cannot read the vfio state file",
    ]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} ", lines[0])
    assert oct(log_file.stat().st_mode & 0o777) == "0o640"
    assert err.getvalue() == ""


def test_a_symlinked_log_file_is_not_followed(tmp_path: Path) -> None:
    # The hook runs as root: a link planted at the log path must not redirect its writes.
    target = tmp_path / "victim"
    target.write_text("precious\n")
    link = tmp_path / "hook.log"
    link.symlink_to(target)
    err = io.StringIO()
    log = Log("g", "prepare begin", err, dev_log=str(tmp_path / "none"), log_file=str(link))
    log.info("gpu0: ok")
    assert target.read_text() == "precious\n"
    assert err.getvalue() == "hostdev-resolver: g: prepare begin: gpu0: ok\n"


def test_each_decision_is_logged_once_without_doubled_prefixes(tmp_path: Path) -> None:
    host = make_host(tmp_path, gpu_host(usb_driver=None))
    xml = host.resolve(domain_xml("log-a", mapped("gpu0") + "\n" + mapped("gpu0-audio")))
    moved = make_host(tmp_path / "now", gpu_host(gpu_at="0000:44:00.0"))
    call = Call(host)
    assert call("log-a", "prepare", "begin", xml) == 0, call.stderr.getvalue()
    assert call("log-a", "release", "end", xml) == 0
    host.config.write_text(host.config.read_text().replace(str(host.root), str(moved.root)))
    assert call("log-a", "prepare", "begin", xml) == 1
    lines = [line.split(": ", 1)[1] for line in host.log.read_text().splitlines()]
    assert lines[:2] == [
        "log-a: prepare begin: gpu0: 0000:41:00.0 on node hv1 is as expected",
        "log-a: prepare begin: gpu0-audio: 0000:41:00.1 on node hv1 is as expected",
    ]
    bound = [line for line in lines if "bound to vfio-pci" in line]
    assert bound and all(line.startswith("log-a: prepare begin: 0000:") for line in bound)
    rest = lines[2 + len(bound) :]
    assert len(rest) == 3 and rest[2].startswith(
        "log-a: prepare begin: start refused: shifted: gpu0-audio:"
    )
    assert rest[:2] == [
        "log-a: release end: original drivers restored (8 writes)",
        "log-a: prepare begin: start refused: shifted: gpu0: no device is at 0000:41:00.0 on "
        "node hv1; the device with serial 00-11-22-33-44-55-66-77 is now at 0000:44:00.0 — "
        "start it with 'hostdev-virsh start log-a', which follows the device, or define it "
        "again with 'hostdev-virsh define'; or re-map it with 'hostdev-resolver map add pci "
        "gpu0 --node hv1 --address 0000:44:00.0'",
    ]
    for line in lines:
        assert line.count("log-a") <= 2 and "hostdev-resolver:" not in line, line
    problems = call.stderr.getvalue().splitlines()
    assert len(problems) == 2  # one per refused device, for libvirt to show
    for problem in problems:
        assert problem.startswith("hostdev-resolver: domain log-a (hook stdin):")
        assert problem.count("hostdev-resolver:") == 1
