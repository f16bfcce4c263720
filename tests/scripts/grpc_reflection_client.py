"""A gRPC client that knows only a control-plane member's address and a token.

It learns Fjord's API through server reflection (grpc.reflection.v1alpha), so it needs no
.proto file, and calls any method with JSON in and JSON out:

    grpc_reflection_client.py ADDR TOKEN services
    grpc_reflection_client.py ADDR TOKEN call fjord.v1.Admin/ListFunctions '{}'
    grpc_reflection_client.py ADDR TOKEN health fjord.v1.Admin

Errors print `error: CODE: details` on stderr and exit with status 1.
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


class BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer TOKEN` to every call, reflection's own included."""

    def __init__(self, token):
        self.token = token

    def _with_token(self, details):
        metadata = list(details.metadata or []) + [("authorization", "Bearer " + self.token)]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._with_token(details), requests)


def connect(addr, token):
    channel = grpc.intercept_channel(grpc.insecure_channel(addr), BearerToken(token))
    database = ProtoReflectionDescriptorDatabase(channel)
    return channel, database, descriptor_pool.DescriptorPool(database)


def call(channel, pool, method, body):
    service_name, method_name = method.split("/")
    service = pool.FindServiceByName(service_name)
    rpc = service.FindMethodByName(method_name)
    request_class = message_factory.GetMessageClass(rpc.input_type)
    response_class = message_factory.GetMessageClass(rpc.output_type)
    request = json_format.Parse(body, request_class())
    stub = channel.unary_unary(
        "/" + method,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_class.FromString,
    )
    response = stub(request, timeout=10)
    return json_format.MessageToDict(response, preserving_proto_field_name=True)


def main(argv):
    addr, token, command = argv[1], argv[2], argv[3]
    channel, database, pool = connect(addr, token)
    try:
        if command == "services":
            for name in sorted(database.get_services()):
                print(name)
        elif command == "call":
            print(json.dumps(call(channel, pool, argv[4], argv[5] if len(argv) > 5 else "{}")))
        elif command == "health":
            answer = call(channel, pool, "grpc.health.v1.Health/Check", json.dumps({"service": argv[4]}))
            print(answer.get("status", "UNKNOWN"))
        else:
            print("error: unknown command " + command, file=sys.stderr)
            return 2
    except grpc.RpcError as e:
        print("error: %s: %s" % (e.code().name, e.details()), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
