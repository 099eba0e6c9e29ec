"""The settings tree: sections per concern, read once from ``FONDPLAN_*`` variables and .env."""

from __future__ import annotations

import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from osmimport.paths import default_data_dir, is_checkout

#: What every variable name starts with.
ENV_PREFIX = "FONDPLAN_"
#: Read besides the environment (which wins), from the working directory.
ENV_FILE = ".env"


class Section(BaseModel):
    """One concern's part of the tree; field ``x`` is read from ``FONDPLAN_<env_prefix>X``."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    #: What follows ``FONDPLAN_`` in the names of this section's variables.
    env_prefix: ClassVar[str] = ""

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable of ``field``."""
        return f"{ENV_PREFIX}{cls.env_prefix}{field}".upper()


class DatabaseSettings(Section):
    """Where the data lives: an external PostGIS by URL, or the embedded cluster."""

    database_url: str | None = None
    """PostgreSQL URL of an external PostGIS; unset: the embedded cluster under the data folder."""
    data_dir: Path = Field(default_factory=default_data_dir)
    """Data folder (embedded cluster, caches, routing files); default: the checkout's `var/`,
    else `$XDG_DATA_HOME/fondplan`."""
    embedded_dbname: str = "fondplan"
    """Database name inside the embedded cluster."""

    def data_dir_origin(self) -> str:
        """How the data folder was chosen, for messages."""
        if "data_dir" in self.model_fields_set:
            return "FONDPLAN_DATA_DIR"
        if is_checkout(self.data_dir.parent):
            return "the checkout's var/ folder"
        return "the per-user data folder"


class CommuneSettings(Section):
    """Which administrative boundaries are communes (town plans), per country (ISO 3166-1).

    The first level of a country is its commune level; a further level counts where no commune
    of the first lies inside it (German kreisfreie Städte are level 6 with no level 8 inside).
    """

    env_prefix: ClassVar[str] = "COMMUNE_"

    levels: dict[str, list[int]] = {
        "FR": [8],
        "DE": [8, 6],
        "LU": [8],
        "CH": [8],
        "BE": [8],
        "LI": [8],
    }
    """Commune `admin_level`s per country (JSON)."""
    default_levels: list[int] = [8]
    """Commune levels of countries not listed, and of boundaries whose country is unknown."""

    def all_levels(self) -> frozenset[int]:
        """Every level a commune can have in some country."""
        return frozenset(self.default_levels).union(*self.levels.values())


def _is_complex(annotation: Any) -> bool:
    """Whether a variable for this type holds JSON (containers and models)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_complex(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    if origin is typing.Annotated:
        return _is_complex(typing.get_args(annotation)[0])
    kind = origin or annotation
    return isinstance(kind, type) and (
        issubclass(kind, (dict, list, tuple, set, frozenset, BaseModel))
    )


def _decode(name: str, field: FieldInfo, raw: str) -> Any:
    if any(isinstance(meta, NoDecode) or meta is NoDecode for meta in field.metadata):
        return raw
    if not _is_complex(field.annotation):
        return raw
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}: not valid JSON ({exc})") from None


def sections(tree: type[BaseSettings]) -> dict[str, type[Section]]:
    """The sections of a tree class, by field name, in declaration order."""
    found: dict[str, type[Section]] = {}
    for name, field in tree.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, Section):
            found[name] = kind
    return found


class _VariablesSource(PydanticBaseSettingsSource):
    """Each section's fields from ``FONDPLAN_<prefix><FIELD>`` (any case), env over .env."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: sections are read whole by ``__call__``."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """The nested values found, e.g. ``{"tiles": {"extent": "512"}}``."""
        tree: dict[str, Any] = {}
        for name, section in sections(self.settings_cls).items():
            found: dict[str, Any] = {}
            for field_name, field in section.model_fields.items():
                variable = section.variable(field_name)
                raw = self.values.get(variable.lower())
                if raw is not None:
                    found[field_name] = _decode(variable, field, raw)
            if found:
                tree[name] = found
        return tree


def read_variables(env_file: str | Path | None = ENV_FILE) -> dict[str, str]:
    """The ``FONDPLAN_*`` variables of .env and the environment (which wins), lower-cased."""
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k.lower(): v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update({k.lower(): v for k, v in os.environ.items()})
    return {k: v for k, v in values.items() if k.startswith(ENV_PREFIX.lower())}


class SettingsTree(BaseSettings):
    """A root of sections; built once by a command or the app factory, then passed down.

    Keyword arguments give whole sections (``Tree(database=DatabaseSettings(...))``); every
    section not given is read from the variables.
    """

    model_config = SettingsConfigDict(extra="forbid")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit sections first, then the variables; no other source."""
        return (init_settings, _VariablesSource(settings_cls, read_variables()))


class ImportSettings(SettingsTree):
    """What the import commands need (``fondplan db``, ``import``, ``info``)."""

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    communes: CommuneSettings = Field(default_factory=CommuneSettings)


def settings_error(tree: type[SettingsTree], exc: ValidationError | SettingsError) -> str:
    """Which variables are wrong and why, by their names, without pydantic's URLs."""
    if isinstance(exc, SettingsError):
        return str(exc)
    known = sections(tree)
    parts = []
    for error in exc.errors():
        loc = error["loc"]
        section = known.get(str(loc[0])) if loc else None
        if section is not None and len(loc) > 1:
            where = section.variable(str(loc[1]))
        else:
            where = ".".join(str(part) for part in loc)
        parts.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
    return "; ".join(parts)


#: The lines around the generated table in the README.
TABLE_START = "<!-- settings table: generated by `python -m tileserver.settings --readme` -->"
TABLE_END = "<!-- end of the settings table -->"


def replace_table(text: str, table: str) -> str:
    """``text`` (the README) with the table between the markers replaced by ``table``."""
    start = text.index(TABLE_START) + len(TABLE_START)
    end = text.index(TABLE_END)
    return f"{text[:start]}\n{table}{text[end:]}"


@dataclass(frozen=True)
class Variable:
    """One documented variable of a tree."""

    name: str
    section: str
    #: The default as written in a variable; ``None`` when computed (the meaning says how).
    default: str | None
    meaning: str


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (frozenset, set, tuple)):
        items = sorted(map(str, value)) if isinstance(value, (frozenset, set)) else map(str, value)
        # Folders are separated like $PATH, other lists by commas.
        return (":" if any(isinstance(v, Path) for v in value) else ",").join(items)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def variables(tree: type[SettingsTree]) -> list[Variable]:
    """Every variable of ``tree``: name, section, default and meaning, in declaration order."""
    out: list[Variable] = []
    for section_name, section in sections(tree).items():
        for field_name, field in section.model_fields.items():
            default = None if field.default_factory is not None else _shown(field.default)
            meaning = " ".join((field.description or "").split())
            out.append(Variable(section.variable(field_name), section_name, default, meaning))
    return out


def markdown_table(tree: type[SettingsTree]) -> str:
    """The README's settings table of ``tree`` (between ``TABLE_START`` and ``TABLE_END``)."""
    lines = ["| Variable | Section | Default | Meaning |", "| --- | --- | --- | --- |"]
    for var in variables(tree):
        if var.default is None:
            default = "see meaning"
        elif var.default == "unset":
            default = "unset"
        else:
            default = f"`{var.default}`" if var.default else "(empty)"
        meaning = var.meaning.replace("|", "\\|")
        lines.append(f"| `{var.name}` | {var.section} | {default} | {meaning} |")
    return "\n".join(lines) + "\n"
