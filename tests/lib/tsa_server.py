#!/usr/bin/env python3
"""A loopback RFC 3161 TSA for the tests: `openssl ts -reply` behind HTTP.

Usage: tsa_server.py CONF PORTFILE [TLSCERT TLSKEY]

Listens on 127.0.0.1, an ephemeral port written to PORTFILE once it
accepts; with TLSCERT and TLSKEY (PEM) also over HTTPS, on a second
port written as the second line.  CONF is an openssl ts configuration; the path of a POST picks
the answer:

  /tsa/SECTION     the request answered by `openssl ts -reply` with the
                   TSA of SECTION (application/timestamp-reply)
  /replay          the last answer of /tsa/... again (a stale nonce)
  /otherdigest     /tsa/good, after one bit of the imprint was flipped
  /hang            reads the request, then answers nothing for 60 s
  /garbage         200, text/html that is no TimeStampResp
  /status500       HTTP 500
  /empty           200 with no body
  /rejecttext      a rejection made here (not by openssl), its text with
                   a line break and a control character in it
  /big             200 with 1 MiB (Content-Length given)
  /bigchunked      200 with 1 MiB, chunked (no length known in advance)
  /redirect/good   307 to /tsa/good
  /redirect/ftp    302 to ftp://127.0.0.1:1/tsa
  /redirect/file   302 to file:///etc/passwd
  /loop            302 to /loop, for ever
"""
import http.server
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time

CONF = sys.argv[1]
last = {"reply": b""}
# openssl ts -reply reads and rewrites its serial file: one at a time
signing = threading.Lock()


def ts_reply(section, query):
    with tempfile.TemporaryDirectory() as d:
        q = os.path.join(d, "q.tsq")
        r = os.path.join(d, "r.tsr")
        with open(q, "wb") as f:
            f.write(query)
        with signing:
            subprocess.run(["openssl", "ts", "-reply", "-config", CONF,
                            "-section", section, "-queryfile", q, "-out", r],
                           check=True, stdout=subprocess.DEVNULL)
        with open(r, "rb") as f:
            return f.read()


def flip_imprint(query):
    # the SHA-256 imprint: OCTET STRING of 32 after the algorithm
    i = query.index(b"\x04\x20")
    b = bytearray(query)
    b[i + 2] ^= 1
    return bytes(b)


def der(tag, content):
    n = len(content)
    if n < 128:
        return bytes([tag, n]) + content
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(ln)]) + ln + content


def rejection(text):
    # TimeStampResp { PKIStatusInfo { rejection(2), PKIFreeText } }
    free_text = der(0x30, der(0x0C, text.encode()))
    return der(0x30, der(0x30, der(0x02, b"\x02") + free_text))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("tsa_server: " + (fmt % args) + "\n")

    def send(self, code, body, ctype="application/timestamp-reply",
             extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        query = self.rfile.read(n)
        p = self.path
        if p.startswith("/tsa/"):
            reply = ts_reply(p[5:], query)
            last["reply"] = reply
            self.send(200, reply)
        elif p == "/replay":
            self.send(200, last["reply"])
        elif p == "/otherdigest":
            self.send(200, ts_reply("good", flip_imprint(query)))
        elif p == "/hang":
            time.sleep(60)
        elif p == "/garbage":
            self.send(200, b"<html>Service Unavailable</html>\n",
                      "text/html")
        elif p == "/empty":
            self.send(200, b"")
        elif p == "/rejecttext":
            self.send(200, rejection("no\r\nForged: log line\x1b[0m"))
        elif p == "/status500":
            self.send(500, b"internal error\n", "text/plain")
        elif p == "/big":
            self.send(200, b"\0" * (1 << 20))
        elif p == "/bigchunked":
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"\0" * 65536
            for _ in range(16):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        elif p.startswith("/redirect/"):
            to = {"good": "/tsa/good",
                  "ftp": "ftp://127.0.0.1:1/tsa",
                  "file": "file:///etc/passwd"}[p[10:]]
            self.send(307 if p.endswith("good") else 302, b"", "text/plain",
                      {"Location": to})
        elif p == "/loop":
            self.send(302, b"", "text/plain", {"Location": "/loop"})
        else:
            self.send(404, b"no such path\n", "text/plain")


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    ports = "%d\n" % srv.server_address[1]
    if len(sys.argv) > 4:
        tls = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        tls.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        threading.Thread(target=tls.serve_forever, daemon=True).start()
        ports += "%d\n" % tls.server_address[1]
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "w") as f:
        f.write(ports)
    os.rename(tmp, sys.argv[2])
    srv.serve_forever()


if __name__ == "__main__":
    main()
