"""The configuration reference page, rendered from schemas/config.schema.yaml.

The schema is the one place holding every key, default and description; the documentation site renders
this page from it at build time (docs/_hooks/config_reference.py), so the reference cannot drift.
`python -m lpselect.schema_doc` prints the page.
"""

import json
import sys

import yaml

from .schema import SCHEMA

# how a key path names a free-form name (a dataset, a model, ...) and a list item
NAME = "<name>"
ITEM = "[]"


def _resolve(node: dict, root: dict) -> dict:
    """Follow a local `$ref` ("#/$defs/x"), keeping the referring node's own description and default."""
    while isinstance(node, dict) and "$ref" in node:
        target = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _branches(node: dict):
    """Sub-schemas whose keys belong to the same object: conditionals and alternatives."""
    for key in ("allOf", "anyOf", "oneOf"):
        yield from node.get(key, [])
    for key in ("then", "else"):
        if key in node:
            yield node[key]


def _type(node: dict, root: dict) -> str:
    if "enum" in node:
        return " | ".join(f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if "array" in types and "items" in node:
            inner = _type(_resolve(node["items"], root), root)
            types = [f"list of {inner}" if t == "array" else t for t in types]
        return " | ".join(types)
    alternatives = [_type(_resolve(b, root), root) for b in node.get("oneOf", []) + node.get("anyOf", [])]
    return " | ".join(a for a in alternatives if a)


def _limits(node: dict) -> str:
    words = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    return ", ".join(f"{sign} {node[k]}" for k, sign in words.items() if k in node)


def rows(schema: dict | None = None) -> list[dict]:
    """One row per key path, depth first in schema order: path, type, default, required, description."""
    root = schema if schema is not None else yaml.safe_load(SCHEMA.read_text())
    out: list[dict] = []

    def walk(node: dict, path: str, required: bool) -> None:
        node = _resolve(node, root)
        if path:
            out.append({"path": path, "type": _type(node, root), "limits": _limits(node),
                        "default": node.get("default"), "required": required,
                        "description": " ".join(str(node.get("description", "")).split())})
        children(node, path)

    def children(node: dict, path: str) -> None:
        need = set(node.get("required", []))
        for key, child in node.get("properties", {}).items():
            if not any(r["path"] == _join(path, key) for r in out):
                walk(child, _join(path, key), key in need)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and _is_object(_resolve(extra, root)):
            walk(extra, _join(path, NAME), False)
        if isinstance(node.get("items"), dict):
            item = _resolve(node["items"], root)
            if item.get("properties"):
                walk(item, path + ITEM, False)
        for branch in _branches(node):
            children(_resolve(branch, root), path)

    children(root, "")
    return out


def _is_object(node: dict) -> bool:
    return node.get("type") == "object" or "properties" in node


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(schema: dict | None = None) -> str:
    """The reference page as Markdown: one table per top-level key."""
    root = schema if schema is not None else yaml.safe_load(SCHEMA.read_text())
    lines = [
        "# Configuration reference",
        "",
        "Generated from `schemas/config.schema.yaml` when the site is built (the schema is the one place",
        "that holds every key and default; the workflow validates each study config against it before any",
        f"job starts). `{NAME}` stands for a name you choose (a dataset, a model), `{ITEM}` for an item of a",
        "list. *required* keys must be present (at their level) in a training study; a study with a `dumps`",
        "block needs only `seed`, `figures`, `resources` and `dumps`.",
        "",
    ]
    if root.get("description"):
        lines[2:2] = [_cell(root["description"]), ""]
    table = rows(root)
    for top in root["properties"]:
        lines += [f"## `{top}`", "", "| key | type | default | description |", "| --- | --- | --- | --- |"]
        for row in table:
            if row["path"] == top or row["path"].startswith((top + ".", top + ITEM)):
                kind = row["type"] + (f" ({row['limits']})" if row["limits"] else "")
                default = "" if row["default"] is None else f"`{json.dumps(row['default'])}`"
                note = ("*required.* " if row["required"] else "") + row["description"]
                lines.append(f"| `{row['path']}` | {_cell(kind)} | {_cell(default)} | {_cell(note)} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
