"""Drives Eddy's GraphQL API with clients that are not Eddy's: gql (queries and mutations over
HTTP, subscriptions over WebSocket in the graphql-transport-ws protocol and the legacy graphql-ws
one), validating every document against the schema it fetched by introspection; and the
`websockets` library speaking graphql-transport-ws by hand, as a subscriber that stops reading.

    graphql_api.py queries URL_A URL_B    topics, topic, cluster, produce (keys, headers, base64,
                                          idempotency keys), records, errors and their codes;
                                          URL_A and URL_B are two brokers' HTTP listeners
    graphql_api.py subscriptions URL      the records subscription in both protocols: from
                                          EARLIEST, LATEST, offsets, with a filter, with a group
    graphql_api.py slow URL               a subscriber that stops reading is ended with
                                          SLOW_SUBSCRIBER and resumes from its `resume` offsets,
                                          catching up on the backlog at its own pace
"""

import asyncio
import base64
import faulthandler
import json
import sys
import time
import urllib.error
import urllib.request

from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport
from gql.transport.websockets import WebsocketsTransport
import websockets

TRANSPORT_WS = WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL  # "graphql-transport-ws"
LEGACY_WS = WebsocketsTransport.APOLLO_SUBPROTOCOL  # "graphql-ws"


def http_client(base):
    transport = RequestsHTTPTransport(url=f"{base}/graphql", timeout=60, retries=0)
    return Client(transport=transport, fetch_schema_from_transport=True)


def ws_url(base):
    return base.replace("http://", "ws://") + "/graphql"


def error_of(call):
    """The GraphQL error `call` raises, as a dict (message, extensions)."""
    try:
        call()
    except TransportQueryError as error:
        assert error.errors, error
        return error.errors[0]
    raise AssertionError("expected a GraphQL error")


def produce(client, topic, value, **extra):
    mutation = gql("""
        mutation P($topic: String!, $key: String, $value: String!, $encoding: ValueEncoding,
                   $headers: [HeaderInput!], $partition: Int, $idempotencyKey: String) {
          produce(topic: $topic, key: $key, value: $value, encoding: $encoding, headers: $headers,
                  partition: $partition, idempotencyKey: $idempotencyKey) {
            topic partition offset duplicate
          }
        }""")
    variables = {"topic": topic, "value": value, **extra}
    return client.execute(mutation, variable_values=variables)["produce"]


