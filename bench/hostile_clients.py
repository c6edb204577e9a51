#!/usr/bin/env python3
"""Hostile clients for the "hostile load" benchmark row.

Usage: hostile_clients.py HOST SSH_PORT HTTP_PORT COUNT

Holds COUNT idle TCP connections to the SSH gateway that never send a version
string, and COUNT slow HTTP connections that send one header byte every few
seconds and never finish a request (slowloris). Whatever the server closes is
reopened at once, the way an attacker would keep the pressure on. Prints
"open ssh=N http=N opened=N reopened=N" once a second; runs until killed. Loopback
targets only: the benchmark points it at its own servers.
"""

import resource
import selectors
import socket
import sys
import time

DRIP_EVERY = 3.0  # seconds between header bytes on a slow HTTP connection
REOPEN_PER_PASS = 200  # bound on (re)connects per pass of the loop, so this stays a hold, not a flood
SOURCE = "127.0.0.2"  # the attacker's own loopback address


def main():
    host, ssh_port, http_port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if not host.startswith("127."):
        sys.exit("hostile_clients: loopback targets only")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 2 * count + 256)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    sel = selectors.DefaultSelector()
    ports = {"ssh": ssh_port, "http": http_port}
    open_count = {"ssh": 0, "http": 0}
    pending = {"ssh": count, "http": count}
    reopened = 0
    opened = 0

    def open_one(kind):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # From its own loopback address, as an attacker has its own: the
        # gateway's per-address cap then applies to it, not to the benchmark's
        # legitimate client on 127.0.0.1.
        s.bind((SOURCE, 0))
        s.setblocking(False)
        s.connect_ex((host, ports[kind]))
        sel.register(s, selectors.EVENT_READ, kind)
        open_count[kind] += 1
        if kind == "http":
            try:
                s.send(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            except OSError:
                pass

    last_drip = last_report = time.monotonic()
    while True:
        budget = REOPEN_PER_PASS
        for kind in ("ssh", "http"):
            while pending[kind] > 0 and budget > 0:
                try:
                    open_one(kind)
                except OSError:
                    break
                pending[kind] -= 1
                budget -= 1
                opened += 1
        for key, _ in sel.select(timeout=0.2):
            s, kind = key.fileobj, key.data
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                open_count[kind] -= 1
                pending[kind] += 1
                reopened += 1
        now = time.monotonic()
        if now - last_drip >= DRIP_EVERY:
            last_drip = now
            for key in list(sel.get_map().values()):
                if key.data == "http":
                    try:
                        key.fileobj.send(b"X")
                    except OSError:
                        pass
        if now - last_report >= 1.0:
            last_report = now
            print(f"open ssh={open_count['ssh']} http={open_count['http']} opened={opened} reopened={reopened}", flush=True)


if __name__ == "__main__":
    main()
