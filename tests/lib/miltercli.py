#!/usr/bin/python3
"""miltercli.py -- the MTA side of the milter protocol (version 6), stdlib only.

Debian 12's miltertest (OpenDKIM 2.11.0~beta2) overflows a 1 KiB stack buffer
when a filter replaces the body with more than ~1 KiB (OpenDKIM issue #66),
so every signing scenario, where the body is replaced by a multipart/signed
entity, is driven by this client instead.  It also rebuilds the message the
way an MTA would (header edits applied, body replaced), so the result can be
checked with tests/lib/verify.sh.

usage: miltercli.py --socket inet:PORT@HOST|unix:PATH [--client-ip IP]
           [--client-host NAME] [--helo NAME] [--auth USER] [--mail-from ADDR]
           [--rcpt ADDR] [--qid QID] [--chunk N] [--timeout S]
           MESSAGE[=OUT] ...

With several --rcpt, each RCPT verdict is printed as mN.rcptK=ADDR RESULT
(accepted, reject, ...); the message goes on while one recipient is left.
Each MESSAGE is a file (any line ends; sent with CRLF) sent as one
transaction on the same connection; "abort:FILE" sends it up to the end of
the body and then aborts.  The envelope sender is the From address unless
--mail-from is given.  For message number N it prints key=value lines:
  mN.stage=mailfrom|rcpt|header|eoh|body|eom|abort   where the verdict came
  mN.result=continue|accept|reject|tempfail|discard|replycode|none
  mN.reply=550 5.7.1 text          (with replycode)
  mN.bodychange=0|1
  mN.hdrdel=NAME                   one line per deleted header
  mN.hdrchg=NAME: VALUE            one line per changed header
  mN.hdradd=NAME: VALUE            one line per added header
  mN.hdrins=INDEX NAME: VALUE      one line per inserted header
  mN.other=CODE                    any other modification
and writes the resulting message (CRLF) to OUT if given.  Also prints
negotiated.actions=0x.. and negotiated.protocol=0x.. .  Exit status: 0 when
the protocol ran to the end, 1 on a protocol or connection error, 2 on usage.
"""

import argparse
import email.utils
import socket
import struct
import sys

# protocol step flags (mfdef.h)
P_NOCONNECT, P_NOHELO, P_NOMAIL, P_NORCPT = 0x1, 0x2, 0x4, 0x8
P_NOBODY, P_NOHDRS, P_NOEOH, P_NR_HDR = 0x10, 0x20, 0x40, 0x80
P_NOUNKNOWN, P_NODATA, P_SKIP, P_RCPT_REJ = 0x100, 0x200, 0x400, 0x800
P_NR_CONN, P_NR_HELO, P_NR_MAIL, P_NR_RCPT = 0x1000, 0x2000, 0x4000, 0x8000
P_NR_DATA, P_NR_UNKN, P_NR_EOH, P_NR_BODY = 0x10000, 0x20000, 0x40000, 0x80000
P_HDR_LEADSPC = 0x100000
MTA_PROTOCOL = 0x1FFFFF
MTA_ACTIONS = 0x1FF

RESULTS = {b"c": "continue", b"a": "accept", b"r": "reject", b"t": "tempfail",
           b"d": "discard", b"y": "replycode", b"s": "skip"}


class ProtocolError(Exception):
    pass


class Milter:
    def __init__(self, spec, timeout):
        if spec.startswith("inet:"):
            port, _, host = spec[5:].partition("@")
            self.sock = socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout)
        elif spec.startswith("unix:") or spec.startswith("local:"):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(timeout)
            self.sock.connect(spec.split(":", 1)[1])
        else:
            raise ProtocolError("unknown socket spec %r" % spec)
        self.actions = 0
        self.protocol = 0

    def send(self, cmd, data=b""):
        self.sock.sendall(struct.pack(">I", len(data) + 1) + cmd + data)

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ProtocolError("filter closed the connection")
            buf += chunk
        return buf

    def recv(self):
        (length,) = struct.unpack(">I", self._read(4))
        if length < 1 or length > 64 * 1024 * 1024:
            raise ProtocolError("bad packet length %d" % length)
        data = self._read(length)
        return data[:1], data[1:]

    def negotiate(self):
        self.send(b"O", struct.pack(">III", 6, MTA_ACTIONS, MTA_PROTOCOL))
        cmd, data = self.recv()
        if cmd != b"O" or len(data) < 12:
            raise ProtocolError("bad negotiation reply %r" % cmd)
        _, self.actions, self.protocol = struct.unpack(">III", data[:12])

    def has(self, flag):
        return bool(self.protocol & flag)

    def reply(self):
        """Reads until a verdict; returns (code, data)."""
        while True:
            cmd, data = self.recv()
            if cmd == b"p":  # progress
                continue
            return cmd, data


