"""smimecheck_hp.py -- the header protection check (RFC 9788) of
smimecheck.py (stdlib only): `hp ENTITY ORIGINAL MODE [PLAIN_ENTITY]`.

ENTITY is the signed entity (split's entity.bin; for encrypted mail the
entity.bin of the decrypted multipart/signed), ORIGINAL the message as sent,
MODE "clear" or "cipher".  Checks:
  - Python's email package reads ENTITY's Content-Type parameter hp as MODE;
  - every protected field of ORIGINAL (From, To, Cc, Subject, Date,
    Message-ID, Reply-To, In-Reply-To, References and the EXTRA names in
    $HP_EXTRA, comma separated) is in ENTITY's header section, in order,
    with the same value after unfolding and RFC 2047 decoding (8-bit text
    is copied as encoded words; 8-bit octets in an address, identifier or
    date leave that field out), the copy 7-bit, no other non-Content field
    is there (with MODE cipher: one "HP-Outer: Name: value" per protected field, the
    value as outside, since the outer header section is kept unchanged);
  - the email package finds the same Subject, From and Date in ENTITY as
    in ORIGINAL (the independent reading of the protected fields);
  - with PLAIN_ENTITY (the same message signed with header_protection =
    false): the body of ENTITY (after its header section) is byte for byte
    the body of PLAIN_ENTITY, so no header text became body text, and the
    Content-* fields are the same but for the hp parameter.
"""

import email
import email.header

from smimecheck_mail import (POLICY, diag, header_fields, read_canon, show,
                             split_head_body, usage)

PROTECTED = [b"from", b"to", b"cc", b"subject", b"date", b"message-id",
             b"reply-to", b"in-reply-to", b"references"]


STRUCTURED = [
    b"from", b"to", b"cc", b"date", b"message-id", b"reply-to",
    b"in-reply-to", b"references"]


def _decoded(v):
    """v with RFC 2047 encoded words decoded to their octets (charset
    unknown-8bit too): a copy of an 8-bit text field is encoded."""
    if b"=?" not in v:
        return v
    try:
        parts = email.header.decode_header(v.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return v
    return b"".join(p if isinstance(p, bytes) else p.encode("ascii")
                    for p, _ in parts)


def _value(line):
    """The value of an unfolded field line, blanks around it dropped,
    encoded words decoded."""
    return _decoded(line.split(b":", 1)[1].strip(b" \t"))


def _protected_names():
    import os
    extra = [x.strip().lower().encode() for x in
             os.environ.get("HP_EXTRA", "").split(",") if x.strip()]
    return PROTECTED + extra


def _without_hp(line):
    """A Content-Type line with its hp parameter taken out."""
    parts = [p for p in line.split(b";")
             if not p.strip().lower().startswith(b"hp=")]
    return b";".join(parts).rstrip(b" \t")


def got_raw(fields):
    return [(n, f) for n, f in fields if not n.startswith(b"content-")]


def cmd_hp(args):
    if len(args) not in (3, 4) or args[2] not in ("clear", "cipher"):
        return usage()
    entity, orig, mode = read_canon(args[0]), read_canon(args[1]), args[2]
    names = _protected_names()
    bad = 0
    ehead, ebody = split_head_body(entity)
    ohead, _ = split_head_body(orig)
    efields = header_fields(ehead)
    # 8-bit octets in an address, identifier or date: left out of the copy
    want = [(n, _value(f)) for n, f in header_fields(ohead) if n in names
            and not (n in STRUCTURED and any(c > 127 for c in f))]
    for n, v in got_raw(efields):
        if any(c > 127 for c in v):
            diag("8-bit octets in the copy of %s" % n.decode())
            bad = 1
    got = [(n, _value(f)) for n, f in efields
           if not n.startswith(b"content-") and n != b"hp-outer"]
    if got != want:
        diag("protected fields differ from the original's:")
        diag("  want %s" % show(repr(want).encode(), 400))
        diag("  got  %s" % show(repr(got).encode(), 400))
        bad = 1
    outer = [_value(f) for n, f in efields if n == b"hp-outer"]
    if mode == "cipher":
        go = [(o.split(b":", 1)[0].strip().lower(), _value(o))
              for o in outer if b":" in o]
        if go != want or len(go) != len(outer):
            diag("HP-Outer fields %s, want %s"
                 % (show(repr(outer).encode(), 300),
                    show(repr(want).encode(), 300)))
            bad = 1
    elif outer:
        diag("HP-Outer in a signed-only message (hp=\"clear\")")
        bad = 1
    msg = email.message_from_bytes(entity, policy=POLICY)
    hp = msg.get_param("hp")
    if hp != mode:
        diag("Content-Type parameter hp is %r, want %r" % (hp, mode))
        bad = 1
    omsg = email.message_from_bytes(orig, policy=POLICY)
    for h in ("Subject", "From", "Date"):
        ov = omsg[h]
        if ov is None or any(ord(c) > 127 for c in str(ov)):
            continue  # 8-bit ones: compared as octets above
        if str(msg[h]) != str(ov):
            diag("email package: %s is %r inside, %r in the original"
                 % (h, msg[h], ov))
            bad = 1
    if len(args) == 4:
        phead, pbody = split_head_body(read_canon(args[3]))
        if pbody != ebody:
            diag("the root part's body differs from the one signed "
                 "without header protection")
            bad = 1
        pc = [f for n, f in header_fields(phead) if n.startswith(b"content-")]
        ec = [f for n, f in efields if n.startswith(b"content-")]
        if not any(n == b"content-type" for n, _ in header_fields(phead)):
            # RFC 2045's default, written out to carry the parameter
            pc.append(b"Content-Type: text/plain; charset=us-ascii")
        ec = [_without_hp(f) if f.lower().startswith(b"content-type:")
              else f for f in ec]
        if sorted(ec) != sorted(pc):
            diag("Content-* fields %s, without header protection %s"
                 % (show(repr(ec).encode(), 300),
                    show(repr(pc).encode(), 300)))
            bad = 1
    if not bad:
        diag("hp=\"%s\": %d protected fields, %d HP-Outer%s"
             % (mode, len(want), len(outer),
                ", body as without header protection" if len(args) == 4
                else ""))
    return bad
