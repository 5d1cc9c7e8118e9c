"""Validate CycloneDX 1.5 JSON files against the schema in this directory.

usage: validate.py FILE...   (exit 1 and one line per problem if any fails)
Runs with Debian's python3-jsonschema (4.10); no network: every $ref
resolves to a file here.
"""
import json
import os
import sys

import jsonschema

here = os.path.dirname(os.path.abspath(__file__))
store = {}
for name in ["bom-1.5.schema.json", "spdx.schema.json", "jsf-0.82.schema.json"]:
    with open(os.path.join(here, name)) as f:
        schema = json.load(f)
    store[name] = schema
    if "$id" in schema:
        store[schema["$id"]] = schema
main = store["bom-1.5.schema.json"]
validator = jsonschema.Draft7Validator(
    main,
    resolver=jsonschema.RefResolver.from_schema(main, store=store),
    format_checker=jsonschema.FormatChecker(),
)
problems = 0
for path in sys.argv[1:]:
    with open(path) as f:
        doc = json.load(f)
    for e in validator.iter_errors(doc):
        problems += 1
        where = "/".join(str(p) for p in e.absolute_path)
        print("%s: %s: %s" % (path, where, e.message))
sys.exit(1 if problems else 0)
