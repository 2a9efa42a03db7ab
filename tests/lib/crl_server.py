#!/usr/bin/env python3
"""A loopback CRL distribution point for the tests (smimectl crl fetch).

Usage: crl_server.py DIR PORTFILE LOG

Listens on 127.0.0.1, an ephemeral port written to PORTFILE once it
accepts.  Every GET is logged to LOG, one line:
"GET PATH ims=<If-Modified-Since or -> status=CODE".  Paths:

  /NAME        the file DIR/NAME (any name without "/"), 200 with
               Last-Modified (the file's mtime), or 304 when the request's
               If-Modified-Since is not older than that
  /missing     404 (as is any file that is not there)
  /hang        answers nothing for 60 s (past any client timeout)
  /garbage     200, text/html that is no CRL
"""
import email.utils
import http.server
import os
import sys
import threading
import time

DIR, PORTFILE, LOG = sys.argv[1], sys.argv[2], sys.argv[3]
log_lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("crl_server: " + (fmt % args) + "\n")

    def note(self, code):
        ims = self.headers.get("If-Modified-Since") or "-"
        with log_lock, open(LOG, "a") as f:
            f.write("GET %s ims=%s status=%d\n" % (self.path, ims, code))

    def send(self, code, body, ctype="application/pkix-crl", extra=None):
        self.note(code)
        fields = {"Content-Type": ctype, "Content-Length": str(len(body))}
        fields.update(extra or {})
        self.send_response(code)
        for name, value in fields.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        p = self.path
        if p == "/hang":
            self.note(0)
            time.sleep(60)
            return
        if p == "/garbage":
            self.send(200, b"<html>Service Unavailable</html>\n",
                      "text/html")
            return
        name = p[1:]
        path = os.path.join(DIR, name)
        if not name or "/" in name or name.startswith(".") or \
                not os.path.isfile(path):
            self.send(404, b"no such CRL\n", "text/plain")
            return
        mtime = int(os.stat(path).st_mtime)
        lm = {"Last-Modified": email.utils.formatdate(mtime, usegmt=True)}
        ims = self.headers.get("If-Modified-Since")
        if ims:
            try:
                since = email.utils.parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError):
                since = None
            if since is not None and mtime <= since:
                self.send(304, b"", "application/pkix-crl", lm)
                return
        with open(path, "rb") as f:
            self.send(200, f.read(), "application/pkix-crl", lm)


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    tmp = PORTFILE + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, PORTFILE)
    srv.serve_forever()


if __name__ == "__main__":
    main()
