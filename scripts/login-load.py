#!/usr/bin/env python3
"""Load generators for scripts/bench-login.sh (no dependencies beyond Python's standard library).

  login-load.py auth SOCKET SERVICE USERS_FILE PROCS SECONDS
      Dovecot's auth-client protocol (what Postfix and Exim speak to Dovecot for SMTP AUTH): PROCS
      processes, one connection each, `AUTH PLAIN` for the users of USERS_FILE (user<TAB>password
      lines) in turn, for SECONDS.
  login-load.py serve SOCKET USERS_FILE PROCS SECONDS
      breach-audit serve's own protocol, one connection per request, as the Lua hook does.

Prints one JSON object: requests, per_s, p50_us, p99_us, failures.
"""
import base64
import json
import multiprocessing as mp
import os
import socket
import sys
import time


def read_users(path):
    out = []
    with open(path, "rb") as f:
        for line in f:
            u, p = line.rstrip(b"\n").split(b"\t", 1)
            out.append((u, p))
    return out


def auth_worker(path, service, users, secs, q):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
    buf = b""
    while b"DONE\n" not in buf:
        buf += s.recv(65536)
    rest = buf.split(b"DONE\n", 1)[1]
    lat, fails, rid = [], 0, 0
    end = time.perf_counter() + secs
    while time.perf_counter() < end:
        for u, p in users:
            rid += 1
            resp = base64.b64encode(b"\0" + u + b"\0" + p)
            t = time.perf_counter()
            s.sendall(b"AUTH\t%d\tPLAIN\tservice=%s\tnologin\tresp=%s\n" % (rid, service, resp))
            while b"\n" not in rest:
                rest += s.recv(65536)
            line, rest = rest.split(b"\n", 1)
            lat.append(time.perf_counter() - t)
            if not line.startswith(b"OK\t"):
                fails += 1
            if time.perf_counter() >= end:
                break
    q.put((lat, fails))


def serve_worker(path, users, secs, q):
    lat, fails = [], 0
    end = time.perf_counter() + secs
    while time.perf_counter() < end:
        for u, p in users:
            t = time.perf_counter()
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.sendall(b"BA1\tsmtp\t%s\t%s\n" % (u, p.hex().encode()))
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = s.recv(256)
                if not chunk:
                    break
                reply += chunk
            s.close()
            lat.append(time.perf_counter() - t)
            if not (reply.startswith(b"BA1\tallow") or reply.startswith(b"BA1\trefuse")):
                fails += 1
            if time.perf_counter() >= end:
                break
    q.put((lat, fails))


def main():
    kind = sys.argv[1]
    q = mp.Queue()
    if kind == "auth":
        path, service, users_file, procs, secs = sys.argv[2], sys.argv[3].encode(), sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
        users = read_users(users_file)
        ps = [mp.Process(target=auth_worker, args=(path, service, users, secs, q)) for _ in range(procs)]
    else:
        path, users_file, procs, secs = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        users = read_users(users_file)
        ps = [mp.Process(target=serve_worker, args=(path, users, secs, q)) for _ in range(procs)]
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    lat, fails = [], 0
    for _ in ps:
        l, f = q.get()
        lat += l
        fails += f
    for p in ps:
        p.join()
    wall = time.perf_counter() - t0
    lat.sort()
    pick = lambda f: round(lat[min(len(lat) - 1, int(f * len(lat)))] * 1e6, 1) if lat else None
    print(json.dumps({"requests": len(lat), "per_s": round(len(lat) / max(secs, 1e-9)),
                      "p50_us": pick(0.50), "p99_us": pick(0.99), "failures": fails,
                      "wall_s": round(wall, 2)}))


if __name__ == "__main__":
    main()
