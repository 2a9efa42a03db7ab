#!/usr/bin/python3
"""mkcorpus.py GOOD_DIR BAD_DIR -- write the test messages that are too big
or too binary to commit (stdlib only, deterministic: fixed random seed).

GOOD_DIR receives (signing and verification must succeed):
  04-large-attachment.eml  text part + ~3 MB random binary attachment (base64)
  13-8bit-binaryish.eml    application/octet-stream, Content-Transfer-Encoding
                           8bit: lines of random bytes 0x01-0xff without CR/LF
                           (legal 8bit data, but not 7-bit safe)
BAD_DIR receives (the milter must survive them; each must arrive signed and
verifying, or untouched):
  b03-nul-bytes.eml        NUL bytes inside body lines
  b04-huge-header.eml      a header block of 10,000 lines

Files use LF line ends like the committed corpus in tests/data/.
"""

import base64
import os
import random
import sys


def header(n, subject, sender="andi@banjarkota.go.id"):
    return ("From: %s\nTo: someone@example.org\nSubject: %s\n"
            "Date: Tue, 24 Nov 2026 11:%02d:00 +0700\n"
            "Message-ID: <gen-%d@banjarkota.go.id>\nX-Test-Id: gen-%02d\n"
            % (sender, subject, n, n, n))


def large(rng):
    blob = rng.randbytes(3 << 20)  # 3 MiB
    b64 = base64.encodebytes(blob).decode("ascii")
    return (header(4, "Lampiran besar: arsip laporan")
            + "MIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="big-0042"\n\n'
            "--big-0042\nContent-Type: text/plain; charset=us-ascii\n\n"
            "Arsip laporan tahunan terlampir (3 MB).\n\n"
            "--big-0042\n"
            'Content-Type: application/octet-stream; name="arsip.bin"\n'
            "Content-Transfer-Encoding: base64\n"
            'Content-Disposition: attachment; filename="arsip.bin"\n\n'
            + b64 + "--big-0042--\n").encode("ascii")


def binaryish(rng):
    allowed = bytes(b for b in range(1, 256) if b not in (10, 13))
    lines = []
    for _ in range(200):
        lines.append(bytes(rng.choice(allowed) for _ in range(rng.randint(0, 120))))
    body = b"\n".join(lines) + b"\n"
    return (header(13, "Data mentah 8bit").encode("ascii")
            + b"MIME-Version: 1.0\n"
            b'Content-Type: multipart/mixed; boundary="bin-8bit"\n\n'
            b"--bin-8bit\nContent-Type: text/plain; charset=us-ascii\n\n"
            b"Data mentah terlampir.\n\n"
            b"--bin-8bit\n"
            b'Content-Type: application/octet-stream; name="mentah.dat"\n'
            b"Content-Transfer-Encoding: 8bit\n"
            b'Content-Disposition: attachment; filename="mentah.dat"\n\n'
            + body + b"--bin-8bit--\n")


def nul_bytes():
    return (header(3, "Body with NUL bytes").encode("ascii")
            + b"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"
            b"before the NUL\nthere is a NUL here: >\x00< and two more \x00\x00\n"
            b"\x00 line starting with NUL\nafter the NUL\n")


def huge_header():
    lines = [header(14, "Header block of 10,000 lines").rstrip("\n")]
    for i in range(10000 - 6):
        lines.append("X-Filler-%05d: padding value number %d" % (i, i))
    return ("\n".join(lines) + "\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=us-ascii\n\nbody after a huge header\n").encode("ascii")


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    good, bad = argv[1], argv[2]
    os.makedirs(good, exist_ok=True)
    os.makedirs(bad, exist_ok=True)
    rng = random.Random(20261124)
    out = {
        os.path.join(good, "04-large-attachment.eml"): large(rng),
        os.path.join(good, "13-8bit-binaryish.eml"): binaryish(rng),
        os.path.join(bad, "b03-nul-bytes.eml"): nul_bytes(),
        os.path.join(bad, "b04-huge-header.eml"): huge_header(),
    }
    for path, data in out.items():
        with open(path, "wb") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
