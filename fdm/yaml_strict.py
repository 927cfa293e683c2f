"""PyYAML's safe loader made strict, for every YAML file fdm reads (tables, overlays, pipeline settings):

- YAML 1.2 scalars: `true`/`false` are booleans but `yes`, `no`, `on`, `off` stay strings, `010` is ten and
  `12:30` and `2024-01-31` are strings, so a schema reports a wrong type instead of YAML 1.1 guessing one;
- no aliases (`*name`): with them, a few lines can expand into gigabytes (the "billion laughs" document);
- a key given twice in one mapping is an error (PyYAML would silently keep the last one);
- nesting deeper than `MAX_DEPTH` is refused before it exhausts the stack.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode

MAX_DEPTH = 32  # a tables document is 5 levels deep


# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
CORE_RESOLVERS = (
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", _BOOL, list("tTfF")),
    ("tag:yaml.org,2002:int", _INT, list("-+0123456789")),
    ("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789.")),
)


class StrictSafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 scalars, no aliases and no duplicate keys."""

    yaml_implicit_resolvers: dict[str | None, list[Any]] = {}
    _depth: int

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases (*{event.anchor}) are not accepted; write the value out in full",
                event.start_mark,
            )
        # PyYAML composes nested nodes by recursion: refuse a deep document before it exhausts the stack.
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                message = f"lists and mappings nest more than {MAX_DEPTH} levels deep"
                raise yaml.composer.ComposerError(None, None, message, self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first given on line {seen[key] + 1})",
                        key_node.start_mark,
                    )
            except TypeError:
                raise ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        value = str(self.construct_scalar(node))
        if value.startswith("0o"):
            return int(value[2:], 8)
        if value.startswith("0x"):
            return int(value[2:], 16)
        return int(value)  # YAML 1.2: a leading zero is still decimal


for _tag, _pattern, _first in CORE_RESOLVERS:
    StrictSafeLoader.add_implicit_resolver(_tag, _pattern, _first)
StrictSafeLoader.add_constructor("tag:yaml.org,2002:int", StrictSafeLoader.construct_yaml_int)
