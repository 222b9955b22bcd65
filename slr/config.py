"""Turn defaults, a config file and command-line flags into one validated settings model.

Precedence: field defaults < ``--config FILE`` (YAML or TOML) < flags given on the command line.
"""

from __future__ import annotations

import difflib
import reprlib
import stat
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from pydantic import BaseModel, ValidationError, create_model

from slr.errors import ConfigError

S = TypeVar("S", bound=BaseModel)

#: A settings file is a few hundred bytes; a megabyte is not one, and is not read.
MAX_CONFIG_BYTES = 1 << 20
#: Values (scalars, lists, mappings) a YAML file may expand to once its aliases are followed.
#: Real configs hold a few dozen; 9 nested aliases of 9 items each ("billion laughs") expand a
#: 300-byte file to 430 million, which hung or exhausted memory before this bound.
MAX_CONFIG_NODES = 10_000
#: Longest rendering of a value quoted in a message: it says what was given, not all of it.
_QUOTED_VALUE_CHARS = 80
#: Longest parser message kept (they quote a line of the file, which may be one huge line).
_PARSER_MESSAGE_CHARS = 400


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML or TOML mapping of settings; keys may use dashes or underscores.

    Refused, naming the file: anything but a regular file (a FIFO would block the read), a file
    over `MAX_CONFIG_BYTES`, YAML expanding to more than `MAX_CONFIG_NODES` values, and one
    setting given twice, also under its two spellings (`num-gloss` and `num_gloss`).
    """
    path = Path(path)
    if not path.is_file():
        what = _what_is(path)
        raise ConfigError("config file not found" if what == "not found" else f"is {what}, not a config file", path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{size:,} bytes is too large for a config file (at most {MAX_CONFIG_BYTES:,} bytes)", path
            )
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file ({exc})", path) from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = _load_yaml(text)
        else:
            raise ConfigError("unknown config format: use a .yaml, .yml or .toml file", path)
    except ConfigError:
        raise
    except _Refused as exc:
        raise ConfigError(str(exc), path) from None
    except Exception as exc:  # the parsers' own errors carry line and column
        reason = _cut(str(exc), _PARSER_MESSAGE_CHARS)
        raise ConfigError(f"not valid {suffix[1:].upper()}: {reason}", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of setting names to values at the top level", path)
    values = ConfigValues()
    values.typed_keys = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in values:  # `num-gloss` and `num_gloss` are one setting: which one wins is a guess
            first = values.typed_keys[name]
            raise ConfigError(f"setting '{first}' is given twice (as '{first}' and as '{key}')", path)
        values[name] = value
        values.typed_keys[name] = str(key)
    return values


def _what_is(path: Path) -> str:
    """What stands where a config file should: "not found", "a directory", "a FIFO (named pipe)", ...

    (The data layer's `describe_non_file` says the same of clips; config sits below that layer.)
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a broken symbolic link" if path.is_symlink() else "not found"
    except OSError as exc:
        return f"not accessible ({exc.strerror or exc})"
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "something other than a regular file")


class ConfigValues(dict):
    """Settings read from a file, keyed by field name; ``typed_keys`` keeps each key as written,
    for messages."""

    typed_keys: dict[str, str] = {}


def _load_yaml(text: str) -> Any:
    """yaml.safe_load, except that a key given twice is an error instead of the last one winning."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"setting '{key}' is given twice", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

        def construct_document(self, node):
            _check_expanded_size(node, MAX_CONFIG_NODES)  # before anything is built from it
            return super().construct_document(node)

    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


class _Refused(Exception):
    """A file refused for what it would do to the reader (not a syntax error): the message says why."""


def _check_expanded_size(root: Any, limit: int) -> None:
    """Refuse a YAML node graph that expands to more than `limit` values once aliases are followed.

    An alias is the same node object as its anchor, so each node's expanded size is counted once
    (memoised): linear in the file, however many times the aliases multiply. An alias inside its
    own anchor (`&a [*a]`) would expand forever and is refused too.
    """
    import yaml

    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Any) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _Refused("an alias (*name) refers to the value it is part of: it would expand forever")
        open_nodes.add(key)
        if isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            total = 1
        open_nodes.discard(key)
        if total > limit:
            raise _Refused(
                f"refused: the file expands to more than {limit:,} values once its aliases (*name) are followed; "
                "a settings file needs a few dozen"
            )
        sizes[key] = total
        return total

    size(root)


def _cut(text: str, limit: int) -> str:
    """One line of at most `limit` characters (parser messages span lines and may quote a huge one)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_VALUE_REPR = reprlib.Repr()
