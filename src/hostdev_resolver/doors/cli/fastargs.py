"""A command's plain command line, read without argparse (issue 12).

Importing argparse costs a command about 0.7 of a bare interpreter's start on these
machines (it imports re, enum, gettext and locale; re alone is half a start), and
making its parsers another 0.2: more than `resolve` or `allocate` do. Most command
lines are plain: the command's name, exact option names, values that do not start
with '-', positionals in one run. This module reads those from the same definitions
argparse reads: a command module's `register` is run against `Parser`, which records
each `add_argument`, group and default instead of building argparse's objects, and
`read_command_line` applies argparse's rules to the recorded arguments.

Whatever it does not read exactly as argparse does, it leaves to argparse (it returns
None and argparse reads the line): --help, a usage error of any kind (an unknown or
abbreviated option, a missing value, a value out of its choices, two options of a
mutually exclusive group), `--`, single-dash clusters, values starting with '-',
positionals split by options, an argparse feature `Parser` does not record. So the
errors, their wording and exit code stay argparse's, and a line it reads gives the
namespace argparse would give: tests/test_fastargs.py compares the two on every
command's arguments, over generated command lines.
"""

from __future__ import annotations

# Not typing.TYPE_CHECKING: see main.py.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

SUPPRESS = "==SUPPRESS=="  # argparse.SUPPRESS: no attribute, no default


class Unsupported(Exception):
    """Something argparse would do that this reader does not: argparse reads the line."""


