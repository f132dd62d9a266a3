"""parse_file reads a file through its descriptor (issue 12: `validate` of a fleet reads
thousands): the same bytes, messages and limit as reading it through a file object,
from regular files and from pipes, whose reads return short before the end."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from hostdev_resolver.model.errors import InputError
from hostdev_resolver.xml.xmldoc import MAX_DOCUMENT_BYTES, parse_file

DOMAIN = b"<domain type='kvm'>\n  <name>g</name>\n  <description>%s</description>\n</domain>\n"


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    data = DOMAIN % (b"x" * 200_000)  # several of the reader's pieces
    path = tmp_path / "d.xml"
    path.write_bytes(data)
    doc = parse_file(str(path))
    assert doc.data == data
    assert doc.root.find("description") is not None


def test_a_pipe_is_read_to_its_end_not_to_its_first_short_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = DOMAIN % (b"y" * 100_000)

    def writer() -> None:
        with open(fifo, "wb", buffering=0) as out:
            for i in range(0, len(data), 1000):  # many short writes: many short reads
                out.write(data[i : i + 1000])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        doc = parse_file(str(fifo))
    finally:
        thread.join()
    assert doc.data == data


def test_a_file_over_the_limit_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    with path.open("wb") as out:
        out.truncate(MAX_DOCUMENT_BYTES * 3)
    with pytest.raises(InputError, match="larger than 10 MiB"):
        parse_file(str(path))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "file not found"),
        (lambda p: p.mkdir() or p, "is a directory, not an XML file"),
    ],
)
def test_unreadable_paths_are_one_line_errors(tmp_path: Path, make: object, message: str) -> None:
    path = tmp_path / "x.xml"
    assert callable(make)
    make(path)
    with pytest.raises(InputError) as caught:
        parse_file(str(path))
    assert caught.value.what == message
    assert str(caught.value.where) == str(path)
