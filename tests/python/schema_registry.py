"""Drives an Eddy broker's schema registry with Confluent's own Python client (confluent-kafka's
SchemaRegistryClient and its Avro serializer), unmodified, as a user's service would.

    schema_registry.py populate URL   registers Avro, JSON Schema and Protobuf subjects (with
                                      references), evolves them, checks refusals; prints the
                                      registry's contents as JSON
    schema_registry.py verify URL     reads the JSON printed by populate on stdin and checks that
                                      URL serves exactly that, then that new ids are fresh
"""

import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

ADDRESS = json.dumps({"type": "record", "name": "Address", "namespace": "shop",
                      "fields": [{"name": "city", "type": "string"}]})
ORDER_V1 = json.dumps({"type": "record", "name": "OrderCreated", "namespace": "shop", "fields": [
    {"name": "order_id", "type": "string"}, {"name": "ship_to", "type": "shop.Address"}]})
ORDER_V2 = json.dumps({"type": "record", "name": "OrderCreated", "namespace": "shop", "fields": [
    {"name": "order_id", "type": "string"}, {"name": "ship_to", "type": "shop.Address"},
    {"name": "note", "type": "string", "default": ""}]})
ORDER_BREAKING = json.dumps({"type": "record", "name": "OrderCreated", "namespace": "shop", "fields": [
    {"name": "order_id", "type": "long"}, {"name": "ship_to", "type": "shop.Address"}]})

MONEY = json.dumps({"type": "object", "properties": {"cents": {"type": "integer"}, "currency": {"type": "string"}},
                    "required": ["cents", "currency"], "additionalProperties": False})
PAYMENT_V1 = json.dumps({"type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"$ref": "money.json"}},
                         "required": ["order_id", "amount"], "additionalProperties": False})
PAYMENT_V2 = json.dumps({"type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"$ref": "money.json"},
                                                          "method": {"type": "string"}},
                         "required": ["order_id", "amount"], "additionalProperties": False})
PAYMENT_BREAKING = json.dumps({"type": "object", "properties": {"order_id": {"type": "string"}, "amount": {"$ref": "money.json"},
                                                                "method": {"type": "string"}},
                               "required": ["order_id", "amount", "method"], "additionalProperties": False})

COMMON = 'syntax = "proto3"; package shop; message Parcel { string tracking = 1; int32 grams = 2; }'
SHIPPED_V1 = 'syntax = "proto3"; package shop; import "common.proto"; message OrderShipped { string order_id = 1; Parcel parcel = 2; }'
SHIPPED_V2 = ('syntax = "proto3"; package shop; import "common.proto"; '
              'message OrderShipped { string order_id = 1; Parcel parcel = 2; string carrier = 3; }')
SHIPPED_BREAKING = 'syntax = "proto3"; package shop; import "common.proto"; message OrderShipped { double order_id = 1; Parcel parcel = 2; }'


def expect_refused(what, status, code, call):
    try:
        call()
    except SchemaRegistryError as e:
        assert (e.http_status_code, e.error_code) == (status, code), f"{what}: got {e.http_status_code}/{e.error_code}: {e}"
        return
    raise AssertionError(f"{what} was accepted")


def evolve(client, subject, v1, v2, breaking, schema_type, references=()):
    refs = list(references)
    first = client.register_schema(subject, Schema(v1, schema_type, refs))
    second = client.register_schema(subject, Schema(v2, schema_type, refs))
    assert second != first, f"{subject}: a changed schema got the same id"
    # Registering a version again returns its id, without a new version.
    assert client.register_schema(subject, Schema(v1, schema_type, refs)) == first
    assert client.get_versions(subject) == [1, 2], client.get_versions(subject)
    looked_up = client.lookup_schema(subject, Schema(v2, schema_type, refs))
    assert (looked_up.schema_id, looked_up.version) == (second, 2), looked_up
    assert client.test_compatibility(subject, Schema(v2, schema_type, refs)) is True
    assert client.test_compatibility(subject, Schema(breaking, schema_type, refs)) is False
    expect_refused(f"{subject}: incompatible schema", 409, 409,
                   lambda: client.register_schema(subject, Schema(breaking, schema_type, refs)))
    latest = client.get_latest_version(subject)
    assert (latest.schema_id, latest.version, latest.schema.schema_type) == (second, 2, schema_type), latest
    fetched = client.get_schema(second)
    assert fetched.schema_str == v2 and fetched.schema_type == schema_type, fetched
    assert [(r.name, r.subject, r.version) for r in fetched.references] == [(r.name, r.subject, r.version) for r in refs]


