"""gRPC calls through lbx with PyPI's grpcio, over TLS, trusting CA_PEM and sending SNI NAME.

Prints one JSON object per call: method, status code name, details, the response (text or a
list for streams), trailing metadata, and the seconds the call took.

Run: python3 grpc_client.py HOST:PORT CA_PEM NAME
"""

import json
import sys
import time

import grpc

TARGET, CA, NAME = sys.argv[1], sys.argv[2], sys.argv[3]
credentials = grpc.ssl_channel_credentials(root_certificates=open(CA, "rb").read())
channel = grpc.secure_channel(TARGET, credentials, options=(("grpc.ssl_target_name_override", NAME),))


def report(method, call):
    started = time.monotonic()
    try:
        response, result = call()
        status, details = result.code().name, result.details()
        trailers = dict(result.trailing_metadata() or ())
    except grpc.RpcError as error:
        response, status, details = None, error.code().name, error.details()
        trailers = dict(error.trailing_metadata() or ())
    print(
        json.dumps(
            {
                "method": method,
                "status": status,
                "details": details,
                "response": response,
                "trailers": trailers,
                "seconds": round(time.monotonic() - started, 2),
            }
        ),
        flush=True,
    )


def unary(path, payload):
    def call():
        response, result = channel.unary_unary(path).with_call(payload, timeout=30)
        return response.decode(), result

    return call


def stream(count, interval):
    def call():
        responses = channel.unary_stream("/lbx.test.Echo/Stream")(f"{count} {interval}".encode(), timeout=60)
        return [m.decode() for m in responses], responses

    return call


def collect(messages):
    def call():
        response, result = channel.stream_unary("/lbx.test.Echo/Collect").with_call(iter(messages), timeout=30)
        return response.decode(), result

    return call


report("Unary", unary("/lbx.test.Echo/Unary", b"hello"))
report("UnaryFail", unary("/lbx.test.Echo/Unary", b"fail"))
report("Other", unary("/lbx.test.Other/Unary", b"x"))
report("Collect", collect([b"a" * 1000, b"b" * 70000, b"c"] * 20))
report("Stream", stream(40, 0.5))
