"""smimecheck_env.py -- the smimecheck.py sub-commands for encrypted
messages (application/pkcs7-mime enveloped-data or authEnveloped-data):
is-encrypted, env-split, env-check, env-recipients, cert-id, env-join,
entity, env-wrap, env-tamper (their usage is in smimecheck.py).
"""

import base64
import email.utils
import os
import re

from smimecheck_der import (ENV_CIPHERS, der_int_hex, der_name, der_oid, der_parse,
                            env_parse, oid_name, read_p7m)
from smimecheck_mail import (CRLF, canon, diag, header_fields, is_content_header,
                             parse_headers, raw_fields, read_canon, show,
                             split_head_body, usage)
from smimecheck_signed import cmd_headers, pem_ders, save_outer


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
