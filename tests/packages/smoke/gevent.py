import gevent
import gevent.socket
from gevent.server import StreamServer
from gevent.core import loop

# the compiled event loop (libev by default) and greenlet switching
assert type(gevent.get_hub().loop).__module__.startswith("gevent.libev"), gevent.get_hub().loop
order = []
gevent.joinall([gevent.spawn(lambda i=i: (gevent.sleep(0.01 * (3 - i)), order.append(i))) for i in range(3)])
assert order == [2, 1, 0], order


def echo(sock, _address):
    sock.sendall(sock.recv(64).upper())
    sock.close()


server = StreamServer(("127.0.0.1", 0), echo)
server.start()
client = gevent.socket.create_connection(("127.0.0.1", server.server_port))
client.sendall(b"ping")
assert client.recv(64) == b"PING"
server.stop()
