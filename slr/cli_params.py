"""Generate a Typer command's parameters from a settings model.

Every field becomes a flag (``lr`` -> ``--lr``, booleans ``--amp/--no-amp``), positional fields
become arguments, and the help text and default shown come from the field itself, so defaults
live in ``slr/settings.py`` only. Flag values reach pydantic as given (strings); pydantic parses
and range-checks them, so a bad flag and a bad config value read the same.
"""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

NONE_WORDS = {"none", "null"}


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0], True
    return annotation, False


def _metavar(annotation: Any) -> str:
    inner, optional = _unwrap_optional(annotation)
    if typing.get_origin(inner) is typing.Literal:  # an optional word also takes "none" (no value)
        return "[" + "|".join([*map(str, typing.get_args(inner)), *(["none"] if optional else [])]) + "]"
    choices = [a for a in typing.get_args(inner) if a is not type(None)]
    if choices and all(a is Path or typing.get_origin(a) is typing.Literal for a in choices):
        # A path or a word (--resume CKPT|auto)
        return "|".join("PATH" if a is Path else "|".join(map(str, typing.get_args(a))) for a in choices)
    return {int: "INT", float: "FLOAT", Path: "PATH", str: "TEXT"}.get(inner, "VALUE")


def _is_bool(annotation: Any) -> bool:
    return _unwrap_optional(annotation)[0] is bool


def _default_text(info: FieldInfo, note: str | None = None) -> str:
    if note is not None:
        return f" (default: {note})"
    if info.is_required() or "default:" in (info.description or ""):
        return ""
    default = info.get_default(call_default_factory=True)
    if isinstance(default, bool):
        return ""  # the --flag/--no-flag pair already says it; see the help line
    if default is None:
        return " (default: none)"
    return f" (default: {default})"


def flag_name(name: str, info: FieldInfo) -> str:
    return "--" + (info.alias or name).replace("_", "-")


def _without_default(description: str) -> str:
    """The description less its own "default: ..." clause (replaced by a command-wide note)."""
    return re.split(r"\s*\(default:|; default:|\. Default:", description)[0].rstrip(".") + "."


def _parameter(name: str, info: FieldInfo, panel: str | None, default_note: str | None = None) -> inspect.Parameter:
    description = info.description or ""
    if default_note is not None and description:
        description = _without_default(description)
    help_text = description + _default_text(info, default_note)
    positional = (info.json_schema_extra or {}).get("positional") if isinstance(info.json_schema_extra, dict) else False
    if info.is_required() and not positional and default_note is None:
        help_text += " (required)"  # pydantic checks it, so Typer must not: one error format for all
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if extra.get("positional"):
        default = typer.Argument(None, help=help_text, metavar=name.upper(), show_default=False)
        annotation: Any = Optional[str]
    elif _is_bool(info.annotation):
        flag = flag_name(name, info)
        if default_note is None and info.get_default() is True:
            help_text += " (default: on)"
        elif default_note is None and info.get_default() is False:
            help_text += " (default: off)"
        default = typer.Option(
            None, f"{flag}/--no-{flag[2:]}", help=help_text, show_default=False, rich_help_panel=panel
        )
        annotation = Optional[bool]
    else:
        default = typer.Option(
            None,
            *extra.get("flags", [flag_name(name, info)]),  # a field may name its flags (the first is shown)
            help=help_text,
            metavar=_metavar(info.annotation),
            show_default=False,
            rich_help_panel=panel,
        )
        annotation = Optional[str]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _flag_alias(name: str) -> inspect.Parameter:
    """`--model transformer` as well as `slr train transformer`: the training guide's spelling."""
    option = typer.Option(
        None, f"--{name.replace('_', '-')}", help=f"Same as {name.upper()} (the training guide's spelling).",
        metavar="TEXT", show_default=False,
    )
    return inspect.Parameter(f"{name}__flag", inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[str])


def _merge_alias(kwargs: dict[str, Any], name: str) -> None:
    flag = kwargs.pop(f"{name}__flag", None)
    if flag is None:
        return
    if kwargs.get(name) not in (None, flag):
        raise typer.BadParameter(f"{name.upper()} {kwargs[name]!r} and --{name} {flag!r} disagree")
    kwargs[name] = flag


def _panel_of(model: type[BaseModel], name: str) -> str | None:
    """Group flags in --help by the settings mixin that declares them."""
    for klass in model.__mro__[1:]:
        fields = getattr(klass, "__annotations__", {})
        if name in fields and klass.__name__.endswith("Settings"):
            label = klass.__name__.removesuffix("Settings")
            return {
                "ClassCount": "Data",
                "Data": "Data",
                "ClipKey": "Data",
                "IV3GRU": "InceptionV3-GRU model",
                "Transformer": "Transformer model",
                "Optim": "Training",
                "LateDropout": "Training",
                "Loader": "Performance",
                "Hardware": "Performance",
                "Augment": "Augmentation",
                "KeypointLayout": "Data",
                "Output": "Outputs",
                "FineTune": "Training",
            }.get(label, None)
    return None


def settings_command(
    model: type[BaseModel],
    *,
    fields: list[str] | None = None,
    extra: list[inspect.Parameter] | None = None,
    default_note: str | dict[str, str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate ``func(flags: dict, **extra)`` so Typer sees one parameter per settings field.

    ``flags`` receives only the fields given on the command line; "none"/"null" given to an
    optional field arrives as an explicit None. ``default_note`` replaces every shown default (e.g.
    "from the checkpoint" for `slr resume`, whose defaults are the stored settings); as a dict, per
    field name, with "*" for the rest.
    """
    names = fields if fields is not None else list(model.model_fields)
    positional = [n for n in names if (model.model_fields[n].json_schema_extra or {}).get("positional")]
    ordered = positional + [n for n in names if n not in positional]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        notes = default_note if isinstance(default_note, dict) else {"*": default_note}
        params = [_parameter(n, model.model_fields[n], _panel_of(model, n), notes.get(n, notes.get("*")))
                  for n in ordered]
        params += [_flag_alias(n) for n in positional]
        params += extra or []

        def command(**kwargs: Any) -> Any:
            extra_values = {p.name: kwargs.pop(p.name) for p in extra or []}
            for name in positional:
                _merge_alias(kwargs, name)
            flags: dict[str, Any] = {}
            for name, value in kwargs.items():
                if isinstance(value, str) and value.strip().lower() in NONE_WORDS:
                    if _unwrap_optional(model.model_fields[name].annotation)[1]:
                        flags[name] = None  # an explicit "none" clears a config file's value
                        continue
                if value is not None:
                    flags[name] = value
            return func(flags, **extra_values)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__name__ = func.__name__
        command.__doc__ = func.__doc__ or model.__doc__
        return command

    return decorate
