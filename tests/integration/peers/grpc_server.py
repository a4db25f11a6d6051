"""A gRPC server built with PyPI's grpcio (not written for lbx), cleartext HTTP/2 (h2c).

Generic handlers, bytes in and out, no generated code. Every call answers with trailing
metadata `x-server: NAME`, so a test can tell which backend served it.

    lbx.test.Echo/Unary    reverses the request; b"fail" aborts with INVALID_ARGUMENT
    lbx.test.Echo/Stream   request b"COUNT INTERVAL": COUNT messages, INTERVAL seconds apart
    lbx.test.Echo/Collect  client stream: answers b"MESSAGES BYTES"
    lbx.test.Other/Unary   answers b"other"

Run: python3 grpc_server.py PORT NAME   (prints "ready" once serving)
"""

import sys
import time
from concurrent import futures

import grpc

PORT, NAME = int(sys.argv[1]), sys.argv[2]
MARK = (("x-server", NAME),)


def unary(request, context):
    context.set_trailing_metadata(MARK)
    if request == b"fail":
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad input")
    return request[::-1]


def stream(request, context):
    count, interval = request.decode().split()
    for i in range(int(count)):
        yield str(i).encode()
        time.sleep(float(interval))
    context.set_trailing_metadata(MARK)


def collect(requests, context):
    messages = size = 0
    for message in requests:
        messages += 1
        size += len(message)
    context.set_trailing_metadata(MARK)
    return f"{messages} {size}".encode()


def other(request, context):
    context.set_trailing_metadata(MARK)
    return b"other"


echo = grpc.method_handlers_generic_handler(
    "lbx.test.Echo",
    {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Collect": grpc.stream_unary_rpc_method_handler(collect),
    },
)
others = grpc.method_handlers_generic_handler(
    "lbx.test.Other", {"Unary": grpc.unary_unary_rpc_method_handler(other)}
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
server.add_generic_rpc_handlers((echo, others))
server.add_insecure_port(f"127.0.0.1:{PORT}")
server.start()
print("ready", flush=True)
server.wait_for_termination()
