"""Drives Eddy's REST API over plain HTTP with Python's standard library (no Eddy code), checks
its OpenAPI document with openapi-spec-validator, and its gRPC reflection with grpcio's
reflection client (which speaks only v1alpha).

    rest_api.py records URL_A URL_B    topics, produce, read, long poll, idempotency keys, the
                                       event stream and its resumption, error answers; URL_A and
                                       URL_B are two brokers' HTTP listeners
    rest_api.py openapi URL            validates URL/openapi.json
    rest_api.py status URL METHOD PATH BODY STATUS REASON
                                       one request whose answer must be a problem with STATUS and
                                       REASON (BODY is JSON, or - for none)
    rest_api.py group URL GROUP        prints the group's description (JSON)
    rest_api.py reflection GRPC        lists services over grpc.reflection.v1alpha
    rest_api.py cors URL ORIGIN        cross-origin requests from ORIGIN are allowed, from
                                       another origin not
"""

import faulthandler
import http.client
import json
import sys
import threading
import time
import urllib.parse

PROBLEM = "application/problem+json"


def request(base, method, path, body=None, headers=None):
    """One HTTP request; returns (status, content type, parsed JSON or text)."""
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    data = None
    all_headers = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    connection.request(method, path, body=data, headers=all_headers)
    response = connection.getresponse()
    raw = response.read()
    content_type = response.getheader("Content-Type", "")
    connection.close()
    if "json" in content_type and raw:
        return response.status, content_type, json.loads(raw)
    return response.status, content_type, raw.decode(errors="replace")


def ok(base, method, path, body=None, headers=None, status=200):
    got, _, answer = request(base, method, path, body, headers)
    assert got == status, f"{method} {path}: expected {status}, got {got}: {answer}"
    return answer


def problem(base, method, path, body, status, reason, headers=None):
    got, content_type, answer = request(base, method, path, body, headers)
    assert got == status, f"{method} {path}: expected {status}, got {got}: {answer}"
    assert content_type.startswith(PROBLEM), f"{method} {path}: content type {content_type}"
    for field in ("type", "title", "status", "detail", "reason"):
        assert field in answer, f"{method} {path}: the problem lacks {field}: {answer}"
    assert answer["status"] == status and answer["reason"] == reason, f"{method} {path}: {answer}"
    return answer


def read_partition(base, topic, partition, offset=0):
    answer = ok(base, "GET", f"/topics/{topic}/partitions/{partition}/records?offset={offset}&max_records=10000")
    return answer["records"]


def read_group(base, group, instance, count):
    """Reads `count` records as member `instance` of `group` (from the earliest offset when the
    group has no commits); returns their (partition, offset)s, checking nothing more comes."""
    got = []
    deadline = time.monotonic() + 60
    while len(got) < count:
        assert time.monotonic() < deadline, f"{group}/{instance} got {len(got)} of {count} records"
        answer = ok(base, "GET", f"/groups/{group}/records?topics=orders&instance={instance}&reset=earliest"
                                 f"&wait_ms=1000&max_records=7")
        assert len(answer["records"]) <= 7, answer
        got += [(r["partition"], r["offset"]) for r in answer["records"]]
    extra = ok(base, "GET", f"/groups/{group}/records?topics=orders&instance={instance}&wait_ms=500")
    assert extra["records"] == [] and extra["assignment"] == {"orders": [0, 1, 2]}, extra
    return got


class EventStream:
    """A Server-Sent Events reader over http.client, as a browser's EventSource reads."""

    def __init__(self, base, path, last_event_id=None):
        url = urllib.parse.urlsplit(base)
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.connection.request("GET", path, headers=headers)
        self.response = self.connection.getresponse()
        assert self.response.status == 200, f"GET {path}: {self.response.status} {self.response.read()}"
        assert self.response.getheader("Content-Type").startswith("text/event-stream")

    def next_event(self, within=30):
        """The next event as a dict of its fields (comments skipped), within `within` seconds."""
        event = {}
        deadline = time.monotonic() + within
        while True:
            assert time.monotonic() < deadline, f"no event within {within} s"
            line = self.response.readline()
            assert line, "the event stream ended"
            line = line.decode().rstrip("\r\n")
            if line == "":
                if "data" in event:
                    return event
                event = {}
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            event[field] = event.get(field, "") + ("\n" if field == "data" and field in event else "") + value

    def close(self):
        self.connection.close()


