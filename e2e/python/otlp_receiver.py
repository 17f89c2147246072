"""A real OTLP/HTTP trace receiver for e2e/tests/traces.rs.

Listens on 127.0.0.1 (a free port, written to --port-file once listening), accepts
`POST /v1/traces` with `Content-Type: application/x-protobuf`, decodes each body as an
`ExportTraceServiceRequest` with the official `opentelemetry-proto` package, and appends one JSON
line per span to --spans (ids in lower-case hex, attributes as plain values, the resource's
attributes with each span). Every body, as received, is appended to --raw, so that the test can
search the exported bytes themselves. Anything else is answered 404 or 415; a body that does not
decode is 400. Runs until killed.
"""

import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

MAX_BODY = 16 * 1024 * 1024


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def spans_of(request):
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield {
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "name": span.name,
                    "kind": span.kind,
                    "start_unix_nano": span.start_time_unix_nano,
                    "end_unix_nano": span.end_time_unix_nano,
                    "attributes": attributes(span.attributes),
                    "events": [e.name for e in span.events],
                    "status": {"code": span.status.code, "message": span.status.message},
                    "scope": scope_spans.scope.name,
                    "resource": resource,
                }


class Receiver(BaseHTTPRequestHandler):
    lock = threading.Lock()
    spans_path = None
    raw_path = None

    def answer(self, status, body=b"", content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if self.path != "/v1/traces":
            return self.answer(404, b"only POST /v1/traces is served here")
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/x-protobuf":
            return self.answer(415, b"expected application/x-protobuf")
        length = int(self.headers.get("Content-Length", "0"))
        if length > MAX_BODY:
            return self.answer(413, b"too large")
        body = self.rfile.read(length)
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception as e:  # noqa: BLE001 - any decode failure is the client's
            return self.answer(400, f"not an ExportTraceServiceRequest: {e}".encode())
        lines = "".join(json.dumps(s) + "\n" for s in spans_of(request))
        with self.lock:
            with open(self.raw_path, "ab") as raw:
                raw.write(body)
            with open(self.spans_path, "a", encoding="utf-8") as spans:
                spans.write(lines)
        self.answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", required=True)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    Receiver.spans_path, Receiver.raw_path = args.spans, args.raw
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
