"""smimecheck_mail.py -- how every smimecheck.py sub-command reads a
message (stdlib only): line ends made CRLF, the header block split from the
body, header fields with and without their folding, "# " diagnostics, and
the usage error that smimecheck.py's main turns into exit status 2.

The helpers are imported again by smimecheck.py, so that the shell tests'
`import smimecheck as sc` keep using sc.read_canon, sc.split_head_body ...
"""

import email.parser
import email.policy

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


class Usage(Exception):
    """A sub-command was given the wrong arguments."""


def usage():
    """Raises Usage: smimecheck.py's main prints the sub-command list on
    stderr and exits 2 (a sub-command writes `return usage()`)."""
    raise Usage()
