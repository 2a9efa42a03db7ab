"""smimecheck_signed.py -- the smimecheck.py sub-commands for signed
mail and plain messages: split, is-signed, headers, content, cms,
same-body, from-addr, crlf, refsign (their usage is in smimecheck.py).
"""

import base64
import datetime
import email
import email.utils
import os
import re
import subprocess

from smimecheck_mail import (CRLF, POLICY, diag, header_fields, is_content_header,
                             parse_headers, read_canon, show, split_head_body, usage)

def find_delimiter(body, boundary, start):
    """Position of the next delimiter line "--boundary" at or after start
    (start of body or after a CRLF).  Returns (pos, is_close, line_end) or
    None.  pos is the index of the CRLF before the dashes (or 0)."""
    delim = b"--" + boundary
    pos = start
    while True:
        if pos == 0 and body.startswith(delim):
            p, dash = 0, 0
        else:
            i = body.find(CRLF + delim, pos)
            if i < 0:
                return None
            p, dash = i, i + 2
        rest_start = dash + len(delim)
        eol = body.find(CRLF, rest_start)
        rest = body[rest_start:] if eol < 0 else body[rest_start:eol]
        if rest.startswith(b"--"):
            return (p, True, len(body) if eol < 0 else eol + 2)
        if rest.strip(b" \t") == b"":
            return (p, False, len(body) if eol < 0 else eol + 2)
        pos = rest_start  # "--boundaryX": not our delimiter, keep looking