def populate(url):
    client = SchemaRegistryClient({"url": url})
    assert client.get_subjects() == [], "the registry of a new cluster is empty"

    client.register_schema("shop.Address", Schema(ADDRESS, "AVRO"))
    evolve(client, "orders-value", ORDER_V1, ORDER_V2, ORDER_BREAKING, "AVRO",
           [SchemaReference("shop.Address", "shop.Address", 1)])
    client.register_schema("money.json", Schema(MONEY, "JSON"))
    evolve(client, "payments-value", PAYMENT_V1, PAYMENT_V2, PAYMENT_BREAKING, "JSON",
           [SchemaReference("money.json", "money.json", 1)])
    client.register_schema("common.proto", Schema(COMMON, "PROTOBUF"))
    evolve(client, "shipments-value", SHIPPED_V1, SHIPPED_V2, SHIPPED_BREAKING, "PROTOBUF",
           [SchemaReference("common.proto", "common.proto", 1)])

    # Invalid schemas and unknown names get the API's codes.
    expect_refused("invalid Avro", 422, 42201, lambda: client.register_schema("bad-value", Schema('{"type": "recrod"}', "AVRO")))
    expect_refused("unknown subject", 404, 40401, lambda: client.get_versions("no-such-subject"))
    expect_refused("unknown id", 404, 40403, lambda: client.get_schema(999999))
    expect_refused("a referenced subject", 422, 42206, lambda: client.delete_subject("shop.Address"))

    # Compatibility levels, per subject and global.
    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility("payments-value", "FULL_TRANSITIVE")
    assert client.get_compatibility("payments-value") == "FULL_TRANSITIVE"
    expect_refused("no subject level", 404, 40408, lambda: client.get_compatibility("orders-value"))

    # Soft, then permanent deletion; the id of a soft-deleted version still answers.
    scratch = client.register_schema("scratch-value", Schema('{"type": "string"}', "AVRO"))
    assert client.delete_subject("scratch-value") == [1]
    assert "scratch-value" not in client.get_subjects()
    assert client.get_schema(scratch).schema_str == '{"type": "string"}'
    expect_refused("a second soft delete", 404, 40404, lambda: client.delete_subject("scratch-value"))
    assert client.delete_subject("scratch-value", permanent=True) == [1]

    # Confluent's own serializer registers the writer's schema and frames values with its id.
    serializer = AvroSerializer(client, ADDRESS)
    context = SerializationContext("addresses", MessageField.VALUE)
    framed = serializer({"city": "Oslo"}, context)
    address_id = client.lookup_schema("addresses-value", Schema(ADDRESS, "AVRO")).schema_id
    assert framed[0] == 0 and int.from_bytes(framed[1:5], "big") == address_id, framed
    assert AvroDeserializer(client)(framed, context) == {"city": "Oslo"}

    snapshot(client)


def snapshot(client):
    subjects = {}
    ids = {}
    for subject in client.get_subjects():
        subjects[subject] = client.get_versions(subject)
        for version in subjects[subject]:
            registered = client.get_version(subject, version)
            ids[str(registered.schema_id)] = {"schema": registered.schema.schema_str, "type": registered.schema.schema_type}
    print(json.dumps({"subjects": subjects, "ids": ids, "payments_level": client.get_compatibility("payments-value")}))


def verify(url):
    expected = json.load(sys.stdin)
    client = SchemaRegistryClient({"url": url})
    for subject, versions in expected["subjects"].items():
        assert client.get_versions(subject) == versions, (subject, client.get_versions(subject), versions)
    assert sorted(client.get_subjects()) == sorted(expected["subjects"]), client.get_subjects()
    for schema_id, schema in expected["ids"].items():
        fetched = client.get_schema(int(schema_id))
        assert (fetched.schema_str, fetched.schema_type) == (schema["schema"], schema["type"]), (schema_id, fetched)
    assert client.get_compatibility("payments-value") == expected["payments_level"]
    # Ids stay unique: a new schema gets an id never given before; a known one keeps its id.
    fresh = client.register_schema("after-failover-value", Schema('{"type": "record", "name": "Later", "fields": []}', "AVRO"))
    assert str(fresh) not in expected["ids"] and fresh > max(int(i) for i in expected["ids"]), fresh
    assert client.register_schema("shop.Address", Schema(ADDRESS, "AVRO")) == min(int(i) for i in expected["ids"])
    client.delete_subject("after-failover-value")
    client.delete_subject("after-failover-value", permanent=True)
    print("verified")


if __name__ == "__main__":
    {"populate": populate, "verify": verify}[sys.argv[1]](sys.argv[2])
