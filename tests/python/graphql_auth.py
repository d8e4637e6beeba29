"""GraphQL subscriptions with authentication on, as clients that are not Eddy's send credentials
over a WebSocket (a browser cannot set headers on one): in the `connection_init` message's
payload. gql's WebsocketsTransport (`init_payload`) in both subscription protocols, and the
`websockets` library by hand for the refusals.

    graphql_auth.py URL AUTHORIZATION TOPIC OTHER

URL is a broker's HTTP listener, AUTHORIZATION an `Authorization` value of a caller allowed to
read TOPIC (which holds at least one record) and not OTHER.
"""

import asyncio
import faulthandler
import json
import sys

from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport
import websockets

TRANSPORT_WS = WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL  # "graphql-transport-ws"
LEGACY_WS = WebsocketsTransport.APOLLO_SUBPROTOCOL  # "graphql-ws"

SUBSCRIPTION = "subscription S($topic: String!) { records(topic: $topic, from: EARLIEST) { topic offset value } }"


def ws_url(base):
    return base.replace("http://", "ws://") + "/graphql"


async def first_record(base, init_payload, protocol, topic):
    """The first record of `topic` a gql subscriber with `init_payload` gets."""
    transport = WebsocketsTransport(url=ws_url(base), init_payload=init_payload, subprotocols=[protocol])
    async with Client(transport=transport) as session:
        async for result in session.subscribe(gql(SUBSCRIPTION), variable_values={"topic": topic}):
            return result["records"]


async def refused_subscription(base, init_payload, topic):
    """The GraphQL error a gql subscriber with `init_payload` gets for `topic`."""
    transport = WebsocketsTransport(url=ws_url(base), init_payload=init_payload, subprotocols=[TRANSPORT_WS])
    async with Client(transport=transport) as session:
        try:
            async for result in session.subscribe(gql(SUBSCRIPTION), variable_values={"topic": topic}):
                raise AssertionError(f"read {topic} without being allowed to: {result}")
        except TransportQueryError as error:
            return error.errors[0]
    raise AssertionError("the subscription ended without an error")


async def refused_connection(base, init_payload):
    """How the server closes a raw graphql-transport-ws connection whose init it refuses."""
    async with websockets.connect(ws_url(base), subprotocols=[TRANSPORT_WS], ping_interval=None) as socket_:
        await socket_.send(json.dumps({"type": "connection_init", "payload": init_payload}))
        try:
            message = await asyncio.wait_for(socket_.recv(), 30)
        except websockets.exceptions.ConnectionClosed as closed:
            return closed.rcvd.code, closed.rcvd.reason
        raise AssertionError(f"the connection was accepted: {message}")


async def main(base, authorization, topic, other):
    for protocol in (TRANSPORT_WS, LEGACY_WS):
        record = await first_record(base, {"Authorization": authorization}, protocol, topic)
        assert record["topic"] == topic and str(record["offset"]) == "0", record
        print(f"{protocol}: read {topic} with the credentials of connection_init")
    # Apollo clients nest them under `headers`.
    record = await first_record(base, {"headers": {"authorization": authorization}}, TRANSPORT_WS, topic)
    assert record["topic"] == topic, record

    error = await refused_subscription(base, {"Authorization": authorization}, other)
    assert error["extensions"]["code"] == "PERMISSION_DENIED", error
    print(f"refused {other}: {error['message']}")

    for payload in ({}, {"Authorization": "Basic " + "bm9ib2R5Om5vdGhpbmc="}):
        code, reason = await refused_connection(base, payload)
        assert code == 1002 and "UNAUTHENTICATED" in reason, (code, reason)
        print(f"closed {code}: {reason}")


if __name__ == "__main__":
    faulthandler.dump_traceback_later(240, exit=True)
    asyncio.run(main(*sys.argv[1:5]))
