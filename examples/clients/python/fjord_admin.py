"""Fjord's Admin API from Python, with stubs generated from Fjord's own .proto files.

Generate the stubs once (grpcio-tools), then run the example against a member:

    python -m grpc_tools.protoc -I proto/proto --python_out=gen --grpc_python_out=gen fjord/v1/fjord.proto
    PYTHONPATH=gen python examples/clients/python/fjord_admin.py 127.0.0.1:7400 "$(cat ~/.local/share/fjord/dev/admin.token)"

It deploys a function, lists every function page by page, scales the new one and removes it,
printing one line per step. A refusal prints its machine-readable reason (google.rpc.ErrorInfo).
"""

import sys

import grpc
from fjord.v1 import fjord_pb2 as pb
from fjord.v1 import fjord_pb2_grpc as rpc


def error_reason(error):
    """The ErrorInfo reason of a refusal, from the grpc-status-details-bin trailer."""
    from google.rpc import status_pb2, error_details_pb2  # noqa: F401 (googleapis-common-protos, with grpcio-status)

    for key, value in error.trailing_metadata() or []:
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason, dict(info.metadata)
    return None, {}


def main(addr, token, name="from-python"):
    channel = grpc.insecure_channel(addr)
    admin = rpc.AdminStub(channel)
    auth = [("authorization", "Bearer " + token)]

    spec = pb.FunctionSpec(
        name=name,
        command=["/bin/sh", "-c", "exec sleep 3600"],
        memory_mib=64,
        cpu_millis=100,
        timeout_ms=5000,
        concurrency=1,
        max_instances=5,
        scale_to_zero_after_ms=60000,
        target_utilization=0.7,
        labels={"made-by": "python"},
    )
    status = admin.Deploy(pb.DeployRequest(spec=spec), metadata=auth, timeout=10)
    print("deployed %s revision %d" % (status.record.spec.name, status.record.revision))

    names, token_ = [], ""
    pages = 0
    while True:
        page = admin.ListFunctions(
            pb.ListFunctionsRequest(page_size=2, page_token=token_), metadata=auth, timeout=10
        )
        pages += 1
        names.extend(f.record.spec.name for f in page.functions)
        if not page.next_page_token:
            break
        token_ = page.next_page_token
    print("listed %d functions in %d pages: %s" % (len(names), pages, ",".join(names)))

    status = admin.Scale(pb.ScaleRequest(name=name, max_instances=2), metadata=auth, timeout=10)
    print("scaled %s to max %d" % (name, status.record.spec.max_instances))

    admin.RemoveFunction(pb.RemoveFunctionRequest(name=name), metadata=auth, timeout=10)
    print("removed %s" % name)

    try:
        admin.GetFunction(pb.GetFunctionRequest(name=name), metadata=auth, timeout=10)
    except grpc.RpcError as e:
        reason, metadata = error_reason(e)
        print("refused: %s %s %s" % (e.code().name, reason, metadata.get("function", "")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