def records(a, b):
    # Topics: create, refuse a duplicate, list, describe.
    created = ok(a, "POST", "/topics", {"name": "orders", "partitions": 3, "replication_factor": 3}, status=201)
    assert created["name"] == "orders" and len(created["partitions"]) == 3, created
    problem(b, "POST", "/topics", {"name": "orders", "partitions": 3, "replication_factor": 3}, 409,
            "TOPIC_ALREADY_EXISTS")
    ok(a, "POST", "/topics", {"name": "events", "partitions": 1, "replication_factor": 3,
                              "configs": {"max.message.bytes": "2000"}}, status=201)
    # Another broker learns of new topics as the controller's metadata reaches it.
    deadline = time.monotonic() + 30
    while True:
        names = [t["name"] for t in ok(b, "GET", "/topics")]
        if ("orders" in names and "events" in names) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "orders" in names and "events" in names, names
    assert len(ok(b, "GET", "/cluster")["brokers"]) == 3

    # Produce JSON values with keys and headers; one key's records share a partition, in order.
    body = {"records": [{"key": f"order-{i % 4}", "value": {"order": i, "items": ["book"] * (i % 3)},
                         "headers": {"source": "python", "n": str(i)}} for i in range(40)]}
    answer = ok(a, "POST", "/topics/orders/records", body)
    positions = answer["records"]
    assert len(positions) == 40 and not any(p["duplicate"] for p in positions), answer
    for key in range(4):
        mine = [positions[i] for i in range(40) if i % 4 == key]
        assert len({p["partition"] for p in mine}) == 1, f"key order-{key} spread over partitions: {mine}"
        offsets = [p["offset"] for p in mine]
        assert offsets == sorted(offsets), offsets
    # Read them back from the other broker: values, keys and headers as produced.
    stored = {}
    for partition in range(3):
        for record in read_partition(b, "orders", partition):
            stored[(record["partition"], record["offset"])] = record
    for i, position in enumerate(positions):
        record = stored[(position["partition"], position["offset"])]
        assert record["value"] == body["records"][i]["value"] and record["value_encoding"] == "json", record
        assert record["key"] == f"order-{i % 4}" and record["headers"] == {"source": "python", "n": str(i)}, record

    # Strings and base64 round trip; bytes that are not JSON come back as base64.
    raw = ok(a, "POST", "/topics/events/records", {"value_encoding": "base64",
                                                   "records": [{"value": "AAEC/w=="}]})["records"][0]
    text = ok(a, "POST", "/topics/events/records", {"value_encoding": "string",
                                                    "records": [{"value": "plain text"}]})["records"][0]
    back = read_partition(b, "events", 0)
    assert back[0]["offset"] == raw["offset"] and back[0]["value"] == "AAEC/w==" and back[0]["value_encoding"] == "base64", back
    assert back[1]["value"] == "cGxhaW4gdGV4dA==" and back[1]["value_encoding"] == "base64", back
    as_text = ok(b, "GET", f"/topics/events/partitions/0/records?offset={text['offset']}&value_encoding=string")
    assert as_text["records"][0]["value"] == "plain text", as_text

    # Long poll: a read waiting at the end of the log wakes when a record is committed.
    end = ok(b, "GET", "/topics/events/partitions/0/records?offset=0")["high_watermark"]
    waited = {}

    def wait():
        started = time.monotonic()
        waited["answer"] = ok(b, "GET", f"/topics/events/partitions/0/records?offset={end}&wait_ms=20000")
        waited["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.0)
    ok(a, "POST", "/topics/events/records", {"records": [{"value": {"woke": True}}]})
    waiter.join()
    assert [r["value"] for r in waited["answer"]["records"]] == [{"woke": True}], waited
    print(f"long poll answered after {waited['seconds']:.2f} s", file=sys.stderr)

    # Idempotency-Key: the same request again (to another broker) appends nothing more.
    once = {"records": [{"value": {"payment": 1}}, {"key": "k", "value": {"payment": 2}}]}
    first = ok(a, "POST", "/topics/orders/records", once, {"Idempotency-Key": "pay-0001"})["records"]
    again = ok(b, "POST", "/topics/orders/records", once, {"Idempotency-Key": "pay-0001"})["records"]
    assert [(p["partition"], p["offset"]) for p in first] == [(p["partition"], p["offset"]) for p in again], (first, again)
    assert not any(p["duplicate"] for p in first) and all(p["duplicate"] for p in again), (first, again)
    for p in first:
        values = [r["value"] for r in read_partition(b, "orders", p["partition"])]
        assert sum(1 for v in values if isinstance(v, dict) and "payment" in v and
                   v["payment"] in (1, 2)) == sum(1 for q in first if q["partition"] == p["partition"]), values
    other = ok(a, "POST", "/topics/orders/records", once, {"Idempotency-Key": "pay-0002"})["records"]
    assert not any(p["duplicate"] for p in other), other

    # The event stream: records as they commit; a reconnection with Last-Event-ID resumes after
    # the last event seen, without gaps or repeats.
    stream = EventStream(b, "/topics/events/stream?from=earliest")
    seen = [stream.next_event() for _ in range(3)]
    assert all(e["event"] == "record" for e in seen), seen
    offsets = [json.loads(e["data"])["offset"] for e in seen]
    assert offsets == [0, 1, 2] and seen[-1]["id"] == "0:2", seen
    stream.close()
    ok(a, "POST", "/topics/events/records", {"records": [{"value": {"after": n}} for n in range(2)]})
    resumed = EventStream(a, "/topics/events/stream", last_event_id=seen[-1]["id"])
    rest = [json.loads(resumed.next_event()["data"]) for _ in range(2)]
    assert [r["offset"] for r in rest] == [3, 4], rest
    assert [r["value"] for r in rest] == [{"after": 0}, {"after": 1}], rest
    # Live: a record produced now arrives on the open stream.
    ok(b, "POST", "/topics/events/records", {"records": [{"value": {"live": True}}]})
    live = resumed.next_event()
    assert json.loads(live["data"])["value"] == {"live": True} and live["id"] == "0:5", live
    resumed.close()
    # Every partition of a topic, from the earliest offset: every record, ids naming partitions.
    everything = EventStream(a, "/topics/orders/stream?from=earliest")
    total = sum(len(read_partition(a, "orders", p)) for p in range(3))
    events = [everything.next_event() for _ in range(total)]
    assert len({e["id"].split(",")[0] for e in events}) == total, "one event per record"
    everything.close()

    # A consumer group over HTTP: a member reads every partition, commits part of what it read;
    # once it leaves (committing nothing more), the next member resumes at the commits.
    stored = {p: read_partition(a, "orders", p) for p in range(3)}
    expected = {(p, r["offset"]) for p, records in stored.items() for r in records}
    got = read_group(a, "web", "w1", len(expected))
    assert set(got) == expected and len(got) == len(expected), "each record once"
    half = {p: len(records) // 2 for p, records in stored.items()}
    commit = {"instance": "w1", "offsets": [{"topic": "orders", "partition": p, "offset": o} for p, o in half.items()]}
    ok(a, "POST", "/groups/web/offsets", commit, status=204)
    described = ok(b, "GET", "/groups/web")
    assert {o["partition"]: o["committed_offset"] for o in described["offsets"]} == half, described
    assert described["total_lag"] == len(expected) - sum(half.values()), described
    ok(a, "DELETE", "/groups/web/instances/w1", status=204)
    problem(a, "POST", "/groups/web/offsets", commit, 404, "UNKNOWN_MEMBER")
    rest_of_it = {(p, r["offset"]) for p, records in stored.items() for r in records[half[p]:]}
    got = read_group(a, "web", "w2", len(rest_of_it))
    assert set(got) == rest_of_it and len(got) == len(rest_of_it), (sorted(got), sorted(rest_of_it))
    problem(a, "GET", "/groups/web/records?topics=nope", None, 404, "UNKNOWN_TOPIC")

    # Errors: problem+json with the gRPC API's reason codes.
    problem(a, "GET", "/topics/nope", None, 404, "UNKNOWN_TOPIC")
    problem(a, "POST", "/topics/nope/records", {"records": [{"value": 1}]}, 404, "UNKNOWN_TOPIC")
    problem(a, "GET", "/topics/orders/partitions/7/records", None, 404, "UNKNOWN_PARTITION")
    problem(a, "GET", "/topics/events/partitions/0/records?offset=1000000", None, 416, "OFFSET_OUT_OF_RANGE")
    problem(a, "POST", "/topics/events/records", b"{not json", 400, "INVALID_REQUEST")
    problem(a, "POST", "/topics/events/records", {"records": []}, 400, "INVALID_REQUEST")
    problem(a, "POST", "/topics/events/records", {"records": [{"value": "%%"}], "value_encoding": "base64"}, 400,
            "INVALID_REQUEST")
    problem(a, "POST", "/topics/events/records", {"records": [{"value": "x" * 5000}]}, 413, "RECORD_TOO_LARGE")
    problem(a, "POST", "/topics/events/records", b'{"records":[{"value":"' + b"x" * (33 << 20) + b'"}]}', 413,
            "REQUEST_TOO_LARGE")
    problem(a, "POST", "/topics", {"name": "bad name!", "partitions": 1, "replication_factor": 1}, 400,
            "INVALID_TOPIC_NAME")
    problem(a, "GET", "/topics/events/stream?from=soon", None, 400, "INVALID_REQUEST")
    problem(a, "GET", "/groups/nobody", None, 404, "GROUP_NOT_FOUND")
    ok(a, "POST", "/topics", {"name": "doomed", "partitions": 1, "replication_factor": 1}, status=201)
    ok(b, "DELETE", "/topics/doomed", status=204)
    problem(a, "DELETE", "/topics/doomed", None, 404, "UNKNOWN_TOPIC")
    print(json.dumps({"produced": len(positions), "streamed": total}))


def openapi(base):
    from openapi_spec_validator import validate
    document = ok(base, "GET", "/openapi.json")
    validate(document)
    paths = document["paths"]
    for path in ("/topics/{topic}/records", "/topics/{topic}/partitions/{partition}/records",
                 "/topics/{topic}/stream", "/topics", "/topics/{topic}", "/cluster", "/groups", "/groups/{group}",
                 "/groups/{group}/records", "/groups/{group}/offsets", "/groups/{group}/instances/{instance}"):
        assert path in paths, f"{path} is not in the OpenAPI document: {sorted(paths)}"
    print(json.dumps({"openapi": document["openapi"], "paths": len(paths)}))


def status(base, method, path, body, code, reason):
    problem(base, method, path, None if body == "-" else json.loads(body), int(code), reason)


def group(base, name):
    print(json.dumps(ok(base, "GET", f"/groups/{name}")))


def cors(base, allowed):
    """A browser's cross-origin requests: allowed for `allowed`, not for another origin."""
    url = urllib.parse.urlsplit(base)

    def send(method, path, headers):
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        response.read()
        connection.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}

    # The preflight of a produce with an idempotency key.
    status_, headers = send("OPTIONS", "/topics/orders/records", {
        "Origin": allowed, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,idempotency-key"})
    assert status_ == 200, (status_, headers)
    assert headers.get("access-control-allow-origin") == allowed, headers
    assert "POST" in headers.get("access-control-allow-methods", ""), headers
    assert "idempotency-key" in headers.get("access-control-allow-headers", "").lower(), headers
    # A simple request from the allowed origin, and from another one.
    status_, headers = send("GET", "/topics", {"Origin": allowed})
    assert status_ == 200 and headers.get("access-control-allow-origin") == allowed, headers
    status_, headers = send("GET", "/topics", {"Origin": "http://elsewhere.example"})
    assert status_ == 200 and "access-control-allow-origin" not in headers, headers
    print(json.dumps({"allowed": allowed}))


def reflection(address):
    import grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
    channel = grpc.insecure_channel(address)
    database = ProtoReflectionDescriptorDatabase(channel)
    services = sorted(database.get_services())
    # The client can also resolve a public service's methods from the descriptors it fetched.
    from google.protobuf.descriptor_pool import DescriptorPool
    pool = DescriptorPool(database)
    methods = sorted(m.name for m in pool.FindServiceByName("eddy.v1.Eddy").methods)
    print(json.dumps({"services": services, "eddy_methods": methods}))


if __name__ == "__main__":
    # A hang shows where it is instead of holding the test until its own timeout.
    faulthandler.dump_traceback_later(300, exit=True)
    command, args = sys.argv[1], sys.argv[2:]
    {"records": records, "openapi": openapi, "status": status, "group": group, "reflection": reflection,
     "cors": cors}[command](*args)
