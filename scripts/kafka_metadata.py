"""Exit 0 when a Kafka broker at HOST PORT answers a Metadata request with at least one broker.

Speaks the wire protocol directly (Metadata v4, request header v1) so that readiness does not
depend on any client being built. Used by scripts/kafka.sh while the broker starts.
"""
import socket
import struct
import sys


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    client_id = b"rtfm-ready"
    correlation_id = 7
    header = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    body = struct.pack(">i?", -1, False)  # all topics, no auto-creation
    request = header + body
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.settimeout(2)
        sock.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", recv_exact(sock, 4))[0]
        payload = recv_exact(sock, size)
    got_correlation, _throttle, brokers = struct.unpack(">iii", payload[:12])
    return 0 if got_correlation == correlation_id and brokers >= 1 else 1


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, struct.error):
        sys.exit(1)
