"""The official Telegram Bot API description (tests/specs/telegram-bot-api.json), as a checker.

The fake Bot API server uses it to hold every request the adapter makes to the spec:
the method exists, required fields are present, every field has one of its allowed
types (form fields arrive as strings; objects and arrays as JSON; files as multipart
parts), and every JSON object carries only the fields its type defines. The fake also
checks its own answers with it, so the objects the adapter receives are shaped as
Telegram shapes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SPEC_FILE = Path(__file__).parent / "specs" / "telegram-bot-api.json"
_ARRAY = "Array of "


@dataclass(frozen=True)
class FieldSpec:
    name: str
    types: tuple[str, ...]
    required: bool


@dataclass(frozen=True)
class MethodSpec:
    name: str
    fields: Mapping[str, FieldSpec]
    returns: tuple[str, ...]


class TelegramSpec:
    """Methods and types of one Bot API version."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.version = str(raw["version"])
        self.methods: dict[str, MethodSpec] = {}
        for name, method in raw["methods"].items():
            fields = {
                f["name"]: FieldSpec(f["name"], tuple(f["types"]), bool(f["required"]))
                for f in method.get("fields", [])
            }
            self.methods[name] = MethodSpec(name, fields, tuple(method.get("returns", [])))
        self.types: dict[str, dict[str, FieldSpec]] = {}
        self.subtypes: dict[str, tuple[str, ...]] = {}
        for name, typ in raw["types"].items():
            if typ.get("subtypes"):
                self.subtypes[name] = tuple(typ["subtypes"])
            self.types[name] = {
                f["name"]: FieldSpec(f["name"], tuple(f["types"]), bool(f["required"]))
                for f in typ.get("fields", [])
            }

    # --- requests ----------------------------------------------------------------
    def check_request(
        self, method: str, form: Mapping[str, str], file_parts: frozenset[str]
    ) -> tuple[dict[str, Any], list[str]]:
        """Decode a request's form fields by the spec; return (decoded fields, problems).

        `form` holds the plain fields (strings); `file_parts` the names of uploaded parts.
        """
        spec = self.methods.get(method)
        if spec is None:
            return {}, [f"unknown method {method!r}"]
        problems: list[str] = []
        decoded: dict[str, Any] = {}
        attached: set[str] = set()
        for name, raw in form.items():
            field = spec.fields.get(name)
            if field is None:
                problems.append(f"{method}: unknown field {name!r}")
                continue
            value, problem = self._decode_form_value(raw, field.types, f"{method}.{name}")
            if problem:
                problems.append(problem)
                continue
            decoded[name] = value
            _collect_attach(value, attached)
        for part in file_parts:
            field = spec.fields.get(part)
            if field is not None:
                if "InputFile" not in field.types:
                    problems.append(
                        f"{method}.{part}: a file was uploaded, the field is not a file"
                    )
                decoded[part] = InputFileRef(part)
            elif part not in attached:
                problems.append(f"{method}: uploaded part {part!r} is never referenced")
        for name in attached - file_parts:
            problems.append(f"{method}: attach://{name} refers to no uploaded part")
        for field in spec.fields.values():
            if (
                field.required
                and field.name not in decoded
                and not any(p.startswith(f"{method}.{field.name}:") for p in problems)
            ):
                problems.append(f"{method}: required field {field.name!r} is missing")
        return decoded, problems

    def _decode_form_value(
        self, raw: str, types: tuple[str, ...], where: str
    ) -> tuple[Any, str | None]:
        reasons: list[str] = []
        for typ in types:
            if typ == "String":
                return raw, None
            if typ == "InputFile":
                reasons.append("not an uploaded file")
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                reasons.append(f"not JSON for {typ}")
                continue
            problems = self.check_value(value, typ, where)
            if not problems:
                return value, None
            reasons.extend(problems)
        return None, f"{where}: {raw[:80]!r} is none of {list(types)} ({'; '.join(reasons[:3])})"

    # --- JSON values -------------------------------------------------------------
    def check_value(self, value: Any, typ: str, where: str) -> list[str]:
        """Problems of a decoded JSON value against one spec type (empty if it fits)."""
        if typ.startswith(_ARRAY):
            return self._check_array(value, typ, where)
        checker = _PRIMITIVES.get(typ)
        if checker is not None:
            return [] if checker(value) else [f"{where}: expected {typ}, got {value!r:.60}"]
        if typ == "InputFile":
            return [f"{where}: an InputFile cannot be inside JSON (use attach://)"]
        if typ in self.subtypes:
            return self._check_union(value, typ, where)
        return self._check_object(value, typ, where)

    def _check_array(self, value: Any, typ: str, where: str) -> list[str]:
        if not isinstance(value, list):
            return [f"{where}: expected {typ}, got {type(value).__name__}"]
        inner = typ[len(_ARRAY) :]
        out: list[str] = []
        for i, item in enumerate(value):
            out.extend(self.check_value(item, inner, f"{where}[{i}]"))
        return out

    def _check_union(self, value: Any, typ: str, where: str) -> list[str]:
        best: list[str] = [f"{where}: fits no subtype of {typ}"]
        for i, sub in enumerate(self.subtypes[typ]):
            problems = self.check_value(value, sub, where)
            if not problems:
                return []
            if i == 0 or len(problems) < len(best):
                best = problems
        return best

    def _check_object(self, value: Any, typ: str, where: str) -> list[str]:
        fields = self.types.get(typ)
        if fields is None:
            return [f"{where}: the spec has no type {typ!r}"]
        if not isinstance(value, dict):
            return [f"{where}: expected a {typ} object, got {type(value).__name__}"]
        out: list[str] = []
        for key, item in value.items():
            field = fields.get(key)
            if field is None:
                out.append(f"{where}: {typ} has no field {key!r}")
                continue
            alternatives = [self.check_value(item, t, f"{where}.{key}") for t in field.types]
            if all(alternatives):
                out.extend(_fewest(alternatives))
        out.extend(
            f"{where}: {typ} requires {f.name!r}"
            for f in fields.values()
            if f.required and f.name not in value
        )
        return out

    def check_result(self, method: str, result: Any) -> list[str]:
        spec = self.methods[method]
        alternatives = [self.check_value(result, t, f"{method}->") for t in spec.returns]
        return [] if not alternatives or not all(alternatives) else _fewest(alternatives)


@dataclass(frozen=True)
class InputFileRef:
    """A decoded field that was uploaded as a multipart part of this name."""

    part: str


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_float(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fewest(alternatives: list[list[str]]) -> list[str]:
    best = alternatives[0]
    for problems in alternatives[1:]:
        if len(problems) < len(best):
            best = problems
    return best


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_true(value: Any) -> bool:
    return value is True


_PRIMITIVES: dict[str, Callable[[Any], bool]] = {
    "Integer": _is_int,
    "Float": _is_float,
    "String": _is_str,
    "Boolean": _is_bool,
    "True": _is_true,
}


def _collect_attach(value: Any, out: set[str]) -> None:
    if isinstance(value, str) and value.startswith("attach://"):
        out.add(value[len("attach://") :])
    elif isinstance(value, list):
        for item in value:
            _collect_attach(item, out)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_attach(item, out)


@cache
def load_spec(path: Path = SPEC_FILE) -> TelegramSpec:
    return TelegramSpec(json.loads(path.read_text(encoding="utf-8")))
