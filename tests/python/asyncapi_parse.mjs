// Parses an AsyncAPI document with the AsyncAPI initiative's parser (@asyncapi/parser) and its
// Avro and Protobuf schema parsers; exits non-zero on any error-level diagnostic.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const require = createRequire(path.join(process.env.NODE_PATH, "noop.js"));
const { Parser } = require("@asyncapi/parser");
const { AvroSchemaParser } = require("@asyncapi/avro-schema-parser");
const { ProtoBuffSchemaParser } = require("@asyncapi/protobuf-schema-parser");

const parser = new Parser();
parser.registerSchemaParser(AvroSchemaParser());
parser.registerSchemaParser(ProtoBuffSchemaParser());
const { document, diagnostics } = await parser.parse(readFileSync(process.argv[2], "utf8"));
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  console.log(`${["error", "warning", "info", "hint"][d.severity]}: ${d.message} at ${d.path.join("/")}`);
}
if (!document || errors.length > 0) {
  process.exit(1);
}
console.log(`@asyncapi/parser: valid (${document.channels().length} channels, ${document.messages().length} messages)`);
