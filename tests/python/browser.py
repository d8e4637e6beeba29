"""Opens Eddy's pages in a real browser: headless Chromium (Debian's), driven over the Chrome
DevTools Protocol with the `websockets` library.

    browser.py CHROMIUM PAGE_URL OTHER_URL

PAGE_URL and OTHER_URL are two brokers' HTTP listeners. In the browser:
1. GraphiQL loads at PAGE_URL/graphql (its scripts from the broker, none from the internet), runs a query
   typed into its editor, and shows a subscription's records as they are produced;
2. an EventSource on a page of OTHER_URL (a cross-origin request, which the cluster's CORS origins
   allow) follows PAGE_URL's /topics/orders/stream from the earliest record. Then the script prints
   "restart" and waits for a line on standard input: meanwhile the test restarts the broker
   behind PAGE_URL, so the browser's connection drops and EventSource reconnects by itself with
   Last-Event-ID. Records produced after that (through OTHER_URL) arrive, and none twice.
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets


def produce(base, topic, values, partition=None):
    records = [{"value": v} if partition is None else {"value": v, "partition": partition} for v in values]
    body = json.dumps({"records": records, "value_encoding": "string"}).encode()
    request = urllib.request.Request(f"{base}/topics/{topic}/records", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.status == 200, answer.status
        return json.loads(answer.read())["records"]


class Browser:
    """One page of a headless Chromium, over the DevTools Protocol."""

    def __init__(self, chromium):
        self.profile = tempfile.mkdtemp(prefix="eddy-chromium-")
        self.process = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        self.port = None
        while self.port is None:
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            line = self.process.stderr.readline()
            assert line or self.process.poll() is None, f"chromium exited ({self.process.returncode})"
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if found:
                self.port = int(found.group(1))
        self.socket = None
        self.next_id = 0

    async def open(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=30) as answer:
            targets = json.loads(answer.read())
        page = next(t for t in targets if t["type"] == "page")
        self.socket = await websockets.connect(page["webSocketDebuggerUrl"], max_size=None)
        await self.call("Page.enable")
        await self.call("Runtime.enable")

    async def call(self, method, **params):
        self.next_id += 1
        mine = self.next_id
        await self.socket.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), 60))
            if message.get("id") == mine:
                assert "error" not in message, f"{method}: {message['error']}"
                return message["result"]

    async def evaluate(self, expression):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, f"{expression}: {result['exceptionDetails']}"
        return result["result"].get("value")

    async def wait_for(self, expression, what, within=60):
        deadline = time.monotonic() + within
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.2)

    async def navigate(self, url):
        await self.call("Page.navigate", url=url)

    def close(self):
        self.process.kill()
        self.process.wait()


EDITOR = "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
RESPONSE = "(document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '')"
EXECUTE = "document.querySelector('.graphiql-execute-button').click()"


async def graphiql(browser, page_url, other_url):
    await browser.navigate(f"{page_url}/graphql")
    await browser.wait_for("!!document.querySelector('.graphiql-container .graphiql-execute-button')",
                           "GraphiQL to render")
    # The page's scripts all came from the broker.
    sources = await browser.evaluate("[...document.scripts].map(s => s.src).filter(s => s)")
    assert sources and all(s.startswith(page_url) for s in sources), sources
    # A query typed into the editor and executed.
    await browser.evaluate(f"{EDITOR}.setValue('{{ topics {{ name partitionCount }} }}'); {EXECUTE}")
    answer = await browser.wait_for(f"{RESPONSE}.includes('\"orders\"') && {RESPONSE}", "the query's answer")
    assert json.loads(answer)["data"]["topics"], answer
    # A subscription: records produced afterwards appear in the response pane.
    await browser.evaluate(
        f"{EDITOR}.setValue('subscription {{ records(topic: \"orders\") {{ partition offset value }} }}'); {EXECUTE}")
    await asyncio.sleep(2)
    deadline = time.monotonic() + 60
    while "pushed-to-graphiql" not in await browser.evaluate(RESPONSE):
        assert time.monotonic() < deadline, f"the subscription showed no record: {await browser.evaluate(RESPONSE)!r}"
        produce(other_url, "orders", ["pushed-to-graphiql"])
        await asyncio.sleep(1)
    await browser.evaluate(EXECUTE)  # stops the subscription


async def event_source(browser, page_url, other_url):
    # The page comes from the other broker: the stream is a cross-origin request, allowed by the
    # cluster's CORS origins.
    await browser.navigate(f"{other_url}/graphql")
    await browser.wait_for("document.readyState === 'complete'", "the page to load")
    stored = await browser.evaluate("""
        fetch('/topics/orders').then(r => r.json())
            .then(t => t.partitions.reduce((n, p) => n + p.high_watermark, 0))""")
    await browser.evaluate("""
        window.received = []; window.failures = 0;
        window.stream = new EventSource('PAGE_URL/topics/orders/stream?from=earliest&value_encoding=string');
        window.stream.addEventListener('record', e => {
            const record = JSON.parse(e.data);
            window.received.push([record.partition, record.offset, record.value, e.lastEventId]);
        });
        window.stream.onerror = () => { window.failures += 1; };
        true""".replace("PAGE_URL", page_url))
    await browser.wait_for(f"window.received.length >= {stored}", f"the {stored} stored records")
    # The broker behind the page restarts: the connection drops, EventSource reconnects by itself.
    print("restart", flush=True)
    assert sys.stdin.readline().strip() == "restarted"
    await browser.wait_for("window.failures > 0", "EventSource to see the connection drop")
    fresh = [f"after-restart-{i}" for i in range(6)]
    produce(other_url, "orders", fresh[:3], partition=0)
    produce(other_url, "orders", fresh[3:], partition=1)
    await browser.wait_for(f"window.received.length >= {stored + len(fresh)}", "the records produced after",
                           within=120)
    await asyncio.sleep(1)
    received = await browser.evaluate("window.received")
    positions = [(p, o) for p, o, _, _ in received]
    assert len(positions) == len(set(positions)) == stored + len(fresh), f"a record came twice: {received}"
    assert sorted(v for _, _, v, _ in received if v.startswith("after-restart")) == fresh, received
    for partition in (0, 1):
        offsets = [o for p, o in positions if p == partition]
        assert offsets == sorted(offsets), f"partition {partition} out of order: {offsets}"
    last_id = received[-1][3]
    await browser.evaluate("window.stream.close(); true")
    return {"stored": stored, "after_restart": len(fresh), "reconnects_seen": await browser.evaluate("window.failures"),
            "last_event_id": last_id}


async def main(chromium, page_url, other_url):
    browser = Browser(chromium)
    try:
        await browser.open()
        await graphiql(browser, page_url, other_url)
        stream = await event_source(browser, page_url, other_url)
        print(json.dumps({"graphiql": "query and subscription shown", "event_source": stream}), flush=True)
    finally:
        browser.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
