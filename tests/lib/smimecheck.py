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
  hp ENTITY ORIGINAL clear|cipher [PLAIN_ENTITY]
      Header protection (RFC 9788, smimecheck_hp.py): ENTITY's root part
      has hp=MODE on its Content-Type and a copy of ORIGINAL's protected
      fields (From, To, Cc, Subject, Date, Message-ID, Reply-To,
      In-Reply-To, References, and $HP_EXTRA, comma separated) in its
      header section, nothing else but Content-* (and, with cipher, one
      HP-Outer per protected field); the email package reads them; with
      PLAIN_ENTITY (signed with header_protection = false) the body after
      the header section is byte for byte the same, and so are the
      Content-* fields but for hp.
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


# The entry point.  The sub-commands live in smimecheck_signed.py (signed
# and plain messages) and smimecheck_env.py (encrypted ones, read with
# smimecheck_der.py); the message helpers they share are smimecheck_mail.py,
# imported here again for the tests that `import smimecheck as sc`.

import os
import sys

# the parts beside this file, also when it is loaded by path
# (importlib.util.spec_from_file_location, as decrypt-selftest.sh does)
_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)

from smimecheck_mail import (CRLF, POLICY, Usage, canon, diag,  # noqa: E402,F401
                             header_fields, is_content_header, parse_headers,
                             raw_fields, read_canon, show, split_head_body)
from smimecheck_signed import (cmd_cms, cmd_content, cmd_crlf,  # noqa: E402
                               cmd_from_addr, cmd_headers, cmd_is_signed,
                               cmd_refsign, cmd_same_body, cmd_split)
from smimecheck_hp import cmd_hp  # noqa: E402
from smimecheck_env import (cmd_cert_id, cmd_entity, cmd_env_check,  # noqa: E402
                            cmd_env_join, cmd_env_recipients, cmd_env_split,
                            cmd_env_tamper, cmd_env_wrap, cmd_is_encrypted)


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
    "hp": cmd_hp,
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        return usage()
    try:
        return COMMANDS[argv[1]](argv[2:])
    except Usage:
        return usage()
    except (OSError, ValueError, IndexError) as e:
        diag("%s: %s" % (argv[1], e))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
