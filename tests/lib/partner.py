#!/usr/bin/python3
"""partner.py -- the Python half of tests/lib/partner.sh and of the inbound
end-to-end checks (stdlib only).  Each sub-command prints "# ..."
diagnostics and exits 0 when it worked or the check holds, 1 when not, 2
on usage errors.  Messages are read with every line end made CRLF.

Building a partner's message:
  entity OUT TAG
      The MIME entity the partner writes (7-bit: a quoted-printable
      Indonesian text with non-ASCII letters and a base64 attachment,
      multipart/mixed, boundary "pt-TAG"), CRLF.
  signed ENTITY P7S_DER OUT
      multipart/signed (protocol application/pkcs7-signature, micalg
      sha-256) of ENTITY's exact bytes with the detached signature P7S_DER.
  p7m DER OUT SMIME_TYPE|- CONTENT_TYPE
      An application/(x-)pkcs7-mime entity: CONTENT_TYPE's value with
      smime-type=SMIME_TYPE ("-": none, as older Outlook sends) and
      name=smime.p7m, base64 in 76-column lines.
  mail OUT TAG FROM TO ENTITY
      The message: the partner's headers (From, To, Subject, Date,
      Message-ID <TAG@jabarprov.go.id>, a folded Thread-Topic, X-Mailer,
      MIME-Version) followed by ENTITY (its Content-* header and body).

Checks of what was delivered:
  outer SENT DELIVERED
      Every header field of SENT that is not Content-* is in DELIVERED, in
      the same order, byte for byte with its folding; DELIVERED has no
      other field except Received, Authentication-Results and Content-*.
  inner ENTITY DELIVERED
      DELIVERED's Content-* fields are ENTITY's (unfolded values equal,
      same order) and its body is ENTITY's body byte for byte.
  no-p7m FILE
      Neither the top-level Content-Type nor any part's is
      application/(x-)pkcs7-mime, and no "smime.p7m" is left.
  stamp FILE AUTHSERV RESULT [REGEX...]
      Exactly one Authentication-Results field of FILE names AUTHSERV (its
      first token), its smime= result is RESULT, and each REGEX (Python re,
      searched in the unfolded value) matches.  Prints the value.
  unchanged SENT DELIVERED AUTHSERV
      DELIVERED is SENT byte for byte except for Received fields Postfix
      put in front and one Authentication-Results field of AUTHSERV added.
  bad KIND OUT [IN]
      Broken input for the bad-input tests.  KIND garbage: OUT is 3000
      random octets (not DER); absurd: a ContentInfo of envelopedData
      whose lengths claim 2 GiB and more than the input holds; deep:
      envelopedData whose content nests 20000 indefinite-length SEQUENCEs;
      truncate: OUT is the message IN with its base64 body cut in the
      middle of a line (a partial quantum, and half the CMS gone); nest:
      OUT is the multipart/mixed entity of a text part and the entity IN
      (an encrypted part inside a multipart).
  p7m-der FILE OUT
      OUT: the DER of FILE's top-level base64 body (an application/
      pkcs7-mime message or entity).
  ar-kept FILE FIELD
      FIELD (a whole "Authentication-Results: ..." line) is in FILE's
      header, byte for byte.
"""

import base64
import re
import sys

from smimecheck_mail import (CRLF, Usage, diag, is_content_header, raw_fields,
                             read_canon, split_head_body, usage)


def wr(path, data):
    with open(path, "wb") as f:
        f.write(data)


def b64lines(data):
    s = base64.b64encode(data)
    return b"".join(s[i:i + 76] + CRLF for i in range(0, len(s), 76))


