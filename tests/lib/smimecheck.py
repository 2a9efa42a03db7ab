#!/usr/bin/python3
"""smimecheck.py -- the Python half of the S/MIME test verifier (stdlib only).

Subcommands (each prints "# ..." diagnostics, exits 0 when the check holds,
1 when it does not, 2 on usage errors):

  split SIGNED OUTDIR
      Canonicalizes SIGNED to CRLF, checks the multipart/signed structure
      (protocol="application/pkcs7-signature", micalg=sha-256, exactly two
      parts, close delimiter, a base64 application/pkcs7-signature part,
      MIME-Version outside, no original Content-* header left outside, the
      signed entity 7-bit with lines <= 998 octets) and writes
        OUTDIR/signed.eml   the canonical CRLF message
        OUTDIR/entity.bin   the signed entity: the exact bytes between the
                            first delimiter line and the CRLF before the second
        OUTDIR/p7s.der      the decoded signature
        OUTDIR/outer.hdr    the outer header block
      Files are written even when a structural check fails, as far as the
      message could be parsed.
  is-signed FILE
      Exit 0 when FILE's top-level Content-Type is multipart/signed.
  headers ORIGINAL SIGNED
      Every header of ORIGINAL that is not Content-* must be present in
      SIGNED's outer header, byte for byte after unfolding (extra headers
      added in transit are allowed); MIME-Version must be present.
  content ORIGINAL SIGNED
      The MIME tree inside the signed entity of SIGNED has the same shape,
      content types, charsets, file names and decoded leaf contents as
      ORIGINAL (text parts and parts that were 7bit/8bit compare with LF ==
      CRLF); headers of embedded message/rfc822 parts are compared too.
  cms P7S_DER CMS_PRINT CERTS_PEM SIGNER_PEM ROOT_PEM INTER_PEM
      Given `openssl cms -cmsout -print` output (CMS_PRINT) and the
      certificates openssl wrote with -certsout / -signer, checks: detached
      (no eContent), digest sha256, signingTime and SMIMECapabilities signed
      attributes present, signer and intermediate embedded, root not embedded.
  same-body ORIGINAL RECEIVED
      For messages that must arrive untouched: the body of RECEIVED equals
      the body of ORIGINAL (line ends canonicalized) and every original header
      but Received is still there; prints where they differ.
  from-addr FILE
      Prints the address of the From header.
  crlf IN OUT
      Writes IN with every line end turned into CRLF (LF and CRLF alike).
  refsign ORIGINAL SIGNER_CRT SIGNER_KEY INTER_CRT OUT [EPILOGUE]
      Development aid only (verifier self-tests): builds a multipart/signed
      message from a 7-bit ORIGINAL with `openssl cms -sign`; INTER_CRT is
      the -certfile ("-" for none).  The real tests sign with the milter.

Encrypted messages (tests/lib/decrypt.sh; CIPHER is aes-256-cbc, meaning
EnvelopedData with smime-type=enveloped-data, or aes-256-gcm, meaning
AuthEnvelopedData with smime-type=authEnveloped-data):

  is-encrypted FILE
      Exit 0 when FILE's top-level Content-Type is application/pkcs7-mime
      with smime-type enveloped-data or authEnveloped-data.
  env-split ENCRYPTED OUTDIR CIPHER [ORIGINAL]
      Canonicalizes ENCRYPTED to CRLF and checks the outside: one
      Content-Type application/pkcs7-mime with the smime-type CIPHER implies
      and name=smime.p7m, one Content-Transfer-Encoding base64, MIME-Version,
      no other Content-* field (except a Content-Disposition naming smime.p7m
      and a Content-Description, as RFC 8551 3.2.1 allows), base64 lines of
      at most 76 characters.  Writes OUTDIR/enc.eml, OUTDIR/outer.hdr and
      OUTDIR/p7m.der (the decoded body) as far as it gets.  With ORIGINAL,
      the `headers ORIGINAL ENCRYPTED` check must hold too.
  env-check P7M CIPHER OUTDIR [CMS_PRINT|- [RECIP_CERT]]
      Reads the CMS (DER, PEM or a whole message) with our own DER/BER
      reader: EnvelopedData with AES-256-CBC (16-octet IV) or
      AuthEnvelopedData with AES-256-GCM (12-octet nonce, mac as long as the
      ICV length), encrypted content type id-data, content present, every
      RecipientInfo a ktri or kari naming a recipient.  Writes
      OUTDIR/keyalgs (one name per RecipientInfo, e.g. "rsaEncryption
      rsaesOaep dhSinglePass-stdDH-sha1kdf-scheme"), OUTDIR/keydetails
      (with OAEP hash and key-wrap), OUTDIR/recipients ("KEYALG<TAB>ID" per
      recipient) and OUTDIR/cipher.  With CMS_PRINT (`openssl cms -cmsout
      -print` output) the content type, key and content algorithms must
      agree with openssl's reading.  With RECIP_CERT, OUTDIR/recip_keyalg
      gets the algorithm of that certificate's RecipientInfo (empty, and a
      note, when it is not a recipient).
  env-recipients P7M
      Prints one line per recipient: "issuer=DN serial=HEX", or "ski=HEX"
      when a RecipientInfo names a subject key identifier.
  cert-id CERT
      Prints the same line(s) for a certificate (issuer+serial, and ski=
      when it has a subjectKeyIdentifier).
  env-join ENCRYPTED DECRYPTED OUT
      The decrypted entity with the outer non-Content headers of ENCRYPTED
      put back in front (MIME-Version only when the entity has none).
  entity MESSAGE OUT
      Development aid: the Content-* fields and body of MESSAGE (what a
      signer-then-encryptor encrypts).
  env-wrap HEADERS_FROM P7M_DER OUT SMIME_TYPE
      Development aid: a pkcs7-mime message with the non-Content headers of
      HEADERS_FROM around P7M_DER (CRLF, base64 in 76-character lines).
  env-tamper P7M_DER OUT
      Development aid: flips one bit in the middle of the encrypted content.
"""

