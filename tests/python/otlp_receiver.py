"""An OTLP/gRPC trace receiver for the tracing test, built from the official OpenTelemetry protos
(the opentelemetry-proto package) and grpcio: nothing of Eddy's.

    otlp_receiver.py PORT OUT

Serves opentelemetry.proto.collector.trace.v1.TraceService on 127.0.0.1:PORT, prints "ready" once
listening, and appends every span it is sent to OUT as one JSON object per line: service, trace
and span ids (hex), parent span id, name, kind, status, attributes and links. Runs until killed.
"""

import json
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

KINDS = {value: name.replace("SPAN_KIND_", "") for name, value in trace_pb2.Span.SpanKind.items()}


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()

    def Export(self, request, context):
        lines = []
        for resource_spans in request.resource_spans:
            resource = {a.key: value_of(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    lines.append(json.dumps({
                        "service": resource.get("service.name"),
                        "instance": resource.get("service.instance.id"),
                        "scope": scope_spans.scope.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": KINDS.get(span.kind, str(span.kind)),
                        "status": trace_pb2.Status.StatusCode.Name(span.status.code),
                        "attributes": {a.key: value_of(a.value) for a in span.attributes},
                        "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()} for l in span.links],
                        "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano,
                    }))
        with self.lock:
            with open(self.out, "a") as f:
                for line in lines:
                    f.write(line + "\n")
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    port, out = sys.argv[1], sys.argv[2]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(out), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