_VALUE_REPR.maxstring = _QUOTED_VALUE_CHARS
_VALUE_REPR.maxother = _QUOTED_VALUE_CHARS
_VALUE_REPR.maxlevel = 3


def quote_value(value: Any) -> str:
    """`repr(value)` shortened for a message: a long string or a deep list is not printed whole."""
    return _cut(_VALUE_REPR.repr(value), _QUOTED_VALUE_CHARS)


def field_key(model: type[BaseModel], name: str) -> str:
    """The key a field is given by in files and flags (its alias where it has one)."""
    info = model.model_fields[name]
    return info.alias or name


def check_known_keys(model: type[BaseModel], values: Mapping[str, Any], source: str | Path) -> None:
    known = {field_key(model, n) for n in model.model_fields} | set(model.model_fields)
    for key in values:
        if key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            suggestion = f" (did you mean '{hint[0].replace('_', '-')}'?)" if hint else ""
            typed = getattr(values, "typed_keys", {}).get(key, key)
            raise ConfigError(f"unknown setting '{typed}'{suggestion}", source)


def check_config_values(model: type[BaseModel], values: Mapping[str, Any], source: str | Path) -> None:
    """`ConfigError` naming `source` for an unknown key, or a value its field refuses on its own.

    For settings that are merged later with others (`slr resume`: the checkpoint's stored ones),
    where a bad value would otherwise be reported without the file it came from. Only each field's
    own rules are checked here; rules between fields need the merged settings.
    """
    check_known_keys(model, values, source)
    fields = {}
    for key in values:
        name = next((n for n in model.model_fields if field_key(model, n) == key), key)
        info = model.model_fields[name]
        fields[name] = (info.annotation, info)
    from slr.settings import Settings  # the shared field rules (no booleans for numbers, no inf/nan)

    alone = create_model(f"{model.__name__}FromFile", __base__=Settings, **fields)
    try:
        alone.model_validate(dict(values))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, model, source)) from None


def _flag_of(model: type[BaseModel], name: str) -> str:
    info = model.model_fields.get(name)
    if info is None:
        return f"--{name.replace('_', '-')}"
    if (info.json_schema_extra or {}).get("positional"):  # type: ignore[union-attr]
        return name.upper()
    return f"--{field_key(model, name).replace('_', '-')}"


def _takes_none(model: type[BaseModel], name: str) -> bool:
    info = model.model_fields.get(name)
    return info is not None and type(None) in typing.get_args(info.annotation)


def format_validation_error(
    error: ValidationError, model: type[BaseModel], source: str | Path | None = None
) -> str:
    lines = []
    for item in error.errors():
        flag = _flag_of(model, str(item["loc"][0])) if item["loc"] else ""
        if item["type"] == "missing":
            lines.append(f"{flag} is required")
            continue
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "literal_error" and item["loc"] and _takes_none(model, str(item["loc"][0])):
            msg += ", or none"  # pydantic lists the words only; "none" (no value) is taken as well
        given = item.get("input")
        shown = f" (got {quote_value(given)})" if item["loc"] and not isinstance(given, (dict, BaseModel)) else ""
        lines.append(f"{flag}: {msg}{shown}" if item["loc"] else msg)
    prefix = f"{source}: " if source else ""
    return prefix + "; ".join(lines)


def resolve_settings(
    model: type[S],
    flags: Mapping[str, Any],
    config_file: Path | None = None,
    base: Mapping[str, Any] | None = None,
    base_source: str | Path | None = None,
) -> S:
    """Build ``model`` from ``base`` (e.g. stored settings) < config file < flags.

    ``flags`` holds only what was given on the command line. An error names where the bad value
    came from: nothing for a flag, the config file, or ``base_source`` (e.g. a checkpoint).
    """
    values: dict[str, Any] = dict(base or {})
    from_file: dict[str, Any] = {}
    if config_file is not None:
        from_file = read_config_file(config_file)
        check_known_keys(model, from_file, config_file)
        values.update(from_file)
    given = dict(flags)
    values.update(given)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        if bad and bad <= set(given):
            source = None
        elif config_file is not None and bad and bad <= set(given) | set(from_file):
            source = config_file
        else:
            source = base_source if base_source is not None else config_file
        raise ConfigError(format_validation_error(exc, model, source)) from None