class Namespace:
    """What parse_args returns (argparse.Namespace's behaviour: attributes, ==, `in`)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Namespace):
            return NotImplemented
        return vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]

    def __contains__(self, key: str) -> bool:
        return key in self.__dict__

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in sorted(self.__dict__.items()))
        return f"Namespace({inner})"


_ACTIONS = (None, "store", "store_true", "store_false", "append")
# Keywords that only shape --help, usage or completion.
_HELP_ONLY = frozenset({"help", "metavar"})
_PARSER_HELP_ONLY = frozenset(
    {"help", "description", "epilog", "formatter_class", "prog", "usage", "add_help"}
)


class Argument:
    """One recorded add_argument."""

    def __init__(self, flags: Sequence[str], kwargs: dict[str, Any]) -> None:
        unknown = set(kwargs) - _HELP_ONLY - {
            "action", "nargs", "const", "default", "type", "choices", "required", "dest",
        }  # fmt: skip
        action = kwargs.get("action")
        if unknown or action not in _ACTIONS or not flags:
            raise Unsupported(f"add_argument{tuple(flags)}")
        self.option_strings = [f for f in flags if f.startswith("-")]
        positional = not self.option_strings
        if positional and (len(flags) != 1 or "dest" in kwargs or "required" in kwargs):
            raise Unsupported(f"add_argument{tuple(flags)}")  # argparse refuses these
        self.action = action or "store"
        self.nargs = kwargs.get("nargs")
        self.const = kwargs.get("const")
        self.type = kwargs.get("type")
        self.choices = kwargs.get("choices")
        self.required = bool(kwargs.get("required", False))
        if self.action in ("store_true", "store_false"):
            if {"nargs", "const", "type", "choices"} & set(kwargs):
                raise Unsupported(f"add_argument{tuple(flags)}")
            default = kwargs.get("default", self.action == "store_false")
        else:
            default = kwargs.get("default")
        self.default = default
        allowed = (None, "?", "*", "+") if positional else (None, "?")
        if self.nargs not in allowed or (self.nargs == "?" and self.action != "store"):
            raise Unsupported(f"add_argument{tuple(flags)} nargs={self.nargs!r}")
        if "const" in kwargs and self.nargs != "?":  # argparse refuses it
            raise Unsupported(f"add_argument{tuple(flags)} const without nargs='?'")
        if positional and self.nargs == "?":
            raise Unsupported(f"add_argument{tuple(flags)} nargs='?'")
        if self.type is not None and not callable(self.type):
            raise Unsupported(f"add_argument{tuple(flags)} type={self.type!r}")
        if positional:
            self.dest = flags[0]
            self.required = self.nargs not in ("?", "*")
        elif "dest" in kwargs:
            self.dest = kwargs["dest"]
        else:  # argparse: the first long option, else the first short one
            long = next((f for f in flags if f.startswith("--")), flags[0])
            self.dest = long.lstrip("-").replace("-", "_")


class _Group:
    """An argument group, or a mutually exclusive one (`members`), of a Parser."""

    def __init__(self, parser: Parser, members: list[Argument] | None) -> None:
        self._parser = parser
        self._members = members

    def add_argument(self, *flags: str, **kwargs: Any) -> Argument:
        argument = self._parser.add_argument(*flags, **kwargs)
        if self._members is not None:
            self._members.append(argument)
        return argument

    def add_mutually_exclusive_group(self, required: bool = False) -> _Group:
        return self._parser.add_mutually_exclusive_group(required=required)

    def __getattr__(self, name: str) -> Any:
        raise Unsupported(f"group.{name}")


class Subparsers:
    """A recorded add_subparsers: the commands below a parser."""

    def __init__(self, dest: str, required: bool) -> None:
        self.dest = dest
        self.required = required
        self.parsers: dict[str, Parser] = {}

    def add_parser(self, name: str, **kwargs: Any) -> Parser:
        if "aliases" in kwargs:
            raise Unsupported("aliases")
        parser = Parser(**kwargs)
        self.parsers[name] = parser
        return parser

    def __getattr__(self, name: str) -> Any:
        raise Unsupported(f"subparsers.{name}")


class Parser:
    """Records what a command's `register` adds, with argparse's API."""

    def __init__(self, *, parents: Sequence[Parser] = (), **kwargs: Any) -> None:
        if set(kwargs) - _PARSER_HELP_ONLY:
            raise Unsupported(f"ArgumentParser({', '.join(sorted(kwargs))})")
        self._actions: list[Argument] = []
        self._exclusive: list[list[Argument]] = []
        self._defaults: dict[str, Any] = {}
        self._subparsers: Subparsers | None = None
        self._by_flag: dict[str, Argument] = {}
        for parent in parents:  # argparse copies a parent's arguments, groups and defaults
            if not isinstance(parent, Parser) or parent._subparsers is not None:
                raise Unsupported("parents")
            for argument in parent._actions:
                self._add(argument)
            self._exclusive.extend(parent._exclusive)
            self._defaults.update(parent._defaults)

    def _add(self, argument: Argument) -> Argument:
        for flag in argument.option_strings:
            if flag in self._by_flag or flag in ("-h", "--help"):
                raise Unsupported(f"{flag} twice")  # argparse refuses it when registering
            self._by_flag[flag] = argument
        self._actions.append(argument)
        return argument

    def add_argument(self, *flags: str, **kwargs: Any) -> Argument:
        argument = Argument(flags, kwargs)
        if "default" not in kwargs and argument.dest in self._defaults:
            argument.default = self._defaults[argument.dest]  # as argparse: set_defaults first
        return self._add(argument)

    def add_argument_group(self, *args: Any, **kwargs: Any) -> _Group:
        return _Group(self, None)

    def add_mutually_exclusive_group(self, required: bool = False) -> _Group:
        if required:
            raise Unsupported("a required exclusive group")
        members: list[Argument] = []
        self._exclusive.append(members)
        return _Group(self, members)

    def set_defaults(self, **kwargs: Any) -> None:
        self._defaults.update(kwargs)
        for argument in self._actions:
            if argument.dest in kwargs:
                argument.default = kwargs[argument.dest]

    def add_subparsers(
        self, *, dest: str = SUPPRESS, required: bool = False, **kwargs: Any
    ) -> Subparsers:
        if self._subparsers is not None or set(kwargs) - {"metavar", "parser_class", "help"}:
            raise Unsupported("add_subparsers")
        self._subparsers = Subparsers(dest, required)
        return self._subparsers

    def __getattr__(self, name: str) -> Any:
        raise Unsupported(f"parser.{name}")


def read_command_line(
    argv: Sequence[str],
    register: Callable[[Any, str, str, Any], None],
    common: Callable[[Any], None],
) -> Namespace | None:
    """argv (`COMMAND …`) as `hostdev-resolver`'s argparse parser reads it, when it is
    plain (see the module's doc); None leaves it to argparse. `register` adds the
    command's parser (doors.cli.main.COMMANDS); `common` adds the common options to a
    parser (main._common)."""
    try:
        return Namespace(**_read(record(argv[0], register, common), list(argv)))
    # TypeError and the like: a register() this recorder cannot follow (argparse can).
    except (Unsupported, TypeError, AttributeError, KeyError, ValueError):
        return None


def record(
    command: str, register: Callable[[Any, str, str, Any], None], common: Callable[[Any], None]
) -> Parser:
    """The top parser, as `register` adds `command` to it (raises Unsupported, or what a
    register() this recorder cannot follow raises)."""
    top = Parser()
    sub = top.add_subparsers(dest="command", required=True)
    shared = Parser(add_help=False)
    common(shared)
    register(sub, command, "", shared)
    return top


def _read(parser: Parser, tokens: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for argument in parser._actions:  # argparse: the first argument of a dest sets it
        if argument.dest not in values and argument.default is not SUPPRESS:
            values[argument.dest] = argument.default
    for dest, value in parser._defaults.items():
        values.setdefault(dest, value)
    subparsers = parser._subparsers
    if subparsers is None:
        values.update(_read_arguments(parser, tokens, values))
        return values
    # Only the command's name here: any option before it is argparse's to read.
    if parser._actions or not tokens or tokens[0] not in subparsers.parsers:
        raise Unsupported("before the command")
    if subparsers.dest is not SUPPRESS:
        values[subparsers.dest] = tokens[0]
    # argparse reads the rest into a namespace of its own, then copies it over.
    values.update(_read(subparsers.parsers[tokens[0]], tokens[1:]))
    return values


def _typed(argument: Argument, text: str) -> Any:
    """argparse's _get_value: the text through the argument's type."""
    if argument.type is None:
        return text
    try:
        return argument.type(text)
    except Exception as exc:  # argparse's error says which
        raise Unsupported("a value its type refuses") from exc


def _value(argument: Argument, text: str) -> Any:
    """argparse's _get_value and _check_value: the type, then the choices."""
    value = _typed(argument, text)
    if argument.choices is not None and value not in argument.choices:
        raise Unsupported("a value not among the choices")
    return value


def _read_arguments(parser: Parser, tokens: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """The values `tokens` give, over `defaults` (the namespace before them)."""
    given: dict[str, Any] = {}
    seen: list[Argument] = []
    run: list[str] = []  # the positionals: one run of them
    run_over = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("-") or token == "-":
            if run_over:
                raise Unsupported("positionals on both sides of an option")
            run.append(token)
            continue
        if run:
            run_over = True
        name, eq, attached = token.partition("=") if token.startswith("--") else (token, "", "")
        argument = parser._by_flag.get(name)
        if argument is None:  # help, an abbreviation, a negative number, '--', a typo
            raise Unsupported(name)
        seen.append(argument)
        if argument.action in ("store_true", "store_false"):
            if eq:
                raise Unsupported("a flag given a value")
            given[argument.dest] = argument.action == "store_true"
            continue
        if eq:
            text = attached
            if text == "--":  # argparse drops it from an option's values, whatever the form
                raise Unsupported("'--' as a value")
        elif argument.nargs == "?":
            if i < len(tokens) and (tokens[i] == "-" or not tokens[i].startswith("-")):
                raise Unsupported("an optional value or a positional")
            const = argument.const  # argparse checks a string const as a value
            given[argument.dest] = _value(argument, const) if isinstance(const, str) else const
            continue
        elif i < len(tokens) and not tokens[i].startswith("-"):
            text = tokens[i]
            i += 1
        else:
            raise Unsupported("a missing value, or one starting with '-'")
        value = _value(argument, text)
        if argument.action == "append":  # onto what the namespace holds (a copy)
            previous = (
                given[argument.dest] if argument.dest in given else defaults.get(argument.dest)
            )
            if previous is not None and type(previous) is not list:
                raise Unsupported("appending to what is not a list")  # argparse fails
            given[argument.dest] = [*(previous or ()), value]
        else:
            given[argument.dest] = value
    for members in parser._exclusive:
        if len({id(a) for a in seen if any(a is m for m in members)}) > 1:
            raise Unsupported("two options of an exclusive group")
    for argument in parser._actions:
        if argument.required and argument.option_strings and argument not in seen:
            raise Unsupported("a required option missing")
        default = argument.default
        if (
            argument.option_strings
            and argument not in seen
            and argument.type is not None
            and argument.dest not in given
            and defaults.get(argument.dest) is default
            and isinstance(default, str)
        ):  # argparse runs a string default still in place through the type (no choices)
            given[argument.dest] = _typed(argument, default)
    given.update(_positionals(parser, run))
    return given


def _positionals(parser: Parser, run: list[str]) -> dict[str, Any]:
    """The run of positionals, given out as argparse gives them: the fixed ones take
    one each, a last '*' or '+' takes the rest."""
    positionals = [a for a in parser._actions if not a.option_strings]
    fixed = [a for a in positionals if a.nargs is None]
    rest = positionals[len(fixed) :]
    if positionals[: len(fixed)] != fixed or len(rest) > 1:
        raise Unsupported("positionals argparse matches by pattern")
    if len(run) < len(fixed) or (not rest and len(run) > len(fixed)):
        raise Unsupported("too few or too many positionals")
    out = {a.dest: _value(a, text) for a, text in zip(fixed, run, strict=False)}
    if rest:
        last, more = rest[0], run[len(fixed) :]
        if last.nargs == "+" and not more:
            raise Unsupported("no value for a '+' positional")
        if more:
            out[last.dest] = [_value(last, text) for text in more]
        elif last.choices is not None:
            raise Unsupported("an empty '*' positional with choices")
        else:
            out[last.dest] = last.default if last.default is not None else []
    return out
