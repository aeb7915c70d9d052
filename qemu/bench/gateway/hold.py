#!/usr/bin/env python3
"""Held connections for the gateway benchmark's memory figure.

  hold.py server ADDR PORT        echo server holding any number of connections
  hold.py client ADDR PORT N URL  opens N connections to ADDR:PORT (through the gateway),
                                  each sends 2 bytes and waits for their echo, then,
                                  while all N are held, fetches URL with curl; finally
                                  checks that every connection is still open. Prints
                                  `opened=N echoed=N alive=N curl=STATUS secs=S` and exits
                                  0 only if all N were opened, echoed and alive and the
                                  curl succeeded.
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


def client(addr, port, n, url):
    t = time.time()
    deadline = t + 120  # for the whole run: a dead gateway must not stall it
    conns = []
    for _ in range(n):
        try:
            conns.append(socket.create_connection((addr, port), 10))
        except OSError as e:
            print("connect %d failed: %s" % (len(conns), e), file=sys.stderr)
            break
        if time.time() > deadline:
            break
    for c in conns:
        try:
            c.sendall(b"hi")
        except OSError:
            pass
    # Wait for every echo at once, for at most 30 s.
    deadline = min(deadline, time.time() + 30)
    sel = selectors.DefaultSelector()
    got = {}
    for c in conns:
        c.setblocking(False)
        sel.register(c, selectors.EVENT_READ)
        got[c] = b""
    echoed = 0
    waiting = len(conns)
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
                echoed += got[c] == b"hi"
    sel.close()
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                        "--max-time", "20", url], capture_output=True, text=True)
    curl = r.stdout.strip() or "failed"
    time.sleep(1)
    alive = 0
    for c in conns:
        c.setblocking(False)
        try:
            if c.recv(1):
                alive += 1  # unexpected bytes, but the connection is open
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    secs = time.time() - t
    print("opened=%d echoed=%d alive=%d curl=%s secs=%.1f" % (len(conns), echoed, alive, curl, secs))
    for c in conns:
        c.close()
    return 0 if len(conns) == echoed == alive == n and curl == "200" else 1


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