def save_outer(data, out, name):
    """Writes DATA to OUT/NAME and its header block to OUT/outer.hdr;
    returns the body, the header fields, their lower-case names and the
    parsed header."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    head, body = split_head_body(data)
    with open(os.path.join(out, "outer.hdr"), "wb") as f:
        f.write(head)
    fields = header_fields(head)
    return body, fields, [n for n, _ in fields], parse_headers(head)


def cmd_split(args):
    if len(args) != 2:
        return usage()
    data = read_canon(args[0])
    out = args[1]
    body, fields, names, msg = save_outer(data, out, "signed.eml")
    ok = True
    ctype = msg.get_content_type()
    if ctype != "multipart/signed":
        diag("top-level Content-Type is %s, not multipart/signed" % ctype)
        return 1
    proto = (msg.get_param("protocol") or "").lower()
    if proto != "application/pkcs7-signature":
        diag('protocol parameter is %r, want "application/pkcs7-signature"' % proto)
        ok = False
    micalg = (msg.get_param("micalg") or "").lower()
    if micalg != "sha-256":
        diag("micalg parameter is %r, want sha-256" % micalg)
        ok = False
    if names.count(b"content-type") != 1:
        diag("outer header has %d Content-Type fields" % names.count(b"content-type"))
        ok = False
    if b"mime-version" not in names:
        diag("outer header has no MIME-Version")
        ok = False
    for name, raw in fields:
        if is_content_header(name) and name != b"content-type":
            if name == b"content-transfer-encoding" and raw.split(b":", 1)[1].strip().lower() == b"7bit":
                continue
            diag("outer header still carries %s" % show(raw))
            ok = False
    boundary = msg.get_param("boundary")
    if not boundary:
        diag("multipart/signed without boundary parameter")
        return 1
    boundary = boundary.encode("ascii", "surrogateescape")
    first = find_delimiter(body, boundary, 0)
    if first is None or first[1]:
        diag("no opening delimiter for boundary %r" % boundary)
        return 1
    if first[0] != 0:
        pre = body[: first[0]]
        if pre.strip():
            diag("note: preamble present: %s" % show(pre, 60))
    ent_start = first[2]
    second = find_delimiter(body, boundary, max(ent_start - 2, 0))
    if second is None:
        diag("no second delimiter: signed entity is not closed")
        return 1
    entity = body[ent_start: second[0]]
    with open(os.path.join(out, "entity.bin"), "wb") as f:
        f.write(entity)
    if second[1]:
        diag("only one part inside multipart/signed")
        return 1
    third = find_delimiter(body, boundary, max(second[2] - 2, 0))
    if third is None:
        diag("signature part has no close delimiter")
        ok = False
        sigpart = body[second[2]:]
    else:
        sigpart = body[second[2]: third[0]]
        if not third[1]:
            diag("more than two parts inside multipart/signed")
            ok = False
        else:
            epi = body[third[2]:]
            if epi.strip():
                diag("note: epilogue after the close delimiter: %s" % show(epi, 60))
    shead, sbody = split_head_body(sigpart)
    smsg = parse_headers(shead)
    stype = smsg.get_content_type()
    if stype not in ("application/pkcs7-signature", "application/x-pkcs7-signature"):
        diag("second part is %s, not application/pkcs7-signature" % stype)
        ok = False
    elif stype != "application/pkcs7-signature":
        diag("note: signature part uses %s" % stype)
    cte = (smsg.get("Content-Transfer-Encoding") or "").strip().lower()
    if cte != "base64":
        diag("signature part Content-Transfer-Encoding is %r, want base64" % cte)
        ok = False
    fname = smsg.get_filename() or smsg.get_param("name") or ""
    if fname != "smime.p7s":
        diag("note: signature part file name is %r (smime.p7s expected)" % fname)
    try:
        b64 = re.sub(rb"[ \t\r\n]", b"", sbody)
        der = base64.b64decode(b64, validate=True)
    except (ValueError, TypeError) as e:
        diag("signature part is not valid base64: %s" % e)
        return 1
    with open(os.path.join(out, "p7s.der"), "wb") as f:
        f.write(der)
    # the signed entity must survive any relay
    if not entity:
        diag("signed entity is empty")
        ok = False
    bad = [i for i, c in enumerate(entity) if c == 0 or c > 127]
    if bad:
        diag("signed entity has %d bytes that are NUL or 8-bit (first at offset %d: %s)"
             % (len(bad), bad[0], show(entity[max(0, bad[0] - 20): bad[0] + 20])))
        ok = False
    lines = entity.split(CRLF)
    for no, line in enumerate(lines, 1):
        if len(line) > 998:
            diag("signed entity line %d is %d octets long (> 998)" % (no, len(line)))
            ok = False
            break
        if b"\r" in line or b"\n" in line:
            diag("signed entity line %d has a bare CR or LF" % no)
            ok = False
            break
    ehead, _ = split_head_body(entity)
    for name, raw in header_fields(ehead):
        if not is_content_header(name) and name != b"mime-version":
            diag("note: signed entity carries a non-Content header: %s" % show(raw, 60))
    return 0 if ok else 1


def cmd_is_signed(args):
    if len(args) != 1:
        return usage()
    head, _ = split_head_body(read_canon(args[0]))
    return 0 if parse_headers(head).get_content_type() == "multipart/signed" else 1


# ---------------------------------------------------------------- headers

def cmd_headers(args):
    if len(args) != 2:
        return usage()
    ohead, _ = split_head_body(read_canon(args[0]))
    shead, _ = split_head_body(read_canon(args[1]))
    have = {}
    for _, raw in header_fields(shead):
        have[raw] = have.get(raw, 0) + 1
    ok = True
    checked = 0
    for name, raw in header_fields(ohead):
        if is_content_header(name):
            continue
        checked += 1
        if have.get(raw, 0) > 0:
            have[raw] -= 1
        else:
            diag("original header missing or changed outside: %s" % show(raw))
            same = [r for n, r in header_fields(shead) if n == name]
            for r in same[:3]:
                diag("  signed message has: %s" % show(r))
            ok = False
    if not any(n == b"mime-version" for n, _ in header_fields(shead)):
        diag("signed message has no MIME-Version header")
        ok = False
    if ok:
        diag("%d original non-Content headers present unchanged" % checked)
    return 0 if ok else 1


# ---------------------------------------------------------------- content

def tree(msg, path="1"):
    """Yields (path, part) for every node, depth first."""
    yield path, msg
    if msg.is_multipart():
        for i, sub in enumerate(msg.get_payload(), 1):
            yield from tree(sub, path + "." + str(i))


def node_desc(part):
    ct = part.get_content_type()
    cs = part.get_content_charset()
    if cs is None and part.get_content_maintype() == "text":
        cs = "us-ascii"
    fn = part.get_filename()
    return ct, (cs or "").lower(), fn


def leaf_bytes(part):
    payload = part.get_payload(decode=True)
    if payload is None:
        payload = b""
    cte = (part.get("Content-Transfer-Encoding") or "7bit").strip().lower()
    linewise = part.get_content_maintype() == "text" or cte in ("7bit", "8bit", "binary")
    return payload, linewise


def inner_headers(part):
    """Non-Content headers of an embedded message, unfolded."""
    out = []
    for k, v in part.items():
        if k.lower().startswith("content-"):
            continue
        v = re.sub(r"\r?\n", "", str(v))
        out.append((k.lower(), v))
    return out


def cmd_content(args):
    if len(args) != 2:
        return usage()
    orig, signed = map(read_canon, args)
    head, body = split_head_body(signed)
    msg = parse_headers(head)
    if msg.get_content_type() == "multipart/signed":
        b = msg.get_param("boundary").encode("ascii", "surrogateescape")
        first = find_delimiter(body, b, 0)
        second = find_delimiter(body, b, max(first[2] - 2, 0)) if first else None
        if not first or not second:
            diag("cannot find the signed entity")
            return 1
        entity = body[first[2]: second[0]]
    else:
        # untouched message: compare its own MIME tree
        entity = signed
    om = email.message_from_bytes(orig, policy=POLICY)
    sm = email.message_from_bytes(entity, policy=POLICY)
    onodes = list(tree(om))
    snodes = list(tree(sm))
    ok = True
    if len(onodes) != len(snodes):
        diag("MIME tree has %d nodes, original has %d" % (len(snodes), len(onodes)))
        diag("original: %s" % ", ".join("%s %s" % (p, n.get_content_type()) for p, n in onodes))
        diag("signed:   %s" % ", ".join("%s %s" % (p, n.get_content_type()) for p, n in snodes))
        return 1
    leaves = 0
    for (path, o), (_, s) in zip(onodes, snodes):
        od, sd = node_desc(o), node_desc(s)
        if od[0] != sd[0]:
            diag("part %s: content type %s, original %s" % (path, sd[0], od[0]))
            ok = False
            continue
        if od[1] != sd[1]:
            diag("part %s (%s): charset %r, original %r" % (path, od[0], sd[1], od[1]))
            ok = False
        if od[2] != sd[2]:
            diag("part %s (%s): file name %r, original %r" % (path, od[0], sd[2], od[2]))
            ok = False
        if od[0] == "message/rfc822":
            oi = o.get_payload()[0] if o.is_multipart() else None
            si = s.get_payload()[0] if s.is_multipart() else None
            if oi is not None and si is not None and inner_headers(oi) != inner_headers(si):
                diag("part %s: headers of the embedded message differ" % path)
                diag("  original: %r" % inner_headers(oi))
                diag("  signed:   %r" % inner_headers(si))
                ok = False
        if o.is_multipart() or s.is_multipart():
            if o.is_multipart() != s.is_multipart():
                diag("part %s: multipart in one tree only" % path)
                ok = False
            continue
        leaves += 1
        ob, olw = leaf_bytes(o)
        sb, _ = leaf_bytes(s)
        if olw:
            ob = ob.replace(b"\r\n", b"\n")
            sb = sb.replace(b"\r\n", b"\n")
        if ob != sb:
            n = next((i for i in range(min(len(ob), len(sb))) if ob[i] != sb[i]), min(len(ob), len(sb)))
            diag("part %s (%s): decoded content differs (%d vs original %d bytes, first difference at %d)"
                 % (path, od[0], len(sb), len(ob), n))
            diag("  original: %s" % show(ob[max(0, n - 30): n + 30]))
            diag("  signed:   %s" % show(sb[max(0, n - 30): n + 30]))
            ok = False
    if ok:
        diag("%d MIME nodes, %d leaves with equal decoded content" % (len(onodes), leaves))
    return 0 if ok else 1


# ---------------------------------------------------------------- cms

def pem_ders(path):
    try:
        text = open(path, "rb").read()
    except OSError:
        return []
    out = []
    for m in re.finditer(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S):
        out.append(base64.b64decode(re.sub(rb"\s", b"", m.group(1))))
    return out


def cmd_cms(args):
    if len(args) != 6:
        return usage()
    _, printed, certs, signer, root, inter = args
    text = open(printed, encoding="utf-8", errors="replace").read()
    ok = True
    if "eContent: <ABSENT>" not in text:
        diag("signature is not detached (eContent present)")
        ok = False
    si = text.split("signerInfos:", 1)
    si = si[1] if len(si) == 2 else ""
    if not si:
        diag("no signerInfos")
        return 1
    m = re.search(r"digestAlgorithm:\s*\n\s*algorithm: (\S+)", si)
    if not m or m.group(1) != "sha256":
        diag("signer digest algorithm is %s, want sha256" % (m.group(1) if m else "?"))
        ok = False
    m = re.search(r"object: signingTime \(1\.2\.840\.113549\.1\.9\.5\)\s*\n\s*set:\s*\n\s*(?:UTCTIME|GENERALIZEDTIME):(.*)", si)
    if not m:
        diag("no signingTime signed attribute")
        ok = False
    else:
        st = m.group(1).strip()
        try:
            t = datetime.datetime.strptime(re.sub(r"\s+", " ", st), "%b %d %H:%M:%S %Y GMT")
            skew = abs((datetime.datetime.utcnow() - t).total_seconds())
            if skew > 3600:
                diag("note: signingTime %s is %d s away from now" % (st, skew))
        except ValueError:
            diag("note: cannot parse signingTime %r" % st)
    if "(1.2.840.113549.1.9.15)" not in si:
        diag("no SMIMECapabilities signed attribute")
        ok = False
    else:
        caps = re.findall(r"prim:\s+OBJECT\s+:(\S+)", si)
        weak = [c for c in caps if c in ("des-cbc", "rc2-cbc", "des-ede3-cbc")]
        diag("SMIMECapabilities: %s" % (" ".join(caps) or "?"))
        if weak:
            diag("note: SMIMECapabilities still advertise %s" % " ".join(sorted(set(weak))))
    embedded = pem_ders(certs)
    sig = pem_ders(signer)
    rootd = pem_ders(root)
    interd = pem_ders(inter)
    if not embedded:
        diag("no certificates embedded in the signature")
        return 1
    if not sig or sig[0] not in embedded:
        diag("signer certificate not embedded")
        ok = False
    if not interd or interd[0] not in embedded:
        diag("intermediate certificate not embedded")
        ok = False
    if rootd and rootd[0] in embedded:
        diag("root certificate is embedded (it must not be)")
        ok = False
    diag("%d certificates embedded" % len(embedded))
    return 0 if ok else 1


# ---------------------------------------------------------------- same-body

def cmd_same_body(args):
    if len(args) != 2:
        return usage()
    orig, got = map(read_canon, args)
    oh, ob = split_head_body(orig)
    gh, gb = split_head_body(got)
    ok = True
    if ob != gb:
        n = next((i for i in range(min(len(ob), len(gb))) if ob[i] != gb[i]), min(len(ob), len(gb)))
        diag("body differs (%d bytes received, %d sent; first difference at %d)" % (len(gb), len(ob), n))
        diag("  sent:     %s" % show(ob[max(0, n - 30): n + 30]))
        diag("  received: %s" % show(gb[max(0, n - 30): n + 30]))
        ok = False
    have = {}
    for _, raw in header_fields(gh):
        have[raw] = have.get(raw, 0) + 1
    for name, raw in header_fields(oh):
        if name == b"received":
            continue  # differs per hop
        if have.get(raw, 0) > 0:
            have[raw] -= 1
        else:
            diag("header missing or changed: %s" % show(raw))
            ok = False
    return 0 if ok else 1


def cmd_from_addr(args):
    if len(args) != 1:
        return usage()
    head, _ = split_head_body(read_canon(args[0]))
    msg = parse_headers(head)
    addr = email.utils.parseaddr(str(msg.get("From", "")))[1]
    print(addr)
    return 0 if addr else 1


def cmd_crlf(args):
    if len(args) != 2:
        return usage()
    with open(args[1], "wb") as f:
        f.write(read_canon(args[0]))
    return 0


# ---------------------------------------------------------------- refsign

def cmd_refsign(args):
    if len(args) not in (5, 6):
        return usage()
    orig, crt, key, inter, out = args[:5]
    epilogue = args[5].encode() if len(args) == 6 else b""
    data = read_canon(orig)
    if any(c > 127 or c == 0 for c in data):
        diag("refsign handles 7-bit input only")
        return 1
    head, body = split_head_body(data)
    outer, inner = [], []
    for name, raw in header_fields(head):
        (inner if is_content_header(name) else outer).append(raw)
    if not inner:
        inner = [b"Content-Type: text/plain; charset=us-ascii"]
    if not any(r.lower().startswith(b"mime-version:") for r in outer):
        outer.append(b"MIME-Version: 1.0")
    # inner raw lines were unfolded; keep them as they were in the original
    entity = CRLF.join(inner) + CRLF + CRLF + body
    tmp = out + ".entity"
    with open(tmp, "wb") as f:
        f.write(entity)
    cmd = ["openssl", "cms", "-sign", "-binary", "-md", "sha256",
           "-in", tmp, "-signer", crt, "-inkey", key, "-outform", "DER"]
    if inter != "-":
        cmd += ["-certfile", inter]
    r = subprocess.run(cmd, capture_output=True)
    os.unlink(tmp)
    if r.returncode != 0:
        diag(r.stderr.decode(errors="replace"))
        return 1
    sig = base64.encodebytes(r.stdout).replace(b"\n", CRLF)
    bnd = b"----refsign-" + os.urandom(8).hex().encode()
    outer.append(b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";'
                 b'\r\n\tmicalg=sha-256; boundary="' + bnd + b'"')
    msg = (CRLF.join(outer) + CRLF + CRLF +
           b"This is an S/MIME signed message" + CRLF + CRLF +
           b"--" + bnd + CRLF + entity + CRLF +
           b"--" + bnd + CRLF +
           b'Content-Type: application/pkcs7-signature; name="smime.p7s"' + CRLF +
           b"Content-Transfer-Encoding: base64" + CRLF +
           b'Content-Disposition: attachment; filename="smime.p7s"' + CRLF + CRLF +
           sig + CRLF + b"--" + bnd + b"--" + CRLF + epilogue)
    with open(out, "wb") as f:
        f.write(msg)
    return 0