def nul(*parts):
    return b"".join(p + b"\0" for p in parts)


def split_message(data):
    """(headers as [name, value] with folds as LF, body) of CRLF data.  A
    message whose first line is not a header field has no header at all."""
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    first = data.split(b"\r\n", 1)[0]
    if b":" not in first or first[:1] in (b" ", b"\t"):
        return [], data
    i = data.find(b"\r\n\r\n")
    head, body = (data, b"") if i < 0 else (data[: i + 2], data[i + 4:])
    headers = []
    for line in head.split(b"\r\n"):
        if not line:
            continue
        if (line[:1] in (b" ", b"\t") or b":" not in line) and headers:
            headers[-1][1] += b"\n" + line
        else:
            name, value = line.split(b":", 1)
            headers.append([name, value])
    return headers, body


def run_message(m, out, path, idx, args, abort):
    pre = "m%d." % idx
    data = open(path, "rb").read()
    headers, body = split_message(data)
    sender = args.mail_from
    if not sender:
        for name, value in headers:
            if name.strip().lower() == b"from":
                sender = email.utils.parseaddr(value.decode("latin-1").replace("\n", ""))[1]
                break
    state = {"stage": "none", "result": "none"}

    def verdict(stage, nr_flag=0):
        state["stage"] = stage
        if nr_flag and m.has(nr_flag):
            state["result"] = "continue"
            return True
        code, rdata = m.reply()
        state["result"] = RESULTS.get(code, "unexpected-%r" % code)
        if code == b"y":
            out.append(pre + "reply=" + rdata.rstrip(b"\0").decode("latin-1"))
        return code == b"c"

    macros = [b"i", (args.qid or "MCLIQ%04d" % idx).encode()]
    if args.auth:
        macros += [b"{auth_type}", b"PLAIN", b"{auth_authen}", args.auth.encode()]
    m.send(b"D", b"M" + nul(*macros))
    mods = []
    ended = False
    if not m.has(P_NOMAIL):
        m.send(b"M", nul(("<%s>" % (sender or "")).encode()))
        ended = not verdict("mailfrom", P_NR_MAIL)
    if not ended and not m.has(P_NORCPT):
        # like an MTA: a refused recipient is dropped, the message goes on
        # while at least one recipient is left
        taken = 0
        for k, rcpt in enumerate(args.rcpt or ["someone@example.org"], 1):
            m.send(b"D", b"R" + nul(b"{rcpt_addr}", rcpt.encode()))
            m.send(b"R", nul(("<%s>" % rcpt).encode()))
            if verdict("rcpt", P_NR_RCPT):
                taken += 1
                out.append(pre + "rcpt%d=%s accepted" % (k, rcpt))
            else:
                out.append(pre + "rcpt%d=%s %s" % (k, rcpt, state["result"]))
        ended = taken == 0
    if not ended and not m.has(P_NODATA):
        m.send(b"T")
        ended = not verdict("data", P_NR_DATA)
    if not ended and not m.has(P_NOHDRS):
        for name, value in headers:
            v = value.replace(b"\r\n", b"\n")
            if not m.has(P_HDR_LEADSPC):
                v = v.lstrip(b" \t")
            m.send(b"L", nul(name, v))
            if not verdict("header", P_NR_HDR):
                ended = True
                break
    if not ended and not m.has(P_NOEOH):
        m.send(b"N")
        ended = not verdict("eoh", P_NR_EOH)
    if not ended and not m.has(P_NOBODY):
        for pos in range(0, len(body), args.chunk):
            m.send(b"B", body[pos: pos + args.chunk])
            if not verdict("body", P_NR_BODY):
                ended = True
                break
    newbody = None
    if not ended and abort:
        m.send(b"A")
        state["stage"], state["result"] = "abort", "none"
        ended = True
    if not ended:
        m.send(b"E")
        state["stage"] = "eom"
        while True:
            cmd, rdata = m.reply()
            if cmd in RESULTS:
                state["result"] = RESULTS[cmd]
                if cmd == b"y":
                    out.append(pre + "reply=" + rdata.rstrip(b"\0").decode("latin-1"))
                break
            mods.append((cmd, rdata))
    # apply the modifications the way an MTA does
    hdrs = [[n, v] for n, v in headers]
    for cmd, rdata in mods:
        if cmd == b"b":
            newbody = (newbody or b"") + rdata
        elif cmd in (b"h", b"m", b"i"):
            index = 0
            if cmd in (b"m", b"i"):
                (index,) = struct.unpack(">I", rdata[:4])
                rdata = rdata[4:]
            parts = rdata.split(b"\0")
            name, value = parts[0], parts[1] if len(parts) > 1 else b""
            shown = (name + b": " + value).decode("latin-1").replace("\r", "").replace("\n", "\\n")
            if cmd == b"h":
                hdrs.append([name, value])
                out.append(pre + "hdradd=" + shown)
            elif cmd == b"i":
                hdrs.insert(min(index, len(hdrs)), [name, value])
                out.append(pre + "hdrins=%d %s" % (index, shown))
            else:
                seen = 0
                hit = None
                for k, (hn, _) in enumerate(hdrs):
                    if hn.strip().lower() == name.lower():
                        seen += 1
                        if seen == max(index, 1):
                            hit = k
                            break
                if value == b"":
                    out.append(pre + "hdrdel=" + name.decode("latin-1"))
                    if hit is not None:
                        del hdrs[hit]
                else:
                    out.append(pre + "hdrchg=" + shown)
                    if hit is not None:
                        hdrs[hit][1] = value
                    else:
                        hdrs.append([name, value])
        else:
            out.append(pre + "other=" + cmd.decode("latin-1"))
    out.append(pre + "bodychange=%d" % (1 if newbody is not None else 0))
    out.append(pre + "stage=" + state["stage"])
    out.append(pre + "result=" + state["result"])
    return hdrs, (newbody if newbody is not None else body), mods