def create_topic(base, name, partitions):
    """Through the REST API (GraphQL has no topic mutations)."""
    body = json.dumps({"name": name, "partitions": partitions, "replication_factor": 3}).encode()
    request = urllib.request.Request(f"{base}/topics", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.status == 201, answer.status


def produce_rest(base, topic, values):
    """Through the REST API, many records a request."""
    body = json.dumps({"records": [{"value": v} for v in values], "value_encoding": "string"}).encode()
    request = urllib.request.Request(f"{base}/topics/{topic}/records", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.status == 200, answer.status


def wait_topic(client, name, partitions):
    query = gql("query T($name: String!) { topic(name: $name) { partitions { partition leader } } }")
    deadline = time.monotonic() + 60
    while True:
        topic = client.execute(query, variable_values={"name": name})["topic"]
        if topic and len(topic["partitions"]) == partitions and all(p["leader"] for p in topic["partitions"]):
            return
        assert time.monotonic() < deadline, f"topic {name} has no leaders: {topic}"
        time.sleep(0.2)


def queries(a, b):
    client_a, client_b = http_client(a), http_client(b)
    create_topic(a, "orders", 3)
    wait_topic(client_b, "orders", 3)

    # Keyed records land on the key's partition, in order; headers and base64 values kept.
    placed = [produce(client_a, "orders", json.dumps({"order": i}), key=f"order-{i % 2}",
                      headers=[{"name": "type", "value": "OrderCreated"}]) for i in range(6)]
    by_key = {}
    for i, answer in enumerate(placed):
        assert answer["topic"] == "orders" and not answer["duplicate"], answer
        by_key.setdefault(i % 2, []).append((answer["partition"], answer["offset"]))
    for key, places in by_key.items():
        assert len({p for p, _ in places}) == 1, f"order-{key} spread over partitions: {places}"
        offsets = [o for _, o in places]
        assert offsets == sorted(offsets), places
    raw = produce(client_a, "orders", base64.b64encode(b"\x00\x01\xff").decode(), encoding="BASE64", partition=2)
    assert raw["partition"] == 2, raw

    # An idempotency key appends once, whichever broker the retry reaches.
    first = produce(client_a, "orders", "once", partition=1, idempotencyKey="req-1")
    again = produce(client_b, "orders", "once", partition=1, idempotencyKey="req-1")
    assert again["duplicate"] and again["offset"] == first["offset"], (first, again)

    # Read back through the other broker.
    partition, offset = placed[0]["partition"], placed[0]["offset"]
    read = gql("""
        query R($topic: String!, $partition: Int!, $offset: Long, $limit: Int) {
          records(topic: $topic, partition: $partition, offset: $offset, limit: $limit) {
            topic partition offset timestampMs key keyBase64 value valueBase64 json headers { name value }
          }
        }""")
    records = client_b.execute(read, variable_values={"topic": "orders", "partition": partition,
                                                      "offset": offset, "limit": 1})["records"]
    assert len(records) == 1, records
    record = records[0]
    assert record["offset"] == offset and record["key"] == "order-0", record
    assert record["json"] == {"order": 0} and record["value"] == '{"order": 0}', record
    assert record["headers"] == [{"name": "type", "value": "OrderCreated"}], record
    assert record["timestampMs"] > 1_600_000_000_000, record
    binary = client_b.execute(read, variable_values={"topic": "orders", "partition": 2,
                                                     "offset": raw["offset"], "limit": 1})["records"][0]
    assert binary["value"] is None and base64.b64decode(binary["valueBase64"]) == b"\x00\x01\xff", binary
    assert binary["json"] is None and binary["key"] is None, binary

    # Topics, one topic, the cluster.
    listed = client_b.execute(gql("{ topics { name partitionCount replicationFactor } }"))["topics"]
    assert {"name": "orders", "partitionCount": 3, "replicationFactor": 3} in listed, listed
    described = client_b.execute(gql("""{ topic(name: "orders") {
        name configs { name value } partitions { partition leader replicas isr logStartOffset highWatermark } } }"""))
    ends = sum(p["highWatermark"] for p in described["topic"]["partitions"])
    assert ends == 6 + 1 + 1, described
    assert all(len(p["replicas"]) == 3 for p in described["topic"]["partitions"]), described
    assert client_a.execute(gql('{ topic(name: "no-such-topic") { name } }'))["topic"] is None
    cluster = client_a.execute(gql("{ cluster { clusterId brokers { id address alive } } }"))["cluster"]
    assert len(cluster["brokers"]) == 3 and all(b["alive"] for b in cluster["brokers"]), cluster

    # Errors: the cluster's reason in `code`.
    unknown = error_of(lambda: client_a.execute(read, variable_values={"topic": "nope", "partition": 0}))
    assert unknown["extensions"]["code"] == "UNKNOWN_TOPIC", unknown
    beyond = error_of(lambda: client_a.execute(read, variable_values={"topic": "orders", "partition": 0,
                                                                      "offset": 10_000}))
    assert beyond["extensions"]["code"] == "OFFSET_OUT_OF_RANGE", beyond
    limit = error_of(lambda: client_a.execute(read, variable_values={"topic": "orders", "partition": 0,
                                                                     "limit": 0}))
    assert limit["extensions"]["code"] == "INVALID_ARGUMENT", limit
    no_partition = error_of(lambda: produce(client_a, "orders", "x", partition=7))
    assert no_partition["extensions"]["code"] == "UNKNOWN_PARTITION", no_partition
    bad_base64 = error_of(lambda: produce(client_a, "orders", "not base64!", encoding="BASE64"))
    assert bad_base64["extensions"]["code"] == "INVALID_ARGUMENT", bad_base64
    # A body that is not a GraphQL request: 400 with a GraphQL error.
    request = urllib.request.Request(f"{a}/graphql", data=b"not json", method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=60)
        raise AssertionError("a malformed body was accepted")
    except urllib.error.HTTPError as error:
        assert error.code == 400, error.code
        answer = json.loads(error.read())
        assert answer["errors"][0]["extensions"]["code"] == "INVALID_REQUEST", answer
    print(json.dumps({"produced": len(placed) + 2, "read": len(records)}))


async def collect(url, protocol, document, variables, count, within=30):
    """The first `count` results of a subscription, through gql over `protocol`."""
    transport = WebsocketsTransport(url=url, subprotocols=[protocol])
    results = []
    async with Client(transport=transport, fetch_schema_from_transport=True) as session:
        async def take():
            async for result in session.subscribe(gql(document), variable_values=variables):
                results.append(result["records"])
                if len(results) == count:
                    return
        await asyncio.wait_for(take(), within)
    return results


RECORDS = """
    subscription S($topic: String!, $from: Start, $partition: Int, $offsets: [PartitionOffsetInput!],
                   $group: String, $filter: RecordFilter) {
      records(topic: $topic, from: $from, partition: $partition, offsets: $offsets, group: $group,
              filter: $filter) {
        partition offset key value headers { name value }
      }
    }"""


async def produce_later(client, topic, values, delay=1.0, **extra):
    """Produces `values` after `delay` seconds (in a thread: gql's HTTP client blocks)."""
    await asyncio.sleep(delay)
    for value in values:
        await asyncio.to_thread(produce, client, topic, value, **extra)


async def subscriptions_async(base):
    client = http_client(base)
    create_topic(base, "feed", 2)
    wait_topic(client, "feed", 2)
    url = ws_url(base)
    for i in range(4):
        produce(client, "feed", f"old-{i}", key=f"k{i % 2}",
                headers=[{"name": "kind", "value": "even" if i % 2 == 0 else "odd"}])

    for protocol in (TRANSPORT_WS, LEGACY_WS):
        # From EARLIEST: every stored record, in offset order within each partition.
        got = await collect(url, protocol, RECORDS, {"topic": "feed", "from": "EARLIEST"}, 4)
        assert sorted(r["value"] for r in got) == [f"old-{i}" for i in range(4)], (protocol, got)
        for p in (0, 1):
            offsets = [r["offset"] for r in got if r["partition"] == p]
            assert offsets == sorted(offsets), got

    # LATEST: only what is committed after the subscription started, pushed as it commits.
    waiting = asyncio.create_task(collect(url, TRANSPORT_WS, RECORDS, {"topic": "feed"}, 3))
    await produce_later(client, "feed", ["new-0", "new-1", "new-2"], key="k-new")
    got = await waiting
    assert [r["value"] for r in got] == ["new-0", "new-1", "new-2"], got

    # A filter by header, then by key.
    got = await collect(url, TRANSPORT_WS, RECORDS, {"topic": "feed", "from": "EARLIEST",
                                                     "filter": {"headerEquals": [{"name": "kind", "value": "odd"}]}}, 2)
    assert sorted(r["value"] for r in got) == ["old-1", "old-3"], got
    got = await collect(url, LEGACY_WS, RECORDS, {"topic": "feed", "from": "EARLIEST", "filter": {"key": "k-new"}}, 3)
    assert [r["value"] for r in got] == ["new-0", "new-1", "new-2"], got

    # Offsets: a partition from a given offset.
    first = got[0]
    resumed = await collect(url, TRANSPORT_WS, RECORDS, {"topic": "feed", "partition": first["partition"],
                                                         "offsets": [{"partition": first["partition"],
                                                                      "offset": first["offset"] + 1}]}, 2)
    assert [r["value"] for r in resumed] == ["new-1", "new-2"], resumed

    # A group: the member reads from the earliest records (the group has no commits yet), and
    # what it was pushed is committed: the group's lag goes to zero.
    got = await collect(url, TRANSPORT_WS, RECORDS, {"topic": "feed", "from": "EARLIEST", "group": "ui"}, 7)
    assert len(got) == 7 and len({(r["partition"], r["offset"]) for r in got}) == 7, got
    lag_query = gql('{ group(id: "ui") { groupId totalLag offsets { partition committedOffset lag } } }')
    deadline = time.monotonic() + 30
    while True:
        group = client.execute(lag_query)["group"]
        committed = sum(o["committedOffset"] or 0 for o in group["offsets"]) if group else 0
        if group and group["totalLag"] == 0 and committed == 7:
            break
        assert time.monotonic() < deadline, f"the group's commits did not reach the end: {group}"
        await asyncio.sleep(0.5)

    # An unknown topic ends the subscription with UNKNOWN_TOPIC.
    try:
        await collect(url, TRANSPORT_WS, RECORDS, {"topic": "nope"}, 1)
        raise AssertionError("subscribed to a topic that does not exist")
    except TransportQueryError as error:
        assert error.errors[0]["extensions"]["code"] == "UNKNOWN_TOPIC", error.errors
    print(json.dumps({"protocols": [TRANSPORT_WS, LEGACY_WS], "group_lag": group["totalLag"]}))


def subscriptions(base):
    asyncio.run(subscriptions_async(base))


async def raw_messages(socket_, until):
    """Messages of a graphql-transport-ws connection until `until(message)` holds."""
    out = []
    while True:
        message = json.loads(await asyncio.wait_for(socket_.recv(), 60))
        if message["type"] == "ping":
            await socket_.send(json.dumps({"type": "pong"}))
            continue
        out.append(message)
        if until(message):
            return out


async def slow_async(base):
    client = http_client(base)
    create_topic(base, "firehose", 1)
    wait_topic(client, "firehose", 1)
    # A subscriber that subscribes and then does not read: its socket's buffers fill, then the
    # broker's buffer for it; the subscription ends with SLOW_SUBSCRIBER after what was buffered.
    # (The resumed subscriber below reads slower than the broker could push the backlog, and
    # is not cut off: it keeps taking records.)
    async with websockets.connect(ws_url(base), subprotocols=[TRANSPORT_WS], max_queue=1, ping_interval=None,
                                  max_size=None) as socket_:
        await socket_.send(json.dumps({"type": "connection_init"}))
        await raw_messages(socket_, lambda m: m["type"] == "connection_ack")
        query = "subscription { records(topic: \"firehose\") { partition offset value } }"
        await socket_.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        await asyncio.sleep(1)
        total = 8000
        started = time.monotonic()
        for _ in range(total // 100):
            await asyncio.to_thread(produce_rest, base, "firehose", ["x" * 4096] * 100)
        # 32 MiB: more than the sockets' buffers and the broker's 1,000 records for the
        # subscriber hold;
        # after 15 s without a read the broker gives up on it.
        produced = time.monotonic()
        await asyncio.sleep(20)
        # Now read everything that was pushed.
        messages = await raw_messages(socket_, lambda m: m["type"] in ("error", "complete"))
    pushed = [m["payload"]["data"]["records"] for m in messages if m["type"] == "next" and m["payload"].get("data")]
    errors = [e for m in messages if m["type"] == "next" for e in m["payload"].get("errors", [])]
    assert errors, f"no error after {len(pushed)} records"
    error = errors[0]
    assert error["extensions"]["code"] == "SLOW_SUBSCRIBER", error
    resume = error["extensions"]["resume"]
    offsets = [r["offset"] for r in pushed]
    assert offsets == list(range(len(offsets))), "pushed records are contiguous from the start"
    assert len(pushed) < total, f"{len(pushed)} of {total} were pushed: the subscriber was never behind"
    assert resume == [{"partition": 0, "offset": len(pushed)}], (resume, len(pushed))
    # Resuming from `resume` delivers the rest, none twice.
    read = time.monotonic()
    rest = await collect(ws_url(base), TRANSPORT_WS, RECORDS, {"topic": "firehose", "offsets": resume},
                         total - len(pushed), within=240)
    assert [r["offset"] for r in rest] == list(range(len(pushed), total)), "resumed exactly after"
    print(json.dumps({"pushed_before_the_error": len(pushed), "resumed": len(rest),
                      "seconds": {"produce": round(produced - started, 1), "resume": round(time.monotonic() - read, 1)}}))


def slow(base):
    asyncio.run(slow_async(base))


if __name__ == "__main__":
    faulthandler.dump_traceback_later(300, exit=True)
    command, args = sys.argv[1], sys.argv[2:]
    {"queries": queries, "subscriptions": subscriptions, "slow": slow}[command](*args)