def cmd_entity(args):
    if len(args) != 2:
        return usage()
    out, tag = args
    text = ("Yth. Bapak/Ibu di Pemerintah Kota Banjarkota,\n\n"
            "Terima kasih atas laporan triwulan III. Kami lampirkan "
            "tanggapan resmi (nomor %s) \u2013 mohon tidak disebarluaskan.\n"
            "Catatan: kolom \u201canggaran\u201d perlu diperbaiki; lihat "
            "lampiran.\n\nSalam hormat,\nMitra Jabar\n" % tag)
    qp = quopri_encode(text.encode("utf-8"))
    att = bytes((i * 7 + len(tag)) & 0xFF for i in range(3000))
    b = ("pt-%s" % tag).encode()
    e = (b"Content-Type: multipart/mixed; boundary=\"" + b + b"\"" + CRLF + CRLF +
         b"--" + b + CRLF +
         b"Content-Type: text/plain; charset=utf-8" + CRLF +
         b"Content-Transfer-Encoding: quoted-printable" + CRLF + CRLF +
         qp + CRLF +
         b"--" + b + CRLF +
         b"Content-Type: application/pdf; name=\"tanggapan.pdf\"" + CRLF +
         b"Content-Disposition: attachment; filename=\"tanggapan.pdf\"" + CRLF +
         b"Content-Transfer-Encoding: base64" + CRLF + CRLF +
         b64lines(att) +
         b"--" + b + b"--" + CRLF)
    wr(out, e)
    return 0


def quopri_encode(data):
    """Quoted-printable of text with LF line ends, CRLF out, lines <= 76."""
    out = []
    for line in data.split(b"\n"):
        cur = b""
        for i, c in enumerate(line):
            ch = bytes([c])
            if c > 126 or c == 61 or (c in (9, 32) and i == len(line) - 1):
                ch = b"=%02X" % c
            if len(cur) + len(ch) > 75:
                out.append(cur + b"=")
                cur = b""
            cur += ch
        out.append(cur)
    return CRLF.join(out)


def cmd_signed(args):
    if len(args) != 3:
        return usage()
    entity = open(args[0], "rb").read()
    der = open(args[1], "rb").read()
    b = b"----=_pt_sig_" + base64.b16encode(der[-9:]).lower()
    if not entity.endswith(CRLF):
        diag("entity does not end with CRLF")
        return 1
    m = (b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";"
         + CRLF + b"\tmicalg=sha-256; boundary=\"" + b + b"\"" + CRLF + CRLF +
         b"This is an S/MIME signed message" + CRLF + CRLF +
         b"--" + b + CRLF + entity + CRLF +
         b"--" + b + CRLF +
         b"Content-Type: application/pkcs7-signature; name=\"smime.p7s\"" + CRLF +
         b"Content-Transfer-Encoding: base64" + CRLF +
         b"Content-Disposition: attachment; filename=\"smime.p7s\"" + CRLF + CRLF +
         b64lines(der) + CRLF + b"--" + b + b"--" + CRLF)
    wr(args[2], m)
    return 0


def cmd_p7m(args):
    if len(args) != 4:
        return usage()
    der = open(args[0], "rb").read()
    st = "" if args[2] == "-" else "; smime-type=%s" % args[2]
    m = (("Content-Type: %s%s; name=\"smime.p7m\"" % (args[3], st)).encode() + CRLF +
         b"Content-Transfer-Encoding: base64" + CRLF +
         b"Content-Disposition: attachment; filename=\"smime.p7m\"" + CRLF + CRLF +
         b64lines(der))
    wr(args[1], m)
    return 0


def cmd_mail(args):
    if len(args) != 5:
        return usage()
    out, tag, frm, to, ent = args
    h = ("From: Mitra Jabar <%s>\r\nTo: %s\r\n"
         "Subject: Tanggapan laporan triwulan III (%s)\r\n"
         "Date: Wed, 02 Dec 2026 09:15:00 +0700\r\n"
         "Message-ID: <%s@jabarprov.go.id>\r\n"
         "Thread-Topic: Tanggapan laporan triwulan III dari Pemerintah Provinsi\r\n"
         "\tJawa Barat untuk Kota Banjarkota\r\n"
         "X-Mailer: partner.sh (%s)\r\n"
         "MIME-Version: 1.0\r\n" % (frm, to, tag, tag, tag)).encode()
    wr(out, h + open(ent, "rb").read())
    return 0