import base64
import datetime
import email
import email.parser
import email.policy
import email.utils
import os
import re
import subprocess
import sys

POLICY = email.policy.compat32
CRLF = b"\r\n"


def diag(msg):
    for line in str(msg).splitlines() or [""]:
        print("# " + line)


def canon(data):
    """Every line end (LF or CRLF) becomes CRLF; lone CR stays."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def read_canon(path):
    with open(path, "rb") as f:
        return canon(f.read())


def split_head_body(data):
    """Returns (head, body) of CRLF data; head excludes the empty line."""
    if data.startswith(CRLF):
        return b"", data[2:]
    i = data.find(b"\r\n\r\n")
    if i < 0:
        return data, b""
    return data[: i + 2], data[i + 4:]


def raw_fields(head):
    """List of (lower-case name, raw field with its folding and CRLF)."""
    out = []
    for line in head.split(CRLF):
        if line == b"":
            continue
        if line[:1] in (b" ", b"\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + line + CRLF)
            continue
        name = line.split(b":", 1)[0].strip().lower() if b":" in line else b""
        out.append((name, line + CRLF))
    return out


def header_fields(head):
    """List of (lower-case name, unfolded raw line) for a raw header block."""
    return [(name, b"".join(raw[:-2].split(CRLF))) for name, raw in raw_fields(head)]


def parse_headers(head):
    return email.parser.BytesHeaderParser(policy=POLICY).parsebytes(head + CRLF)


def is_content_header(name):
    return name.startswith(b"content-")


def show(b, limit=120):
    r = repr(b[:limit])
    return r + ("..." if len(b) > limit else "")


# ---------------------------------------------------------------- split

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


# ---------------------------------------------------------------- enveloped
# Encrypted messages (application/pkcs7-mime enveloped-data or
# authEnveloped-data).  The CMS is read with a small DER/BER reader of our
# own; decrypt.sh cross-checks what it finds against `openssl cms -print`.

OIDS = {
    "1.2.840.113549.1.7.1": "data",
    "1.2.840.113549.1.7.2": "signedData",
    "1.2.840.113549.1.7.3": "envelopedData",
    "1.2.840.113549.1.9.16.1.23": "authEnvelopedData",
    "1.2.840.113549.1.1.1": "rsaEncryption",
    "1.2.840.113549.1.1.7": "rsaesOaep",
    "1.2.840.113549.1.1.8": "mgf1",
    "1.2.840.113549.1.1.9": "pSpecified",
    "1.3.133.16.840.63.0.2": "dhSinglePass-stdDH-sha1kdf-scheme",
    "1.3.133.16.840.63.0.3": "dhSinglePass-cofactorDH-sha1kdf-scheme",
    "1.3.132.1.11.0": "dhSinglePass-stdDH-sha224kdf-scheme",
    "1.3.132.1.11.1": "dhSinglePass-stdDH-sha256kdf-scheme",
    "1.3.132.1.11.2": "dhSinglePass-stdDH-sha384kdf-scheme",
    "1.3.132.1.11.3": "dhSinglePass-stdDH-sha512kdf-scheme",
    "1.3.132.1.14.0": "dhSinglePass-cofactorDH-sha224kdf-scheme",
    "1.3.132.1.14.1": "dhSinglePass-cofactorDH-sha256kdf-scheme",
    "1.3.132.1.14.2": "dhSinglePass-cofactorDH-sha384kdf-scheme",
    "1.3.132.1.14.3": "dhSinglePass-cofactorDH-sha512kdf-scheme",
    "1.2.840.10045.2.1": "id-ecPublicKey",
    "2.16.840.1.101.3.4.1.2": "aes-128-cbc",
    "2.16.840.1.101.3.4.1.22": "aes-192-cbc",
    "2.16.840.1.101.3.4.1.42": "aes-256-cbc",
    "2.16.840.1.101.3.4.1.6": "aes-128-gcm",
    "2.16.840.1.101.3.4.1.26": "aes-192-gcm",
    "2.16.840.1.101.3.4.1.46": "aes-256-gcm",
    "2.16.840.1.101.3.4.1.5": "id-aes128-wrap",
    "2.16.840.1.101.3.4.1.25": "id-aes192-wrap",
    "2.16.840.1.101.3.4.1.45": "id-aes256-wrap",
    "1.2.840.113549.3.7": "des-ede3-cbc",
    "1.2.840.113549.3.2": "rc2-cbc",
    "1.3.14.3.2.7": "des-cbc",
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.4": "sha224",
}
DN_NAMES = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
    "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.5": "serialNumber",
    "1.2.840.113549.1.9.1": "emailAddress",
    "0.9.2342.19200300.100.1.25": "DC",
}
# what each expected cipher means: (CMS content type, cipher OID, smime-type)
ENV_CIPHERS = {
    "aes-256-cbc": ("1.2.840.113549.1.7.3", "2.16.840.1.101.3.4.1.42", "enveloped-data"),
    "aes-256-gcm": ("1.2.840.113549.1.9.16.1.23", "2.16.840.1.101.3.4.1.46", "authenveloped-data"),
}


class Node:
    """One DER/BER element: cls (0 universal, 2 context...), cons, num,
    cs..ce the content octets, end the first byte after it."""
    __slots__ = ("buf", "cls", "cons", "num", "hs", "cs", "ce", "end", "kids")

    def tag(self):
        return (self.cls, self.num)

    def value(self):
        """Content octets; a constructed (BER) string is concatenated."""
        if not self.cons:
            return self.buf[self.cs:self.ce]
        return b"".join(k.value() for k in self.kids)

    def kid(self, i, what="element"):
        if not self.cons or i >= len(self.kids):
            raise ValueError("ASN.1: %s missing (child %d of tag %s at offset %d)"
                             % (what, i, self.tag(), self.hs))
        return self.kids[i]


def der_parse(buf, pos=0, limit=None, depth=0):
    """Parses one element at pos.  Handles definite and indefinite lengths
    (so BER from streaming encoders reads too).  Raises ValueError."""
    if limit is None:
        limit = len(buf)
    if depth > 64:
        raise ValueError("ASN.1 nested too deep")
    if pos + 2 > limit:
        raise ValueError("ASN.1: truncated header at offset %d" % pos)
    n = Node()
    n.buf, n.hs = buf, pos
    b = buf[pos]
    n.cls, n.cons, n.num = b >> 6, bool(b & 0x20), b & 0x1F
    pos += 1
    if n.num == 0x1F:
        n.num = 0
        while True:
            if pos >= limit:
                raise ValueError("ASN.1: truncated tag")
            c = buf[pos]
            pos += 1
            n.num = (n.num << 7) | (c & 0x7F)
            if not c & 0x80:
                break
    if pos >= limit:
        raise ValueError("ASN.1: truncated length")
    ln = buf[pos]
    pos += 1
    n.kids = []
    if ln == 0x80:
        if not n.cons:
            raise ValueError("ASN.1: indefinite length on a primitive at offset %d" % n.hs)
        n.cs = pos
        while True:
            if pos + 2 > limit:
                raise ValueError("ASN.1: indefinite length without end-of-contents")
            if buf[pos] == 0 and buf[pos + 1] == 0:
                n.ce, n.end = pos, pos + 2
                return n
            k = der_parse(buf, pos, limit, depth + 1)
            n.kids.append(k)
            pos = k.end
    if ln & 0x80:
        cnt = ln & 0x7F
        if cnt > 8 or pos + cnt > limit:
            raise ValueError("ASN.1: bad length at offset %d" % n.hs)
        ln = int.from_bytes(buf[pos:pos + cnt], "big")
        pos += cnt
    n.cs, n.ce = pos, pos + ln
    n.end = n.ce
    if n.ce > limit:
        raise ValueError("ASN.1: element at offset %d runs past its container" % n.hs)
    if n.cons:
        p = n.cs
        while p < n.ce:
            k = der_parse(buf, p, n.ce, depth + 1)
            n.kids.append(k)
            p = k.end
    return n


def der_oid(n):
    if n.tag() != (0, 6):
        raise ValueError("ASN.1: expected an OBJECT IDENTIFIER at offset %d" % n.hs)
    v = n.value()
    out, acc = [], 0
    for c in v:
        acc = (acc << 7) | (c & 0x7F)
        if not c & 0x80:
            out.append(acc)
            acc = 0
    if not out:
        raise ValueError("ASN.1: empty OID")
    first = min(out[0] // 40, 2)
    return ".".join(str(x) for x in [first, out[0] - 40 * first] + out[1:])


def oid_name(oid):
    return OIDS.get(oid, oid)


def der_int_hex(n):
    if n.tag() != (0, 2):
        raise ValueError("ASN.1: expected an INTEGER at offset %d" % n.hs)
    v = n.value().lstrip(b"\0") or b"\0"
    return v.hex().upper()


def der_name(n):
    """Distinguished name as "C=ID, O=..., CN=..." in DER order."""
    parts = []
    for rdn in n.kids:
        for atv in rdn.kids:
            oid = der_oid(atv.kid(0))
            val = atv.kid(1)
            raw = val.value()
            if val.num == 0x1E:
                s = raw.decode("utf-16-be", "replace")
            elif val.num in (0x0C, 0x13, 0x16, 0x14, 0x1A):
                s = raw.decode("utf-8", "replace")
            else:
                s = "#" + raw.hex()
            parts.append("%s=%s" % (DN_NAMES.get(oid, oid), s))
    return ", ".join(parts)


def ias_id(n):
    """IssuerAndSerialNumber -> the id line dm_recipients prints."""
    return "issuer=%s serial=%s" % (der_name(n.kid(0, "issuer")), der_int_hex(n.kid(1, "serial")))


def algid(n):
    """AlgorithmIdentifier -> (oid, parameters node or None)."""
    return der_oid(n.kid(0, "algorithm")), (n.kids[1] if len(n.kids) > 1 else None)


def keyalg_detail(oid, params):
    name = oid_name(oid)
    try:
        if name == "rsaesOaep":
            h, m = "sha1", "mgf1-sha1"
            for p in (params.kids if params is not None else []):
                if p.cls == 2 and p.num == 0:
                    h = oid_name(algid(p.kid(0))[0])
                elif p.cls == 2 and p.num == 1:
                    mo, mp = algid(p.kid(0))
                    m = oid_name(mo) + ("-" + oid_name(algid(mp)[0]) if mp is not None else "")
            return "%s(%s,%s)" % (name, h, m)
        if name.startswith("dhSinglePass") and params is not None:
            return "%s(%s)" % (name, oid_name(algid(params)[0]))
    except ValueError:
        pass
    return name


def env_parse(der):
    """Reads a CMS ContentInfo holding EnvelopedData or AuthEnvelopedData.
    Returns a dict; raises ValueError when it is not one."""
    ci = der_parse(der)
    if ci.end != len(der):
        trailing = der[ci.end:]
        if trailing.strip(b"\0"):
            raise ValueError("%d bytes of garbage after the CMS structure" % len(trailing))
    if ci.tag() != (0, 16):
        raise ValueError("not a CMS ContentInfo (no SEQUENCE at the top)")
    ctype = der_oid(ci.kid(0, "contentType"))
    info = {"ctype": ctype, "recipients": [], "notes": []}
    if ctype not in ("1.2.840.113549.1.7.3", "1.2.840.113549.1.9.16.1.23"):
        return info
    wrap = ci.kid(1, "content")
    if wrap.tag() != (2, 0):
        raise ValueError("ContentInfo content is not [0] EXPLICIT")
    env = wrap.kid(0, "EnvelopedData")
    i = 1  # after version
    if len(env.kids) > i and env.kids[i].tag() == (2, 0):
        info["notes"].append("originatorInfo present")
        i += 1
    ris = env.kid(i, "recipientInfos")
    if ris.tag() != (0, 17):
        raise ValueError("recipientInfos is not a SET")
    for ri in ris.kids:
        if ri.tag() == (0, 16):  # ktri
            rid = ri.kid(1, "ktri rid")
            ident = ias_id(rid) if rid.tag() == (0, 16) else "ski=" + rid.value().hex().upper()
            oid, params = algid(ri.kid(2, "ktri keyEncryptionAlgorithm"))
            info["recipients"].append({"type": "ktri", "keyalg": oid_name(oid), "oid": oid,
                                       "detail": keyalg_detail(oid, params), "ids": [ident]})
        elif ri.tag() == (2, 1):  # kari
            j = 1
            if ri.kid(j, "kari originator").tag() == (2, 0):
                j += 1
            if ri.kid(j, "kari keyEncryptionAlgorithm").tag() == (2, 1):
                j += 1  # ukm
            oid, params = algid(ri.kid(j, "kari keyEncryptionAlgorithm"))
            ids = []
            for rek in ri.kid(j + 1, "kari recipientEncryptedKeys").kids:
                rid = rek.kid(0, "kari rid")
                if rid.tag() == (0, 16):
                    ids.append(ias_id(rid))
                else:  # [0] RecipientKeyIdentifier
                    ids.append("ski=" + rid.kid(0, "ski").value().hex().upper())
            info["recipients"].append({"type": "kari", "keyalg": oid_name(oid), "oid": oid,
                                       "detail": keyalg_detail(oid, params), "ids": ids})
        else:
            kind = {2: "kekri", 3: "pwri", 4: "ori"}.get(ri.num, "unknown")
            info["recipients"].append({"type": kind, "keyalg": kind, "oid": "",
                                       "detail": kind, "ids": []})
    i += 1
    eci = env.kid(i, "encryptedContentInfo")
    info["inner_type"] = der_oid(eci.kid(0, "encrypted contentType"))
    coid, cparams = algid(eci.kid(1, "contentEncryptionAlgorithm"))
    info["cipher_oid"], info["cipher_params"] = coid, cparams
    info["ciphertext"] = None
    if len(eci.kids) > 2 and eci.kids[2].tag() == (2, 0):
        ec = eci.kids[2]
        info["ciphertext"] = ec.value()
        # where the first chunk of ciphertext sits (for tampering tests)
        leaf = ec
        while leaf.cons and leaf.kids:
            leaf = leaf.kids[0]
        info["ct_span"] = (leaf.cs, leaf.ce)
    info["mac"] = None
    if ctype == "1.2.840.113549.1.9.16.1.23":
        for k in env.kids[i + 1:]:
            if k.tag() == (0, 4):
                info["mac"] = k.value()
    return info


def read_p7m(path):
    """DER from a file holding DER, PEM or a whole pkcs7-mime message."""
    data = open(path, "rb").read()
    if data[:1] == b"\x30":
        return data
    m = re.search(rb"-----BEGIN [A-Z0-9 ]+-----(.*?)-----END", data, re.S)
    if m:
        return base64.b64decode(re.sub(rb"\s", b"", m.group(1)))
    _, body = split_head_body(canon(data))
    return base64.b64decode(re.sub(rb"\s", b"", body), validate=True)


def param(msg, name):
    v = msg.get_param(name)
    if isinstance(v, tuple):  # RFC 2231
        v = email.utils.collapse_rfc2231_value(v)
    return v


def smime_type(msg):
    return (param(msg, "smime-type") or "").strip().lower()


def cmd_is_encrypted(args):
    if len(args) != 1:
        return usage()
    head, _ = split_head_body(read_canon(args[0]))
    msg = parse_headers(head)
    return 0 if (msg.get_content_type() == "application/pkcs7-mime"
                 and smime_type(msg) in ("enveloped-data", "authenveloped-data")) else 1


def cmd_env_split(args):
    if len(args) not in (3, 4):
        return usage()
    path, out, cipher = args[:3]
    if cipher not in ENV_CIPHERS:
        diag("unknown cipher %r (aes-256-cbc or aes-256-gcm)" % cipher)
        return 2
    data = read_canon(path)
    body, fields, names, msg = save_outer(data, out, "enc.eml")
    ok = True
    if names.count(b"content-type") != 1:
        diag("outer header has %d Content-Type fields" % names.count(b"content-type"))
        ok = False
    ctype = msg.get_content_type()
    if ctype != "application/pkcs7-mime":
        diag("top-level Content-Type is %s, not application/pkcs7-mime" % ctype)
        ok = False
    want = ENV_CIPHERS[cipher][2]
    st = smime_type(msg)
    if st != want:
        diag("smime-type is %r, want %r (expected cipher %s)" % (st, want, cipher))
        ok = False
    name = param(msg, "name")
    if name != "smime.p7m":
        diag("Content-Type name parameter is %r, want smime.p7m" % name)
        ok = False
    if names.count(b"content-transfer-encoding") != 1:
        diag("outer header has %d Content-Transfer-Encoding fields"
             % names.count(b"content-transfer-encoding"))
        ok = False
    cte = (msg.get("Content-Transfer-Encoding") or "").strip().lower()
    if cte != "base64":
        diag("Content-Transfer-Encoding is %r, want base64" % cte)
        ok = False
    if b"mime-version" not in names:
        diag("outer header has no MIME-Version")
        ok = False
    for fname, raw in fields:
        if not is_content_header(fname) or fname in (b"content-type", b"content-transfer-encoding"):
            continue
        if fname == b"content-disposition":
            # RFC 8551 3.2.1 suggests one naming smime.p7m; nothing else may be there
            fn = msg.get_filename()
            if fn == "smime.p7m":
                diag("note: %s" % show(raw))
                continue
            diag("Content-Disposition outside does not name smime.p7m: %s" % show(raw))
            ok = False
            continue
        if fname == b"content-description":
            diag("note: %s" % show(raw))
            continue
        diag("outer header carries %s (it belongs inside the encrypted entity)" % show(raw))
        ok = False
    lines = body.split(CRLF)
    while lines and lines[-1] == b"":
        lines.pop()
    for no, line in enumerate(lines, 1):
        if len(line) > 76:
            diag("base64 body line %d is %d characters long (> 76, RFC 2045)" % (no, len(line)))
            ok = False
            break
        if re.search(rb"[^A-Za-z0-9+/=]", line):
            diag("base64 body line %d has characters outside the base64 alphabet: %s"
                 % (no, show(line, 60)))
            ok = False
            break
    try:
        der = base64.b64decode(b"".join(lines), validate=True)
    except (ValueError, TypeError) as e:
        diag("body is not valid base64: %s" % e)
        der = b""
    if not der:
        diag("no CMS in the body")
        if len(args) == 4:
            cmd_headers([args[3], path])
        return 1
    with open(os.path.join(out, "p7m.der"), "wb") as f:
        f.write(der)
    if len(args) == 4 and cmd_headers([args[3], path]) != 0:
        ok = False
    return 0 if ok else 1


def cms_print_facts(text):
    """From `openssl cms -cmsout -print`: top contentType OID, key
    encryption algorithm OIDs in order, content encryption OID."""
    top = re.search(r"^\s*contentType: .*\(([\d.]+)\)\s*$", text, re.M)
    kea = re.findall(r"keyEncryptionAlgorithm:\s*\n\s*algorithm: .*\(([\d.]+)\)", text)
    cea = re.search(r"contentEncryptionAlgorithm:\s*\n\s*algorithm: .*\(([\d.]+)\)", text)
    return (top.group(1) if top else None, kea, cea.group(1) if cea else None)


def cert_ids(path):
    """The id lines env-recipients would print for a certificate."""
    ders = pem_ders(path)
    if not ders:
        ders = [open(path, "rb").read()]
    tbs = der_parse(ders[0]).kid(0, "tbsCertificate")
    i = 1 if tbs.kid(0).tag() == (2, 0) else 0
    ids = ["issuer=%s serial=%s" % (der_name(tbs.kid(i + 2, "issuer")), der_int_hex(tbs.kid(i)))]
    for k in tbs.kids:
        if k.tag() == (2, 3):
            for ext in k.kid(0).kids:
                if der_oid(ext.kid(0)) == "2.5.29.14":
                    ski = der_parse(ext.kids[-1].value())
                    ids.append("ski=" + ski.value().hex().upper())
    return ids


def cmd_env_check(args):
    if len(args) not in (3, 4, 5):
        return usage()
    path, cipher, out = args[:3]
    if cipher not in ENV_CIPHERS:
        diag("unknown cipher %r (aes-256-cbc or aes-256-gcm)" % cipher)
        return 2
    os.makedirs(out, exist_ok=True)
    for fn in ("keyalgs", "keydetails", "recipients", "cipher", "recip_keyalg"):
        open(os.path.join(out, fn), "w").close()
    info = env_parse(read_p7m(path))
    want_ct, want_alg, _ = ENV_CIPHERS[cipher]
    ok = True
    ctype = info["ctype"]
    if ctype != want_ct:
        diag("CMS content type is %s (%s), want %s (%s)"
             % (oid_name(ctype), ctype, oid_name(want_ct), want_ct))
        if "cipher_oid" not in info:
            return 1
        ok = False
    ris = info["recipients"]
    with open(os.path.join(out, "keyalgs"), "w") as f:
        f.write(" ".join(r["keyalg"] for r in ris) + "\n")
    with open(os.path.join(out, "keydetails"), "w") as f:
        f.write(" ".join(r["detail"] for r in ris) + "\n")
    with open(os.path.join(out, "recipients"), "w") as f:
        for r in ris:
            for ident in r["ids"]:
                f.write("%s\t%s\n" % (r["keyalg"], ident))
    if len(args) == 5:
        mine = cert_ids(args[4])
        found = [r["keyalg"] for r in ris if set(r["ids"]) & set(mine)]
        with open(os.path.join(out, "recip_keyalg"), "w") as f:
            f.write((found[0] + "\n") if found else "")
        if not found:
            diag("%s is not among the recipients" % args[4])
    coid = info["cipher_oid"]
    with open(os.path.join(out, "cipher"), "w") as f:
        f.write(oid_name(coid) + "\n")
    diag("CMS %s, content %s, %d RecipientInfo: %s"
         % (oid_name(ctype), oid_name(coid), len(ris), " ".join(r["detail"] for r in ris)))
    if not ris:
        diag("no RecipientInfo")
        ok = False
    for r in ris:
        if r["type"] not in ("ktri", "kari"):
            diag("RecipientInfo of type %s (only ktri and kari are expected)" % r["type"])
            ok = False
        elif not r["ids"]:
            diag("%s RecipientInfo without a recipient" % r["type"])
            ok = False
    if coid != want_alg:
        diag("content encryption algorithm is %s (%s), want %s (%s)"
             % (oid_name(coid), coid, oid_name(want_alg), want_alg))
        ok = False
    p = info["cipher_params"]
    if coid.endswith((".2", ".22", ".42")) and coid.startswith("2.16.840.1.101.3.4.1."):
        if p is None or p.tag() != (0, 4) or len(p.value()) != 16:
            diag("AES-CBC parameter is not a 16-octet IV")
            ok = False
    if coid == "2.16.840.1.101.3.4.1.46":
        try:
            nonce = p.kid(0, "GCM nonce")
            if nonce.tag() != (0, 4) or len(nonce.value()) != 12:
                diag("GCM nonce is not 12 octets (RFC 5084 recommends 12)")
                ok = False
            icv = 12
            if len(p.kids) > 1:
                icv = int(der_int_hex(p.kids[1]), 16)
            if not 12 <= icv <= 16:
                diag("GCM ICV length %d outside 12..16" % icv)
                ok = False
            mac = info["mac"]
            if mac is None:
                diag("AuthEnvelopedData has no mac")
                ok = False
            elif len(mac) != icv:
                diag("mac is %d octets, GCMParameters say %d" % (len(mac), icv))
                ok = False
        except (ValueError, AttributeError):
            diag("GCMParameters unreadable")
            ok = False
    if info["inner_type"] != "1.2.840.113549.1.7.1":
        diag("encrypted content type is %s, want id-data" % oid_name(info["inner_type"]))
        ok = False
    if not info["ciphertext"]:
        diag("no encryptedContent (detached or empty)")
        ok = False
    for note in info["notes"]:
        diag("note: " + note)
    if len(args) >= 4 and args[3] != "-":
        text = open(args[3], encoding="utf-8", errors="replace").read()
        top, kea, cea = cms_print_facts(text)
        mine = [r["oid"] for r in ris]
        if top != ctype or cea != coid or kea != mine:
            diag("openssl cms -print disagrees: content type %s, key algorithms %s, cipher %s"
                 % (top, " ".join(kea), cea))
            diag("                  our reader: content type %s, key algorithms %s, cipher %s"
                 % (ctype, " ".join(mine), coid))
            ok = False
    return 0 if ok else 1


def cmd_env_recipients(args):
    if len(args) != 1:
        return usage()
    info = env_parse(read_p7m(args[0]))
    if "cipher_oid" not in info:
        diag("not EnvelopedData or AuthEnvelopedData: %s" % oid_name(info["ctype"]))
        return 1
    for r in info["recipients"]:
        for ident in r["ids"]:
            print(ident)
    return 0


def cmd_cert_id(args):
    """issuer+serial of a certificate (and ski= when it has one), in the
    form env-recipients prints."""
    if len(args) != 1:
        return usage()
    for ident in cert_ids(args[0]):
        print(ident)
    return 0


def cmd_env_join(args):
    """The decrypted entity with the outer non-Content headers in front
    (MIME-Version from outside only when the entity has none)."""
    if len(args) != 3:
        return usage()
    head, _ = split_head_body(read_canon(args[0]))
    inner = open(args[1], "rb").read()
    ihead, _ = split_head_body(canon(inner))
    inner_mv = any(n == b"mime-version" for n, _ in header_fields(ihead))
    out = b""
    for name, raw in raw_fields(head):
        if is_content_header(name) or (name == b"mime-version" and inner_mv):
            continue
        out += raw
    with open(args[2], "wb") as f:
        f.write(out + inner)
    return 0


def cmd_entity(args):
    """Content-* headers (as they were folded) and body of a message: what
    gets encrypted after signing."""
    if len(args) != 2:
        return usage()
    head, body = split_head_body(read_canon(args[0]))
    inner = b"".join(raw for n, raw in raw_fields(head) if is_content_header(n))
    with open(args[1], "wb") as f:
        f.write(inner + CRLF + body)
    return 0


def cmd_env_wrap(args):
    """Wraps DER into a pkcs7-mime message carrying the non-Content headers
    of HEADERS_FROM (development aid for the decrypt self-test)."""
    if len(args) != 4:
        return usage()
    src, der_path, out, stype = args
    head, _ = split_head_body(read_canon(src))
    outer = [raw for n, raw in raw_fields(head) if not is_content_header(n)]
    if not any(r.lower().startswith(b"mime-version:") for r in outer):
        outer.append(b"MIME-Version: 1.0" + CRLF)
    der = open(der_path, "rb").read()
    b64 = base64.b64encode(der)
    lines = [b64[i:i + 76] for i in range(0, len(b64), 76)]
    msg = (b"".join(outer) +
           b"Content-Type: application/pkcs7-mime; smime-type=" + stype.encode() +
           b"; name=smime.p7m" + CRLF +
           b"Content-Transfer-Encoding: base64" + CRLF + CRLF +
           CRLF.join(lines) + CRLF)
    with open(out, "wb") as f:
        f.write(msg)
    return 0


def cmd_env_tamper(args):
    """Flips one bit of the encrypted content (middle of its first chunk)."""
    if len(args) != 2:
        return usage()
    der = bytearray(open(args[0], "rb").read())
    info = env_parse(bytes(der))
    if not info.get("ciphertext"):
        diag("no encryptedContent to tamper with")
        return 1
    s, e = info["ct_span"]
    pos = s + (e - s) // 2
    der[pos] ^= 0x01
    with open(args[1], "wb") as f:
        f.write(der)
    diag("flipped a bit at offset %d (encryptedContent %d..%d)" % (pos, s, e))
    return 0


def usage():
    sys.stderr.write(__doc__)
    return 2


COMMANDS = {
    "split": cmd_split,
    "is-signed": cmd_is_signed,
    "headers": cmd_headers,
    "content": cmd_content,
    "cms": cmd_cms,
    "same-body": cmd_same_body,
    "crlf": cmd_crlf,
    "from-addr": cmd_from_addr,
    "refsign": cmd_refsign,
    "is-encrypted": cmd_is_encrypted,
    "env-split": cmd_env_split,
    "env-check": cmd_env_check,
    "env-recipients": cmd_env_recipients,
    "cert-id": cmd_cert_id,
    "env-join": cmd_env_join,
    "entity": cmd_entity,
    "env-wrap": cmd_env_wrap,
    "env-tamper": cmd_env_tamper,
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        return usage()
    try:
        return COMMANDS[argv[1]](argv[2:])
    except (OSError, ValueError, IndexError) as e:
        diag("%s: %s" % (argv[1], e))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
