"""The config schema (schemas/config.schema.yaml): where it lies, its defaults, and the error an invalid
config raises. The schema is the one place that holds a default; code reads them through `defaulted`."""

import functools
from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """An invalid study config; the message names the offending key."""


@functools.cache
def parsed_schema(path) -> dict:
    """The parsed schema, read once per process (the DAG asks for method defaults once per select job)."""
    return yaml.safe_load(Path(path).read_text())


def _schema_defaults(node: dict):
    """The defaults a schema node declares, nested objects included."""
    if node.get("type") != "object" or "properties" not in node:
        return node.get("default")
    out = dict(node.get("default", {}))
    for key, child in node["properties"].items():
        value = _schema_defaults(child)
        if value is not None:
            out[key] = value
    return out


def _merged(defaults, given):
    if not isinstance(defaults, dict) or not isinstance(given, dict):
        return given
    return {k: _merged(defaults.get(k), given[k]) if k in given else v for k, v in defaults.items()} | {
        k: v for k, v in given.items() if k not in defaults}


def defaulted(config: dict, section: str) -> dict:
    """A top-level config section with the schema's defaults filled in (the schema holds them)."""
    schema = parsed_schema(SCHEMA)
    return _merged(_schema_defaults(schema["properties"][section]), config.get(section, {}))
