#!/usr/bin/env python3
"""Answer latency of an authoritative DNS server at a modest, steady rate (the DNS
benchmark's latency figure; the throughput figure comes from dnsperf).

One query at a time over UDP: every 1/RATE s (on a fixed schedule, not after the
previous answer) it sends `NAME A` with a fresh ID from a fresh port, waits up to
TIMEOUT s for the answer with that ID, and checks it: NOERROR, AA, and the A RRset is
exactly the expected addresses (any order). Prints key=value lines:

  probe_sent= probe_answered= probe_timeouts= probe_wrong=
  probe_p50_ms= probe_p90_ms= probe_p99_ms= probe_max_ms= probe_mean_ms=

and, for wrong answers, up to three `probe_wrong_example=` lines.

With --watch, it times a change instead: it asks every INTERVAL s (one query at a time,
TIMEOUT each) until an answer (NOERROR, AA) has exactly the addresses ADDRs, and prints
`watch_s=` (seconds from --since, a Unix time such as `date +%s.%N` gives, to the
arrival of that answer), `watch_polls=`, `watch_timeouts=` and `watch_other=` (answers
that were neither the old set nor the new one, with up to three `watch_other_example=`).

Usage: dnsprobe.py SERVER NAME ADDR[,ADDR...] [--rate 100] [--count 1000] [--timeout 1]
       dnsprobe.py SERVER NAME ADDR[,ADDR...] --watch --since T [--interval 0.02]
                   [--old ADDR[,ADDR...]] [--limit 60]
"""
import argparse
import os
import socket
import statistics
import struct
import time


def query(qid, name):
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)  # RD=0: we ask an authority
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)


def skip_name(msg, i):
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n


def check(msg, qid, want):
    """None if `msg` is the right answer to query `qid`, else what is wrong."""
    got = addresses(msg, qid)
    if isinstance(got, str):
        return got
    if sorted(got) != sorted(want):
        return "addresses %s" % ",".join(got)
    return None


def addresses(msg, qid):
    """The A records of the answer `msg` to query `qid`, or what is wrong with it."""
    if len(msg) < 12:
        return "short"
    rid, flags, qd, an, _ns, _ar = struct.unpack(">HHHHHH", msg[:12])
    if rid != qid:
        return "id"
    if not flags & 0x8000 or not flags & 0x0400:
        return "flags %#06x (want QR and AA)" % flags
    if flags & 0x000F:
        return "rcode %d" % (flags & 0x000F)
    i = 12
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    got = []
    for _ in range(an):
        i = skip_name(msg, i)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", msg[i : i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            got.append(socket.inet_ntoa(msg[i : i + 4]))
        i += rdlen
    return got


def ask(server, name, timeout):
    """One query; (A records or what was wrong, or None on a timeout, arrival time)."""
    qid = struct.unpack(">H", os.urandom(2))[0]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    s.connect((server, 53))
    msg = query(qid, name)
    s.send(msg)
    try:
        while True:
            ans = s.recv(1500)
            if len(ans) >= 2 and ans[:2] == msg[:2]:
                return addresses(ans, qid), time.time()
    except socket.timeout:
        return None, time.time()
    finally:
        s.close()


def watch(a, want):
    old = sorted(a.old.split(",")) if a.old else None
    polls = timeouts = 0
    other = []
    done = None
    while done is None:
        got, at = ask(a.server, a.name, a.timeout)
        polls += 1
        if got is None:
            timeouts += 1
        elif isinstance(got, list) and sorted(got) == sorted(want):
            done = "%.3f" % (at - a.since)
        elif not (isinstance(got, list) and sorted(got) == old):
            other.append(got if isinstance(got, str) else ",".join(got) or "(none)")
        if done is None and at - a.since > a.limit:
            done = "-"
        if done is None:
            time.sleep(a.interval)
    print("watch_s=%s" % done)
    print("watch_polls=%d" % polls)
    print("watch_timeouts=%d" % timeouts)
    print("watch_other=%d" % len(other))
    for o in other[:3]:
        print("watch_other_example=%s" % o)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("name")
    ap.add_argument("addrs")
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--watch", action="store_true")
    ap.add_argument("--since", type=float, default=None)
    ap.add_argument("--old", default=None)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--limit", type=float, default=60.0)
    a = ap.parse_args()
    want = a.addrs.split(",")
    if a.watch:
        if a.since is None:
            a.since = time.time()
        watch(a, want)
        return

    rtts, timeouts, wrong = [], 0, []
    period = 1.0 / a.rate
    start = time.perf_counter()
    for k in range(a.count):
        due = start + k * period
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        qid = struct.unpack(">H", os.urandom(2))[0]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(a.timeout)
        s.connect((a.server, 53))
        msg = query(qid, a.name)
        t0 = time.perf_counter()
        s.send(msg)
        while True:
            try:
                ans = s.recv(1500)
            except socket.timeout:
                timeouts += 1
                break
            if len(ans) >= 2 and ans[:2] == msg[:2]:
                rtts.append(time.perf_counter() - t0)
                err = check(ans, qid, want)
                if err:
                    wrong.append(err)
                break
        s.close()

    def pct(p):
        if not rtts:
            return "-"
        xs = sorted(rtts)
        return "%.3f" % (1000 * xs[min(len(xs) - 1, int(p / 100 * len(xs)))])

    print("probe_sent=%d" % a.count)
    print("probe_answered=%d" % len(rtts))
    print("probe_timeouts=%d" % timeouts)
    print("probe_wrong=%d" % len(wrong))
    for w in wrong[:3]:
        print("probe_wrong_example=%s" % w)
    print("probe_p50_ms=%s" % pct(50))
    print("probe_p90_ms=%s" % pct(90))
    print("probe_p99_ms=%s" % pct(99))
    print("probe_max_ms=%s" % ("%.3f" % (1000 * max(rtts)) if rtts else "-"))
    print("probe_mean_ms=%s" % ("%.3f" % (1000 * statistics.mean(rtts)) if rtts else "-"))


if __name__ == "__main__":
    main()
