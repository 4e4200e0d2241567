"""A small kustomize: renders the kustomizations in deploy/ without kubectl.

It implements the subset of kustomize those files use, with kustomize's meaning, and
refuses anything else (an unknown field is an error, never silently ignored):

- `resources`: YAML files and directories holding a kustomization.yaml;
- `namespace`: set on every resource;
- `images`: `name` -> `newName` / `newTag` on containers and init containers;
- `patches`: inline (`patch`) or from a file (`path`), with an optional `target`
  (`kind`, `name`). A patch that is a YAML list is a JSON 6902 patch (`add`, `replace`,
  `remove`); a patch that is one object must be a strategic-merge `$patch: delete`, which
  removes the resource it names.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "images", "patches"}
_PATCH_KEYS = {"patch", "path", "target"}
_TARGET_KEYS = {"kind", "name"}
_IMAGE_KEYS = {"name", "newName", "newTag"}


class KustomizeError(ValueError):
    """A kustomization uses something this renderer does not implement, or is wrong."""


def load_documents(path: Path) -> list[Resource]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def render(directory: Path) -> list[Resource]:
    """The resources `kubectl kustomize directory` would print, in order."""
    kustomization = _load_kustomization(directory)
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        resources += render(target) if target.is_dir() else load_documents(target)
    for patch in kustomization.get("patches", []):
        resources = _apply_patch(resources, _patch_body(directory, patch), patch.get("target"))
    for image in kustomization.get("images", []):
        _set_image(resources, image)
    if "namespace" in kustomization:
        for resource in resources:
            resource.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    return resources


def find(resources: list[Resource], kind: str, name: str) -> Resource:
    """The one resource of this kind and name."""
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    if len(found) != 1:
        raise KustomizeError(f"expected one {kind}/{name}, found {len(found)}")
    return found[0]


def _load_kustomization(directory: Path) -> dict[str, Any]:
    (kustomization,) = load_documents(directory / "kustomization.yaml")
    unknown = set(kustomization) - _KUSTOMIZATION_KEYS
    if unknown:
        raise KustomizeError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    for patch in kustomization.get("patches", []):
        if set(patch) - _PATCH_KEYS or set(patch.get("target", {})) - _TARGET_KEYS:
            raise KustomizeError(f"{directory}: unsupported patch fields in {patch}")
    for image in kustomization.get("images", []):
        if set(image) - _IMAGE_KEYS:
            raise KustomizeError(f"{directory}: unsupported image fields in {image}")
    return kustomization


def _patch_body(directory: Path, patch: dict[str, Any]) -> Any:
    if "path" in patch:
        return yaml.safe_load((directory / patch["path"]).read_text(encoding="utf-8"))
    return yaml.safe_load(patch["patch"])


def _matches(resource: Resource, target: dict[str, str] | None) -> bool:
    target = target or {}
    kind, name = resource["kind"], resource["metadata"]["name"]
    return bool(target.get("kind", kind) == kind and target.get("name", name) == name)


def _apply_patch(
    resources: list[Resource], body: Any, target: dict[str, str] | None
) -> list[Resource]:
    if isinstance(body, list):  # JSON 6902
        if not target:
            raise KustomizeError("a JSON 6902 patch needs a target")
        hits = [r for r in resources if _matches(r, target)]
        if not hits:
            raise KustomizeError(f"patch target {target} matches nothing")
        for resource in hits:
            for operation in body:
                _json_patch(resource, operation)
        return resources
    if isinstance(body, dict) and body.get("$patch") == "delete":
        named = {"kind": body["kind"], "name": body["metadata"]["name"]}
        kept = [r for r in resources if not _matches(r, named)]
        if len(kept) == len(resources):
            raise KustomizeError(f"delete patch {named} matches nothing")
        return kept
    raise KustomizeError(f"unsupported patch: {body!r}")


def _json_patch(resource: Resource, operation: dict[str, Any]) -> None:
    op, path = operation["op"], operation["path"]
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    node: Any = resource
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if op == "remove":
        del node[int(last) if isinstance(node, list) else last]
        return
    value = copy.deepcopy(operation["value"])
    if op == "add" and isinstance(node, list):
        node.insert(len(node) if last == "-" else int(last), value)
    elif op == "add" or (op == "replace" and isinstance(node, dict) and last in node):
        node[last] = value
    elif op == "replace" and isinstance(node, list):
        node[int(last)] = value
    else:
        raise KustomizeError(f"cannot {op} {path}")


def _set_image(resources: list[Resource], image: dict[str, str]) -> None:
    for resource in resources:
        spec = resource.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            name, tag = _split_image(container["image"])
            if name == image["name"]:
                new_name = image.get("newName", name)
                new_tag = image.get("newTag", tag)
                container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name


def _split_image(image: str) -> tuple[str, str | None]:
    head, sep, tail = image.rpartition(":")
    if sep and "/" not in tail:
        return head, tail
    return image, None


def main(argv: list[str]) -> int:
    """`python -m tests.kustomize DIR`: print the rendered resources as YAML."""
    if len(argv) != 1:
        print("usage: python -m tests.kustomize DIRECTORY", file=sys.stderr)
        return 2
    yaml.safe_dump_all(render(Path(argv[0])), sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
