"""Validates Kubernetes YAML files offline, the way the e2e test of `orchctl export` needs it.

usage: k8s_validate.py --crd CRD.yaml [--version 1.35.0 ...] FILE...

Every document of every FILE is checked:
- built-in kinds against the Kubernetes OpenAPI schemas of each --version, strict (unknown
  fields are errors), with the pinned `kubernetes-validate` package;
- custom resources against the `openAPIV3Schema` of the matching --crd (group, version, kind),
  with `jsonschema`, and strictly: a field the schema does not declare is an error (the API
  server would silently prune it, which would hide a mistake).
Prints one line per document and a summary; exit status 1 when anything fails.
"""

import argparse
import sys

import jsonschema
import kubernetes_validate
import yaml


def crd_schemas(paths):
    schemas = {}
    for path in paths:
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group = crd["spec"]["group"]
                kind = crd["spec"]["names"]["kind"]
                for v in crd["spec"]["versions"]:
                    schemas[(f"{group}/{v['name']}", kind)] = v["schema"]["openAPIV3Schema"]
    return schemas


def undeclared(value, schema, path="$"):
    """Fields in `value` that `schema` does not declare (where it declares properties)."""
    out = []
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return out
        for k, v in value.items():
            if props is not None and k in props:
                out += undeclared(v, props[k], f"{path}.{k}")
            elif isinstance(extra, dict):
                out += undeclared(v, extra, f"{path}.{k}")
            elif props is not None and k not in ("apiVersion", "kind", "metadata"):
                out.append(f"{path}.{k}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            out += undeclared(v, schema["items"], f"{path}[{i}]")
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--crd", action="append", default=[])
    p.add_argument("--version", action="append", default=[])
    p.add_argument("files", nargs="+")
    args = p.parse_args()
    versions = args.version or ["1.35.0"]
    crds = crd_schemas(args.crd)
    failed = checked = 0
    for path in args.files:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        if not docs:
            print(f"FAIL {path}: no documents")
            failed += 1
        for doc in docs:
            name = f"{path}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            key = (doc.get("apiVersion"), doc.get("kind"))
            checked += 1
            try:
                if key in crds:
                    jsonschema.Draft7Validator(crds[key]).validate(doc)
                    extra = undeclared(doc, crds[key])
                    if extra:
                        raise ValueError(f"fields the CRD does not declare: {', '.join(extra)}")
                    print(f"ok   {name} (CRD {key[0]})")
                else:
                    for v in versions:
                        kubernetes_validate.validate(doc, v, strict=True)
                    print(f"ok   {name} (Kubernetes {', '.join(versions)}, strict)")
            except Exception as e:  # every failure is reported, then counted
                failed += 1
                print(f"FAIL {name}: {getattr(e, 'message', e)}")
    print(f"{checked} documents, {failed} failed")
    sys.exit(1 if failed or not checked else 0)


if __name__ == "__main__":
    main()
