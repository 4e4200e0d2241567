"""Discord's OpenAPI description (tests/specs/discord-openapi.json) as a request checker.

The fake Discord server asks this module whether a request the bot sent exists in the API
(method + path template) and whether its JSON body fits the operation's request schema.
It is a small, pragmatic JSON-Schema subset, enough for Discord's spec:

- `$ref` (local), `type` (one name or a list, `null` included), `properties`, `required`,
  `additionalProperties` (a schema for maps), `items`, `enum`, `const`, `minLength`/
  `maxLength`, `minItems`/`maxItems`, `minimum`/`maximum`, `pattern`, `allOf`,
  `oneOf`/`anyOf` (treated alike: the value must fit at least one branch; the report
  quotes the closest branch).
- Stricter than the spec: an object field the schema does not name is a violation (the
  spec never says `additionalProperties: false`, but a field Discord does not know is a
  bug in the sender). Fields named by any `allOf` sibling count as known.
- More lenient than the spec in one place, where Discord is too: a snowflake may be sent
  as a JSON integer (discord.py sends attachment ids `0..n` as integers).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).parent / "specs" / "discord-openapi.json"

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}
_MAX_REPORTED = 8


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    spec: Mapping[str, Any]
    path_parameters: Mapping[str, Mapping[str, Any]]

    @property
    def operation_id(self) -> str:
        return str(self.spec.get("operationId", f"{self.method} {self.template}"))


class DiscordSpec:
    """Path matching and body validation against Discord's OpenAPI description."""

    def __init__(self, path: Path = SPEC_PATH) -> None:
        self._doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self._routes: list[tuple[re.Pattern[str], str, list[str]]] = []
        for template in self._doc["paths"]:
            names = re.findall(r"\{([^}]+)\}", template)
            regex = "^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template)) + "$"
            self._routes.append((re.compile(regex), template, names))
        # A literal segment (`@me`, `@original`) beats a parameter in the same place.
        self._routes.sort(key=lambda route: len(route[2]))

    def enum(self, schema: str) -> frozenset[str]:
        """The values of an enumeration schema (e.g. `AvailableLocalesEnum`)."""
        return frozenset(
            str(o["const"]) for o in self._doc["components"]["schemas"][schema]["oneOf"]
        )

    # ------------------------------------------------------------------ operations

    def operation(self, method: str, path: str) -> tuple[Operation | None, list[str]]:
        """The operation for `METHOD /path` (path below /api/v10), and parameter problems."""
        for regex, template, names in self._routes:
            match = regex.match(path)
            if match is None:
                continue
            item = self._doc["paths"][template]
            spec = item.get(method.lower())
            if spec is None:
                return None, [f"{method} {path}: method not in the spec for {template}"]
            parameters = {
                p["name"]: p
                for p in [*item.get("parameters", []), *spec.get("parameters", [])]
                if "name" in p
            }
            op = Operation(method.upper(), template, spec, parameters)
            problems: list[str] = []
            for name, raw in zip(names, match.groups(), strict=True):
                param = parameters.get(name)
                if param is not None:
                    problems += self.validate(raw, param.get("schema", {}), f"path {{{name}}}")
            return op, problems
        return None, [f"{method} {path}: no such path in the spec"]

    def check_query(self, op: Operation, query: Mapping[str, str]) -> list[str]:
        problems = []
        for name, value in query.items():
            param = op.path_parameters.get(name)
            if param is None or param.get("in") != "query":
                problems.append(f"{op.operation_id}: unknown query parameter {name!r}")
                continue
            schema = self.resolve(param.get("schema", {}))
            if schema.get("type") == "boolean" and value.lower() not in {"true", "false", "1", "0"}:
                problems.append(f"{op.operation_id}: query {name}={value!r} is not a boolean")
        return problems

    def request_schema(self, op: Operation, content_type: str) -> Mapping[str, Any] | None:
        body = op.spec.get("requestBody")
        if body is None:
            return None
        content = body.get("content", {})
        entry = content.get(content_type)
        return None if entry is None else entry.get("schema", {})

    def check_body(self, op: Operation, content_type: str, body: Any) -> list[str]:
        """Problems with a request body of `content_type` (JSON, or multipart's payload_json)."""
        request_body = op.spec.get("requestBody")
        if request_body is None:
            if body is None:
                return []
            return [f"{op.operation_id}: takes no body, got one"]
        if body is None:
            if request_body.get("required"):
                return [f"{op.operation_id}: request body is required"]
            return []
        schema = self.request_schema(op, content_type)
        if schema is None:
            return [f"{op.operation_id}: content type {content_type!r} not accepted"]
        return [f"{op.operation_id}: {p}" for p in self.validate(body, schema, "body")]

    # ------------------------------------------------------------------ schemas

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            schema = self._ref(schema["$ref"])
        return schema

    @functools.cache  # noqa: B019  # the spec lives as long as the test session
    def _ref(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported: {ref}")
        node: Any = self._doc
        for part in ref[2:].split("/"):
            node = node[part]
        return node  # type: ignore[no-any-return]

    def known_properties(self, schema: Mapping[str, Any]) -> set[str]:
        schema = self.resolve(schema)
        names = set(schema.get("properties", {}))
        for sub in schema.get("allOf", []):
            names |= self.known_properties(sub)
        return names

    def validate(
        self,
        value: Any,
        schema: Mapping[str, Any],
        where: str,
        also_known: frozenset[str] = frozenset(),
    ) -> list[str]:
        """Problems with `value` under `schema`; empty when it fits."""
        schema = self.resolve(schema)
        problems = self._combinators(value, schema, where, also_known)
        if "type" in schema and not self._type_ok(value, schema):
            expected = schema["type"]
            return [*problems, f"{where}: expected {expected}, got {type(value).__name__}"]
        if "const" in schema and value != schema["const"]:
            problems.append(f"{where}: expected {schema['const']!r}, got {value!r}")
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{where}: {value!r} not one of {schema['enum']}")
        if isinstance(value, str):
            problems += self._string(value, schema, where)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            problems += self._number(value, schema, where)
        elif isinstance(value, list):
            problems += self._array(value, schema, where)
        elif isinstance(value, dict):
            problems += self._object(value, schema, where, also_known)
        return problems[:_MAX_REPORTED]

    def _combinators(
        self, value: Any, schema: Mapping[str, Any], where: str, also_known: frozenset[str]
    ) -> list[str]:
        problems: list[str] = []
        if "allOf" in schema:
            siblings = frozenset(self.known_properties(schema)) | also_known
            for sub in schema["allOf"]:
                problems += self.validate(value, sub, where, siblings)
        for key in ("oneOf", "anyOf"):
            if key not in schema:
                continue
            best: tuple[bool, int, list[str]] | None = None
            for sub in schema[key]:
                found = self.validate(value, sub, where, also_known)
                if not found:
                    best = (False, 0, [])
                    break
                rank = (not self._discriminator_fits(value, sub), len(found), found)
                if best is None or rank[:2] < best[:2]:
                    best = rank
            problems += best[2] if best else []
        return problems

    @staticmethod
    def _number(value: float, schema: Mapping[str, Any], where: str) -> list[str]:
        problems = []
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: {value} > maximum {schema['maximum']}")
        return problems

    def _array(self, value: list[Any], schema: Mapping[str, Any], where: str) -> list[str]:
        problems = []
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{where}: {len(value)} items < minItems {schema['minItems']}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{where}: {len(value)} items > maxItems {schema['maxItems']}")
        if "items" in schema:
            for i, item in enumerate(value):
                problems += self.validate(item, schema["items"], f"{where}[{i}]")
        return problems

    def _discriminator_fits(self, value: Any, schema: Mapping[str, Any]) -> bool:
        """Whether an object's `type` field picks this union branch (for error reports)."""
        if not isinstance(value, dict) or "type" not in value:
            return False
        kind = self.resolve(schema).get("properties", {}).get("type", {})
        if "const" in kind:
            return bool(kind["const"] == value["type"])
        return value["type"] in kind.get("enum", [])

    def _type_ok(self, value: Any, schema: Mapping[str, Any]) -> bool:
        declared = schema["type"]
        names = [declared] if isinstance(declared, str) else list(declared)
        if schema.get("format") == "snowflake" and isinstance(value, int) and value >= 0:
            return not isinstance(value, bool)
        for name in names:
            kinds = _JSON_TYPES.get(name, ())
            if isinstance(value, bool) and name not in {"boolean"}:
                continue
            if isinstance(value, kinds):
                return True
        return False

    def _string(self, value: str, schema: Mapping[str, Any], where: str) -> list[str]:
        problems = []
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{where}: length {len(value)} < minLength {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where}: length {len(value)} > maxLength {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
        return problems

    def _object(
        self,
        value: dict[str, Any],
        schema: Mapping[str, Any],
        where: str,
        also_known: frozenset[str],
    ) -> list[str]:
        problems = []
        properties: Mapping[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}: missing required field {name!r}")
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            if name in properties:
                problems += self.validate(item, properties[name], f"{where}.{name}")
            elif isinstance(extra, Mapping):
                problems += self.validate(item, extra, f"{where}.{name}")
            elif properties and extra is not True and name not in also_known:
                problems.append(f"{where}: unknown field {name!r}")
        return problems
