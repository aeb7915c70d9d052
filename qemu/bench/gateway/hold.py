#!/usr/bin/env python3
"""Held connections for the gateway benchmark's memory figure.

  hold.py server ADDR PORT        echo server holding any number of connections
  hold.py client ADDR PORT N URL  opens N connections to ADDR:PORT (through the gateway)
                                  one by one, each checked by an echo of 2 bytes; with all
                                  N held, each echoes again (50 at a time), URL is fetched
                                  with curl, and all N send at once (a burst); finally
                                  every connection must still be open. Prints `opened=
                                  echoed= alive= curl= burst_echoed= burst_secs=
                                  open_ms_first100= open_ms_last100= secs=` (ms per
                                  connection opened and echoed, first and last 100);
                                  exits 0 only if all N were opened, echoed (paced) and
                                  alive. The curl and the burst are reported, not judged.
"""
import resource
import selectors
import socket
import subprocess
import sys
import time

resource.setrlimit(resource.RLIMIT_NOFILE, (16384, 16384))


def server(addr, port):
    sel = selectors.DefaultSelector()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(4096)
    srv.setblocking(False)
    sel.register(srv, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is srv:
                try:
                    c, _ = srv.accept()
                except OSError:
                    continue
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
                continue
            try:
                d = s.recv(4096)
            except OSError:
                d = b""
            if d:
                try:
                    s.send(d)
                except OSError:
                    pass
            else:
                sel.unregister(s)
                s.close()


def echo_all(conns, wait):
    """Sends 2 bytes on each of conns at once and waits up to `wait` s for their echoes:
    how many came back right, and how long it took."""
    t = time.time()
    sel = selectors.DefaultSelector()
    got = {}
    for c in conns:
        try:
            c.sendall(b"hi")
        except OSError:
            continue
        sel.register(c, selectors.EVENT_READ)
        got[c] = b""
    ok = 0
    waiting = len(got)
    deadline = t + wait
    while waiting and time.time() < deadline:
        for key, _ in sel.select(max(0.0, deadline - time.time())):
            c = key.fileobj
            try:
                d = c.recv(2 - len(got[c]))
            except OSError:
                d = b""
            got[c] += d
            if not d or len(got[c]) >= 2:
                sel.unregister(c)
                waiting -= 1
                ok += got[c] == b"hi"
    sel.close()
    return ok, time.time() - t


def client(addr, port, n, url):
    t = time.time()
    conns = []
    stamps = []
    # Open them one by one, each checked by an echo before the next.
    for _ in range(n):
        stamps.append(time.time())
        try:
            c = socket.create_connection((addr, port), 10)
        except OSError as e:
            print("connect %d failed: %s" % (len(conns), e), file=sys.stderr)
            break
        c.setblocking(False)
        conns.append(c)
        if echo_all([c], 10)[0] != 1:
            print("connection %d: no echo within 10 s" % len(conns), file=sys.stderr)
            break
    opened = len(conns)
    stamps.append(time.time())
    # Milliseconds per connection (open + echo) for the first and the last 100 opened.
    k = min(100, opened)
    first = (stamps[k] - stamps[0]) * 1000 / k if k else 0
    last = (stamps[opened] - stamps[opened - k]) * 1000 / k if k else 0
    if opened < n:  # a failure already: don't wait on a gateway that may be gone
        print("opened=%d echoed=- alive=- curl=- burst_echoed=- burst_secs=- open_ms_first100=%.1f "
              "open_ms_last100=%.1f secs=%.1f" % (opened, first, last, time.time() - t))
        return 1
    # All held: each echoes again, 50 at a time.
    echoed = 0
    for i in range(0, len(conns), 50):
        k, _ = echo_all(conns[i:i + 50], 10)
        echoed += k
        if k == 0:
            break
    # A request for another service meanwhile (reported, not judged).
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                        "--max-time", "20", url], capture_output=True, text=True)
    curl = r.stdout.strip() or "failed"
    # All of them at once (reported, not judged): a burst of n small segments.
    burst, burst_secs = echo_all(conns, 20) if conns else (0, 0.0)
    time.sleep(0.5)
    alive = 0
    for c in conns:
        try:
            if c.recv(1):
                alive += 1  # unexpected bytes, but the connection is open
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    print("opened=%d echoed=%d alive=%d curl=%s burst_echoed=%d burst_secs=%.1f open_ms_first100=%.1f "
          "open_ms_last100=%.1f secs=%.1f"
          % (opened, echoed, alive, curl, burst, burst_secs, first, last, time.time() - t))
    for c in conns:
        c.close()
    return 0 if opened == echoed == alive == n else 1


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
