#!/usr/bin/env python3
"""Fault injection in front of the test's nginx (the server of record): a plain HTTP/1.1 proxy
that forwards GET /range/XXXXX to nginx and, per range, plays a script of faults first.

Usage: faultproxy.py LISTEN_PORT NGINX_PORT SCRIPT.json
SCRIPT maps a 5-hex prefix to a list of actions, one per request of that range, then pass:
  "500"   answer HTTP 500
  "reset" close the connection with a TCP reset, no answer
  "hang"  never answer (the client's request stays in flight)
  "cut"   answer 200 with the body cut in the middle of a line (a consistent Content-Length)
  "cut*"  "cut" for every request from here on
Prints "ready" when listening.
"""
import http.client
import http.server
import json
import socket
import struct
import sys
import threading
import time

LISTEN, UPSTREAM, SCRIPT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
script = json.load(open(SCRIPT))
lock = threading.Lock()


def next_action(prefix):
    with lock:
        acts = script.get(prefix)
        if not acts:
            return "pass"
        if acts[0] == "cut*":
            return "cut"
        return acts.pop(0)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        prefix = self.path.split("?")[0].rsplit("/", 1)[-1]
        act = next_action(prefix)
        if act == "hang":
            while True:
                time.sleep(3600)
        if act == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if act == "500":
            body = b"oops"
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        up = http.client.HTTPConnection("127.0.0.1", UPSTREAM)
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("if-none-match", "add-padding", "user-agent")}
        up.request("GET", self.path, headers=headers)
        r = up.getresponse()
        body = r.read()
        up.close()
        if act == "cut" and r.status == 200:
            # Ten characters into a line past the middle: a hash cut short (a cut inside a
            # count's digits would still look like a line: shape cannot tell).
            at = body.find(b"\n", len(body) // 2)
            body = body[: at + 11] if at >= 0 else body[:10]
        self.send_response(r.status)
        for k in ("ETag", "Content-Type", "Last-Modified"):
            if r.getheader(k):
                self.send_header(k, r.getheader(k))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if r.status != 304:
            self.wfile.write(body)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


srv = Server(("127.0.0.1", LISTEN), Handler)
print("ready", flush=True)
srv.serve_forever()