def cmd_outer(args):
    if len(args) != 2:
        return usage()
    sh, _ = split_head_body(read_canon(args[0]))
    dh, _ = split_head_body(read_canon(args[1]))
    want = [raw for n, raw in raw_fields(sh) if not is_content_header(n)]
    got = []
    ok = True
    for n, raw in raw_fields(dh):
        if is_content_header(n) or n == b"authentication-results":
            continue
        if n == b"received" and not got:
            continue  # Postfix's own, in front
        got.append(raw)
    if want != got:
        ok = False
        for i in range(max(len(want), len(got))):
            w = want[i] if i < len(want) else b"(none)"
            g = got[i] if i < len(got) else b"(none)"
            if w != g:
                diag("header %d: sent %r" % (i + 1, w))
                diag("       delivered %r" % g)
                break
    else:
        diag("%d non-Content header fields kept byte for byte, in order" % len(want))
    return 0 if ok else 1


def unfold(raw):
    v = raw.split(b":", 1)[1] if b":" in raw else raw
    return re.sub(rb"\r\n[ \t]", b" ", v).strip()


def cmd_inner(args):
    if len(args) != 2:
        return usage()
    eh, eb = split_head_body(read_canon(args[0]))
    dh, db = split_head_body(read_canon(args[1]))
    want = [(n, unfold(r)) for n, r in raw_fields(eh) if is_content_header(n)]
    got = [(n, unfold(r)) for n, r in raw_fields(dh) if is_content_header(n)]
    ok = True
    if want != got:
        diag("Content-* fields: delivered %r" % got)
        diag("                  entity    %r" % want)
        ok = False
    if eb != db:
        diag("body differs: %d octets delivered, %d in the entity" % (len(db), len(eb)))
        for i in range(min(len(eb), len(db))):
            if eb[i] != db[i]:
                diag("first difference at octet %d: %r / %r" % (i, db[i:i + 40], eb[i:i + 40]))
                break
        ok = False
    if ok:
        diag("the decrypted entity is what the partner wrote, byte for byte")
    return 0 if ok else 1


def cmd_no_p7m(args):
    if len(args) != 1:
        return usage()
    data = read_canon(args[0])
    bad = re.search(rb"(?im)^content-type:[ \t]*application/(x-)?pkcs7-mime", data)
    if bad or b"smime.p7m" in data:
        diag("an application/pkcs7-mime part or smime.p7m is still there")
        return 1
    return 0


def skip_comments(v):
    """v without its leading CFWS (nested comments included)."""
    v = v.lstrip()
    while v.startswith("("):
        depth, i = 0, 0
        while i < len(v):
            if v[i] == "\\":
                i += 1
            elif v[i] == "(":
                depth += 1
            elif v[i] == ")":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        v = v[i + 1:].lstrip()
    return v


def stamps(path, authserv):
    head, _ = split_head_body(read_canon(path))
    out = []
    for n, raw in raw_fields(head):
        if n != b"authentication-results":
            continue
        v = unfold(raw).decode("ascii", "replace")
        m = re.match(r"\s*(\"[^\"]*\"|[^\s;(]+)", skip_comments(v))
        if m and m.group(1).strip('"').rstrip(".").lower() == authserv.lower():
            out.append(v)
    return out


def cmd_stamp(args):
    if len(args) < 3:
        return usage()
    path, authserv, result = args[:3]
    found = stamps(path, authserv)
    if len(found) != 1:
        diag("%d Authentication-Results fields of %s, want one" % (len(found), authserv))
        for v in found:
            diag("  " + v)
        return 1
    v = found[0]
    diag("stamp: " + v)
    ok = True
    m = re.search(r";\s*smime=([a-z]+)", v)
    if not m or m.group(1) != result:
        diag("smime=%s, want %s" % (m.group(1) if m else "(none)", result))
        ok = False
    for rx in args[3:]:
        if not re.search(rx, v):
            diag("no match for %r" % rx)
            ok = False
    return 0 if ok else 1


