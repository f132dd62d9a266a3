"""Record classes, without the dataclasses module.

The hook runs on every guest start and must cost little more than the interpreter's
own start-up (issue 3: at most 2.5x `python3 -c pass`). `import dataclasses` alone
costs about twice that start-up on these machines, because it imports `inspect`
(and through it `ast`, `dis`, `tokenize`), `re` and `enum`. `frozen` and `mutable`
generate the same methods for the part of dataclasses this package uses:

- frozen (the default) or mutable instances, `__init__` with defaults and
  `field(default_factory=…)`, `__post_init__`;
- `__eq__`/`__hash__` over the fields (`field(compare=False)` leaves one out), or
  identity semantics with `eq=False`; ordering with `order=True`;
- inheritance (a base's fields come first), `fields`, `asdict`, `replace`.

Type checkers see it as a dataclass through PEP 681 (`dataclass_transform`).
"""

from __future__ import annotations

# Built into the interpreter: nothing to load. Records are hashed and compared by the
# thousand (PCI addresses as dict keys): a key is the fields' tuple in one C call.
from _operator import attrgetter

# Not `from typing import TYPE_CHECKING`: importing typing is itself a cost the hook
# avoids; mypy recognises any constant of this name.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform, overload

    T = TypeVar("T")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class Field:
    __slots__ = ("compare", "default", "default_factory", "hash", "name")

    def __init__(self, default: Any, default_factory: Any, compare: bool, hash: bool) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.compare = compare
        self.hash = hash

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    compare: bool = True,
    hash: bool | None = None,
) -> Any:
    """`compare=False`: left out of ==, ordering and hash; `hash=False`: out of the hash only
    (for a field that compares but cannot be hashed, such as a mapping)."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("field() takes default or default_factory, not both")
    return Field(default, default_factory, compare, compare if hash is None else hash)


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return isinstance(text, str) and (text.startswith("ClassVar") or ".ClassVar" in text)


def _collect(cls: type) -> tuple[Field, ...]:
    found: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in getattr(base, "__record_fields__", ()):
            found[f.name] = f
    # Not inspect.get_annotations: importing inspect is the cost this module avoids.
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, MISSING)
        if isinstance(value, Field):
            f = value
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        else:
            f = Field(value, MISSING, True, True)
        f.name = name
        found[name] = f
    seen_default = False
    for f in found.values():
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        if seen_default and not has_default:
            raise TypeError(
                f"{cls.__name__}: field {f.name!r} without a default follows one with a default"
            )
        seen_default = seen_default or has_default
    return tuple(found.values())


def _init(cls: type, fields: tuple[Field, ...]) -> Any:
    """A generic __init__ for the fields. Not generated with exec() as dataclasses does:
    compiling code for each class cost the hook ~0.3 ms per class at import (and the
    first compile() of a process ~2 ms), far more than the microsecond this adds to
    each of the objects it makes."""
    names = tuple(f.name for f in fields)
    known = frozenset(names)
    defaults = {f.name: f.default for f in fields if f.default is not MISSING}
    factories = tuple(
        (f.name, f.default_factory) for f in fields if f.default_factory is not MISSING
    )
    post_init = hasattr(cls, "__post_init__")
    qualname = cls.__qualname__
    count = len(names)

    # Fields go straight into the instance __dict__ (one C call, and past the frozen
    # __setattr__), as dataclasses' generated code does through object.__setattr__.
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if not kwargs and len(args) == count:
            self.__dict__.update(zip(names, args, strict=True))
        else:
            # The common case (keywords, some defaults) in a few C-level dict operations;
            # the checks that name a mistake run only when the counts say there is one.
            if args:
                if len(args) > count:
                    raise TypeError(
                        f"{qualname}() takes {count} arguments but {len(args)} were given"
                    )
                values = dict(zip(names, args, strict=False))
                if kwargs and not values.keys().isdisjoint(kwargs):
                    key = next(k for k in kwargs if k in values)
                    raise TypeError(f"{qualname}() got multiple values for argument {key!r}")
                values.update(kwargs)
            else:
                values = kwargs
            if not known.issuperset(values):
                key = next(k for k in kwargs if k not in known)
                raise TypeError(f"{qualname}() got an unexpected keyword argument {key!r}")
            if len(values) < count:
                values = {**defaults, **values}
                for name, factory in factories:
                    if name not in values:
                        values[name] = factory()
                if len(values) < count:
                    name = next(n for n in names if n not in values)
                    raise TypeError(f"{qualname}() missing required argument {name!r}")
            self.__dict__.update(values)
        if post_init:
            self.__post_init__()

    return __init__


def _key(fields: tuple[Field, ...], hashing: bool = False) -> Any:
    names = tuple(f.name for f in fields if (f.hash if hashing else f.compare))
    if len(names) >= 2:
        getter: Any = attrgetter(*names)
        return getter

    def key(self: Any) -> tuple[Any, ...]:
        return tuple([getattr(self, n) for n in names])

    return key


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")


def _make(cls: type, frozen: bool, eq: bool, order: bool) -> type:
    fields = _collect(cls)
    names = tuple(f.name for f in fields)
    methods: dict[str, Any] = {"__record_fields__": fields, "__init__": _init(cls, fields)}

    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{type(self).__qualname__}({inner})"

    methods["__repr__"] = __repr__
    if eq:
        key = _key(fields)
        # Usually the same fields: one getter serves both (each costs a class's import).
        same = all(f.hash == f.compare for f in fields)
        hash_key = key if same else _key(fields, hashing=True)

        def __eq__(self: Any, other: object) -> Any:
            if other.__class__ is self.__class__:
                return key(self) == key(other)
            return NotImplemented

        def __hash__(self: Any) -> int:
            return hash(hash_key(self))

        methods["__eq__"] = __eq__
        methods["__hash__"] = __hash__ if frozen else None
        if order:
            methods["__lt__"] = _ordering(key, lambda a, b: a < b)
            methods["__le__"] = _ordering(key, lambda a, b: a <= b)
            methods["__gt__"] = _ordering(key, lambda a, b: a > b)
            methods["__ge__"] = _ordering(key, lambda a, b: a >= b)
    if frozen:
        methods["__setattr__"] = _frozen_setattr
        methods["__delattr__"] = _frozen_delattr
    for name, value in methods.items():
        setattr(cls, name, value)
    return cls


def _ordering(key: Callable[[Any], tuple[Any, ...]], test: Callable[[Any, Any], bool]) -> Any:
    def compare(self: Any, other: object) -> Any:
        if other.__class__ is self.__class__:
            return test(key(self), key(other))
        return NotImplemented

    return compare


if TYPE_CHECKING:

    @overload
    @dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
    def frozen(cls: type[T], /) -> type[T]: ...

    @overload
    @dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
    def frozen(*, eq: bool = True, order: bool = False) -> Callable[[type[T]], type[T]]: ...

    @dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
    def frozen(cls: type[T] | None = None, /, *, eq: bool = True, order: bool = False) -> Any: ...

    @overload
    @dataclass_transform(field_specifiers=(field, Field))
    def mutable(cls: type[T], /) -> type[T]: ...

    @overload
    @dataclass_transform(field_specifiers=(field, Field))
    def mutable(*, eq: bool = True) -> Callable[[type[T]], type[T]]: ...

    @dataclass_transform(field_specifiers=(field, Field))
    def mutable(cls: type[T] | None = None, /, *, eq: bool = True) -> Any: ...

else:

    def frozen(cls=None, /, *, eq=True, order=False):
        """A frozen record: immutable, compared and hashed by its fields."""
        if cls is None:
            return lambda c: _make(c, True, eq, order)
        return _make(cls, True, eq, order)

    def mutable(cls=None, /, *, eq=True):
        """A mutable record (unhashable when compared by value)."""
        if cls is None:
            return lambda c: _make(c, False, eq, False)
        return _make(cls, False, eq, False)


def fields(obj: object) -> tuple[Field, ...]:
    """The fields of a record (instance or class), in order."""
    found = getattr(obj, "__record_fields__", None)
    if found is None:
        raise TypeError(f"{obj!r} is not a record")
    return tuple(found)


def is_record(obj: object) -> bool:
    return hasattr(obj, "__record_fields__")


def asdict(obj: object) -> dict[str, Any]:
    """A record as a dict, recursively (records, lists, tuples and dicts inside)."""
    if not is_record(obj) or isinstance(obj, type):
        raise TypeError(f"{obj!r} is not a record instance")
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}


def _plain(value: object) -> Any:
    if is_record(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of a record with some fields changed."""
    values = {f.name: getattr(obj, f.name) for f in fields(obj)}
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field(s) {', '.join(sorted(unknown))}")
    values.update(changes)
    return type(obj)(**values)
