"""A TCP proxy between the sidecar and RabbitMQ on loopback that can misbehave
the ways networks do, one fault at a time, for every connection through it:

  latency(seconds)  each chunk waits that long before it is passed on
  black_hole()      nothing is passed either way; connections stay open, unread
  cut(direction)    "up" (sidecar → broker) or "down" (broker → sidecar) is dropped
                    (read and discarded, as a lost route would); the other flows
  reset()           every open connection is reset (RST), in the middle of whatever
                    frame it was carrying: half a chunk is passed first
  heal()            back to passing everything

`connections` counts the connections ever accepted (a reconnect shows as +1)."""
import select
import socket
import struct
import threading
import time


class FaultProxy:
    def __init__(self, target_port, host="127.0.0.1"):
        self.target = (host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.mode = "pass"
        self.delay = 0.0
        self.dropped = None  # "up" or "down" while cut
        self.pairs = []      # [(client, server)] open now
        self.connections = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    # ---- faults ----------------------------------------------------------------------
    def latency(self, seconds):
        with self.lock:
            self.mode, self.delay = "latency", seconds

    def black_hole(self):
        with self.lock:
            self.mode = "black_hole"

    def cut(self, direction):
        assert direction in ("up", "down")
        with self.lock:
            self.mode, self.dropped = "cut", direction

    def reset(self):
        """RST on every connection open now, each in the middle of the next chunk it carries
        (half of it is passed first); one that stays idle is reset after a second. Later
        connections pass normally."""
        with self.lock:
            self.mode = "reset"
            doomed = list(self.pairs)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with self.lock:
                if not any(p in self.pairs for p in doomed):
                    break
            time.sleep(0.01)
        with self.lock:
            self.mode = "pass"
            left = [p for p in doomed if p in self.pairs]
            self.pairs = [p for p in self.pairs if p not in left]
        for pair in left:
            for sock in pair:
                _abort(sock)

    def heal(self):
        with self.lock:
            self.mode, self.delay, self.dropped = "pass", 0.0, None

    def close(self):
        self.closed = True
        self.heal()
        self.listener.close()
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for client, server in pairs:
            _abort(client)
            _abort(server)

    # ---- plumbing --------------------------------------------------------------------
    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _abort(client)
                continue
            server.settimeout(None)
            pair = (client, server)
            with self.lock:
                self.pairs.append(pair)
                self.connections += 1
            for direction in ("up", "down"):
                threading.Thread(target=self._pump, args=(pair, direction), daemon=True).start()

    def _state(self):
        with self.lock:
            return self.mode, self.delay, self.dropped

    def _pump(self, pair, direction):
        src, dst = pair if direction == "up" else pair[::-1]
        try:
            while not self.closed:
                mode, delay, dropped = self._state()
                if mode == "black_hole":
                    time.sleep(0.02)  # leave it unread: the sender's buffers fill, as they would
                    continue
                ready, _, _ = select.select([src], [], [], 0.1)
                if not ready:
                    continue
                data = src.recv(65536)
                if not data:
                    break
                mode, delay, dropped = self._state()
                if mode == "cut" and dropped == direction:
                    continue  # lost on the way
                if mode == "reset":
                    dst.sendall(data[: max(1, len(data) // 2)])
                    with self.lock:
                        if pair in self.pairs:
                            self.pairs.remove(pair)
                    _abort(src)
                    _abort(dst)
                    return
                if mode == "latency" and delay > 0:
                    time.sleep(delay)
                dst.sendall(data)
        except (OSError, ValueError):  # reset, or closed under us by reset()
            pass
        # One side ended: end the other as the network would.
        with self.lock:
            if pair in self.pairs:
                self.pairs.remove(pair)
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _abort(s):
    """Close with RST rather than FIN."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