def render(hdrs, body, m):
    lines = []
    for name, value in hdrs:
        v = value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if not v.startswith((b" ", b"\t")) and not m.has(P_HDR_LEADSPC):
            v = b" " + v
        lines.append(name + b":" + v + b"\r\n")
    return b"".join(lines) + b"\r\n" + body


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--client-ip", default="127.0.0.1")
    ap.add_argument("--client-host", default="client.test")
    ap.add_argument("--helo", default="client.test")
    ap.add_argument("--auth")
    ap.add_argument("--mail-from")
    ap.add_argument("--rcpt", action="append",
                    help="envelope recipient (repeatable; default "
                         "someone@example.org)")
    ap.add_argument("--qid")
    ap.add_argument("--chunk", type=int, default=65535)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("messages", nargs="+")
    args = ap.parse_args()
    out = []
    rc = 0
    try:
        m = Milter(args.socket, args.timeout)
        m.negotiate()
        out.append("negotiated.actions=0x%x" % m.actions)
        out.append("negotiated.protocol=0x%x" % m.protocol)
        m.send(b"D", b"C" + nul(b"j", b"mail.banjarkota.go.id", b"{daemon_name}", b"smtpd",
                                 b"{client_addr}", args.client_ip.encode()))
        if not m.has(P_NOCONNECT):
            if ":" in args.client_ip:
                fam = b"6"
            else:
                fam = b"4"
            m.send(b"C", args.client_host.encode() + b"\0" + fam +
                   struct.pack(">H", 25025) + args.client_ip.encode() + b"\0")
            if not m.has(P_NR_CONN):
                code, _ = m.reply()
                out.append("connect.result=" + RESULTS.get(code, repr(code)))
                if code != b"c":
                    print("\n".join(out))
                    return 0
        if not m.has(P_NOHELO):
            m.send(b"H", nul(args.helo.encode()))
            if not m.has(P_NR_HELO):
                m.reply()
        for idx, spec in enumerate(args.messages, 1):
            abort = spec.startswith("abort:")
            if abort:
                spec = spec[6:]
            path, _, outpath = spec.partition("=")
            hdrs, body, _ = run_message(m, out, path, idx, args, abort)
            if outpath:
                with open(outpath, "wb") as f:
                    f.write(render(hdrs, body, m))
        m.send(b"Q")
        m.sock.close()
    except (OSError, ProtocolError, struct.error) as e:
        out.append("error=%s" % e)
        rc = 1
    print("\n".join(out))
    return rc


if __name__ == "__main__":
    sys.exit(main())
