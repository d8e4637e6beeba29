"""Validates an AsyncAPI 3.0 document (a file, JSON or YAML) with validators that are not Eddy's:

- pydantic-asyncapi and asyncapi3 (PyPI), models of the AsyncAPI 3.0 specification;
- the payload schemas it embeds: Avro with fastavro, JSON Schema with jsonschema (Protobuf ones
  are compiled by the official parser's Protobuf schema parser, below);
- with NODE_MODULES set (scripts/npm-env, when the npm registry is reachable): the AsyncAPI
  initiative's JSON Schema of 3.0.0 (@asyncapi/specs) with jsonschema, and the official parser
  (@asyncapi/parser with its Avro and Protobuf schema parsers) through node.

    asyncapi_validate.py DOCUMENT [EXPECTED_CHANNEL ...]
"""

import json
import os
import subprocess
import sys

import fastavro
import jsonschema
import yaml
from pydantic_asyncapi import AsyncAPI

path = sys.argv[1]
with open(path) as f:
    text = f.read()
document = yaml.safe_load(text) if path.endswith((".yaml", ".yml")) else json.loads(text)

assert document["asyncapi"] == "3.0.0", document["asyncapi"]
for channel in sys.argv[2:]:
    assert channel in document["channels"], f"channel {channel} missing: {list(document['channels'])}"

model = AsyncAPI.model_validate(document)
assert type(model.root).__module__.endswith("v3"), type(model.root)
print("pydantic-asyncapi: valid")

try:
    from asyncapi3 import AsyncAPI3
except ImportError:  # older layouts
    from asyncapi3.models.asyncapi import AsyncAPI3
AsyncAPI3.model_validate(document)
print("asyncapi3: valid")

checked = 0
for name, message in document.get("components", {}).get("messages", {}).items():
    payload = message.get("payload")
    if not payload:
        continue
    if "schemaFormat" not in payload:
        # An AsyncAPI schema (JSON Schema's superset): a topic without a registered schema.
        jsonschema.Draft7Validator.check_schema(payload)
        continue
    fmt = payload["schemaFormat"]
    if fmt.startswith("application/vnd.apache.avro"):
        fastavro.parse_schema(payload["schema"])
    elif fmt.startswith("application/schema+json"):
        jsonschema.validators.validator_for(payload["schema"]).check_schema(payload["schema"])
    elif fmt.startswith("application/vnd.google.protobuf"):
        assert isinstance(payload["schema"], str) and "message" in payload["schema"], payload
        continue
    else:
        raise AssertionError(f"{name}: unexpected schemaFormat {fmt}")
    checked += 1
print(f"payload schemas: {checked} valid")

modules = os.environ.get("NODE_MODULES")
if modules:
    spec = os.path.join(modules, "@asyncapi", "specs", "schemas", "3.0.0-without-$id.json")
    with open(spec) as f:
        official = json.load(f)
    jsonschema.validators.validator_for(official)(official).validate(document)
    print("@asyncapi/specs 3.0.0 JSON Schema: valid")
    here = os.path.dirname(os.path.abspath(__file__))
    result = subprocess.run(["node", os.path.join(here, "asyncapi_parse.mjs"), os.path.abspath(path)],
                            env={**os.environ, "NODE_PATH": modules}, capture_output=True, text=True)
    print(result.stdout, end="")
    assert result.returncode == 0, f"@asyncapi/parser refused the document:\n{result.stdout}{result.stderr}"
else:
    print("official checks skipped: NODE_MODULES not set (npm registry unreachable)")
