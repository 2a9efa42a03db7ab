"""smimecheck_der.py -- a small DER/BER reader of our own and what
smimecheck_env.py reads with it: the CMS ContentInfo of an encrypted
message (EnvelopedData or AuthEnvelopedData), OIDs, names, identifiers.
decrypt.sh cross-checks what it finds against `openssl cms -print`.
"""

import base64
import re

from smimecheck_mail import canon, split_head_body

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
