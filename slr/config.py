"""Turn defaults, a config file and command-line flags into one validated settings model.

Precedence: field defaults < ``--config FILE`` (YAML or TOML) < flags given on the command line.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Mapping, TypeVar

from pydantic import BaseModel, ValidationError

from slr.errors import ConfigError

S = TypeVar("S", bound=BaseModel)


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML or TOML mapping of settings; keys may use dashes or underscores."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError("is a directory, not a config file", path)
    if not path.is_file():
        raise ConfigError("config file not found", path)
    try:
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
    except Exception as exc:  # the parsers' own errors carry line and column
        raise ConfigError(f"not valid {suffix[1:].upper()}: {exc}", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of setting names to values at the top level", path)
    values = ConfigValues({str(k).replace("-", "_"): v for k, v in data.items()})
    values.typed_keys = {str(k).replace("-", "_"): str(k) for k in data}
    return values


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

    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


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


def _flag_of(model: type[BaseModel], name: str) -> str:
    info = model.model_fields.get(name)
    if info is None:
        return f"--{name.replace('_', '-')}"
    if (info.json_schema_extra or {}).get("positional"):  # type: ignore[union-attr]
        return name.upper()
    return f"--{field_key(model, name).replace('_', '-')}"


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
        given = item.get("input")
        shown = f" (got {given!r})" if item["loc"] and not isinstance(given, (dict, BaseModel)) else ""
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