def cmd_unchanged(args):
    if len(args) != 3:
        return usage()
    sent = read_canon(args[0])
    got = read_canon(args[1])
    sh, sb = split_head_body(sent)
    dh, db = split_head_body(got)
    ok = True
    if sb != db:
        diag("body changed: %d octets sent, %d delivered" % (len(sb), len(db)))
        ok = False
    fields = raw_fields(dh)
    while fields and fields[0][0] == b"received":
        fields.pop(0)
    ours = [i for i, (n, r) in enumerate(fields)
            if n == b"authentication-results" and
            re.match(rb"(?i)authentication-results:\s*" + re.escape(args[2].encode()) + rb"\s*;",
                     r)]
    if len(ours) != 1:
        diag("%d Authentication-Results fields of %s added, want one" % (len(ours), args[2]))
        ok = False
    else:
        del fields[ours[0]]
    if [r for _, r in fields] != [r for _, r in raw_fields(sh)]:
        diag("header changed beyond our stamp")
        for a, b in zip([r for _, r in raw_fields(sh)], [r for _, r in fields]):
            if a != b:
                diag("  sent %r / delivered %r" % (a, b))
                break
        ok = False
    return 0 if ok else 1


def cmd_ar_kept(args):
    if len(args) != 2:
        return usage()
    want = args[1].encode() + CRLF
    fields = raw_fields(split_head_body(read_canon(args[0]))[0])
    if want in [r for _, r in fields]:
        return 0
    diag("not found byte for byte: %r" % want)
    return 1


ENVELOPED = bytes.fromhex("06092a864886f70d010703")


def cmd_bad(args):
    if len(args) < 2:
        return usage()
    kind, out = args[:2]
    if kind == "garbage":
        import os
        wr(out, b"\x17\x03" + os.urandom(2998))
    elif kind == "absurd":
        wr(out, b"\x30\x84\x7f\xff\xff\xff" + ENVELOPED + b"\xa0\x84\x7f\xff\xff\xf0"
           + b"\x30\x88\x7f\xff\xff\xff\xff\xff\xff\xff\x02\x01\x00" + b"\x31\x10" * 64)
    elif kind == "deep":
        wr(out, b"\x30\x80" + ENVELOPED + b"\xa0\x80" + b"\x30\x80" * 20000
           + b"\x00\x00" * 20002)
    elif kind == "truncate" and len(args) == 3:
        head, body = split_head_body(read_canon(args[2]))
        lines = body.split(CRLF)
        keep = lines[: len(lines) // 2]
        keep.append(lines[len(lines) // 2][:37])
        wr(out, head + CRLF + CRLF.join(keep) + CRLF)
    elif kind == "nest" and len(args) == 3:
        b = b"pt-nest"
        wr(out, b"Content-Type: multipart/mixed; boundary=\"" + b + b"\"" + CRLF + CRLF +
           b"--" + b + CRLF + b"Content-Type: text/plain; charset=us-ascii" + CRLF + CRLF +
           b"Lampiran terenkripsi di bawah ini." + CRLF +
           b"--" + b + CRLF + read_canon(args[2]) + b"--" + b + b"--" + CRLF)
    else:
        return usage()
    return 0


def cmd_p7m_der(args):
    if len(args) != 2:
        return usage()
    body = split_head_body(read_canon(args[0]))[1]
    try:
        wr(args[1], base64.b64decode(body.replace(CRLF, b""), validate=True))
    except ValueError as e:
        diag("the body is not base64: %s" % e)
        return 1
    return 0


CMDS = {
    "p7m-der": cmd_p7m_der,
    "bad": cmd_bad,
    "entity": cmd_entity, "signed": cmd_signed, "p7m": cmd_p7m,
    "mail": cmd_mail, "outer": cmd_outer, "inner": cmd_inner,
    "no-p7m": cmd_no_p7m, "stamp": cmd_stamp, "unchanged": cmd_unchanged,
    "ar-kept": cmd_ar_kept,
}


def main(argv):
    if len(argv) < 2 or argv[1] not in CMDS:
        sys.stderr.write("usage: partner.py %s ...\n" % "|".join(CMDS))
        return 2
    try:
        return CMDS[argv[1]](argv[2:])
    except Usage:
        sys.stderr.write("partner.py %s: wrong arguments (see the top of the file)\n" % argv[1])
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
