from concurrent import futures

import grpc


def echo(request, context):
    return request.upper()


handler = grpc.method_handlers_generic_handler(
    "smoke.Echo", {"Call": grpc.unary_unary_rpc_method_handler(echo)}
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((handler,))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    call = channel.unary_unary("/smoke.Echo/Call")
    assert call(b"ping", timeout=10) == b"PING"
server.stop(None)
