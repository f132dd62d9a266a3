"""records: the dataclass subset the package uses, without importing dataclasses."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hostdev_resolver.model.records import (
    FrozenInstanceError,
    asdict,
    field,
    fields,
    frozen,
    mutable,
    replace,
)


@frozen(order=True)
class Point:
    x: int
    y: int = 0


@frozen
class Tagged:
    name: str
    tags: tuple[str, ...] = ()
    line: int | None = field(default=None, compare=False)
    props: dict[str, str] = field(default_factory=dict, hash=False)
    kind = "tagged"  # not annotated: a class attribute, not a field


@frozen
class Child(Tagged):
    extra: int = 5


@mutable(eq=False)
class Node:
    children: list[int] = field(default_factory=list)


@frozen
class Checked:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")


def test_equality_hash_order_and_repr() -> None:
    assert Point(1, 2) == Point(1, 2) and Point(1, 2) != Point(1, 3)
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert sorted([Point(2), Point(1, 5), Point(1, 1)]) == [Point(1, 1), Point(1, 5), Point(2)]
    assert repr(Point(1)) == "Point(x=1, y=0)"
    assert Point(1) != (1, 0)


def test_compare_false_and_hash_false_fields() -> None:
    a = Tagged("a", line=1, props={"k": "v"})
    b = Tagged("a", line=99, props={"k": "v"})
    assert a == b and hash(a) == hash(b)  # line is not compared; props compared, not hashed
    assert a != Tagged("a", props={"k": "other"})
    assert Tagged("a").props == {} and Tagged("a").props is not Tagged("a").props
    assert Tagged("a").kind == "tagged"
    assert [f.name for f in fields(Tagged)] == ["name", "tags", "line", "props"]


def test_frozen_and_inheritance() -> None:
    c = Child("c", extra=1)
    with pytest.raises(FrozenInstanceError):
        c.name = "d"  # type: ignore[misc]
    assert [f.name for f in fields(c)] == ["name", "tags", "line", "props", "extra"]
    assert replace(c, extra=2) == Child("c", extra=2)
    assert asdict(c) == {"name": "c", "tags": (), "line": None, "props": {}, "extra": 1}
    with pytest.raises(TypeError):
        replace(c, nope=1)
    assert Child("c") != Tagged("c")  # another class is never equal


def test_mutable_identity_records_and_post_init() -> None:
    a, b = Node(), Node()
    a.children.append(1)
    assert b.children == [] and a != Node([1]) and a == a
    with pytest.raises(ValueError):
        Checked(-1)


def test_a_field_without_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError):

        @frozen
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]


def test_importing_the_core_does_not_import_dataclasses_inspect_or_re() -> None:
    """The hook's start path (issue 3): these modules cost more than the interpreter's start."""
    code = (
        "import sys, hostdev_resolver.core.verification, hostdev_resolver.doors.hookops, "
        "hostdev_resolver.host.sysfs, hostdev_resolver.host.vfio; "
        "print(' '.join(m for m in ('dataclasses', 'inspect') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_constructor_mistakes_are_named() -> None:
    with pytest.raises(TypeError, match="missing required argument 'name'"):
        Tagged(line=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        Tagged("a", nope=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'name'"):
        Tagged("a", name="b")  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes 4 arguments but 5"):
        Tagged("a", (), 1, {}, 5)  # type: ignore[call-arg]
    t = Tagged("a", line=3)
    assert (t.name, t.tags, t.line, t.props) == ("a", (), 3, {})
