/*
 * smime_verify -- verify an incoming S/MIME signature and give a verdict in
 * the words of RFC 7281 (pass, fail, neutral, temperror, permerror, none),
 * with a reason in plain words and the signer's identity for the
 * Authentication-Results stamp (authres.h), the audit row and harvest.
 *
 * The one place that verifies signatures: inbound verification (issue 13)
 * and harvest (msg_harvest) both call it.
 *
 * Two shapes of signed mail:
 *   - multipart/signed: the caller hands the first part's bytes exactly as
 *     they arrived (canonical CRLF, its MIME headers included, up to but
 *     not including the CRLF before the boundary), as a BIO or a read
 *     callback, so a large body is streamed through the digest and never
 *     held here; plus the DER of the application/pkcs7-signature (or
 *     x-pkcs7-signature) part, already base64-decoded (small).
 *   - opaque signed-data (application/pkcs7-mime; smime-type=signed-data):
 *     the DER ContentInfo, read from a BIO.  The content inside is written
 *     to the caller's BIO as it is verified (inbound_unwrap_opaque); it is
 *     written whatever the verdict, so the caller decides by the verdict.
 *     Memory stays bounded whatever the content's size: the DER/BER is
 *     walked as it is read (smime_verify_opaque.c), the content streamed
 *     out and through the digests, and only the rest (certificates, signer
 *     infos; at most 4 MiB) kept to be checked as a detached signature.
 *
 * Checks, in this order, the first that fails giving the verdict:
 *   1. the DER is a SignedData with a signer (else permerror);
 *   2. the signer certificate is in the signature (else fail);
 *   3. the signature over the signed attributes, then the content digest
 *      ("body altered after signing");
 *   4. the signer certificate's validity at the signingTime attribute (when
 *      present) and at now;
 *   5. the chain to the trust bundle ca_file at now (a ca_file that cannot
 *      be read is temperror);
 *   6. revocation: the signer and its intermediates against the
 *      revoked_serials table of imported CRLs (a database error is
 *      temperror; db NULL skips the check);
 *   7. keyUsage / extendedKeyUsage: an EKU, when present, includes
 *      emailProtection (or anyExtendedKeyUsage), as RFC 8550 4.4.4 asks;
 *      no EKU at all is allowed (RFC 5280);
 *   8. the signer certificate carries the From address (no From address:
 *      neutral).
 * Only the first SignerInfo is judged (partners' clients write one).
 */
#ifndef SMIME_VERIFY_H
#define SMIME_VERIFY_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/x509.h>

struct db;

/* The smime method's results (RFC 7281 section 3). */
enum smime_result {
	SMIME_NONE = 0,  /* not signed */
	SMIME_PASS,      /* signature and certificate good */
	SMIME_FAIL,      /* signature or certificate check fails */
	SMIME_NEUTRAL,   /* signed, but cannot be judged (no From) */
	SMIME_TEMPERROR, /* a local, temporary problem (database, ca_file) */
	SMIME_PERMERROR  /* malformed signature */
};

/* "pass", "fail", ... for r; "none" for anything unknown. */
const char *smime_result_name(enum smime_result r);

/* What the verifier needs besides the message. */
struct smime_verify_opts {
	const char *ca_file; /* the trust bundle (PEM, DER or PKCS#7) */
	X509_STORE *store;   /* ca_file loaded once (smime_trust_load, kept by
	                        the snapshot); NULL: read ca_file each time */
	struct db *db;       /* revoked_serials; NULL: no revocation check */
	const char *from;    /* the From address (addr_from_header), or NULL */
	time_t now;          /* the time to judge validity at */
};

/* The verdict.  Strings are malloc'd (NULL when unknown); clear with
 * smime_verdict_clear. */
struct smime_verdict {
	enum smime_result result;
	char reason[512];      /* plain words, for the stamp's comment */
	char *identifier;      /* signer's address: the From address when the
	                          certificate carries it, else its first one */
	char *serial;          /* signer serial, hex upper-case */
	char *issuer;          /* signer issuer, RFC 2253 (cert_name_text) */
	char *subject;         /* signer subject, RFC 2253 */
	time_t signing_time;   /* signingTime attribute; 0 when absent */
	X509 *signer;          /* the signer certificate (own reference) */
	STACK_OF(X509) *certs; /* all certificates of the signature, own
	                          references (harvest's untrusted chain) */
	int opaque;            /* 1 for opaque signed-data */
};

/* Read callback for content: up to len bytes into buf; returns the count,
 * 0 at the end, -1 on error (spool_read has this shape). */
typedef ssize_t (*smime_read_fn)(void *arg, void *buf, size_t len);

/*
 * Verify a multipart/signed entity: content is the first part's bytes
 * (read to its end, not freed), sig/siglen the DER of the signature part.
 * Fills *v (always: the result says what happened; v is cleared first).
 * Returns 0 when a verdict was reached, -1 only on out of memory (v then
 * says temperror).
 */
int smime_verify_detached(const struct smime_verify_opts *o, BIO *content,
                          const unsigned char *sig, size_t siglen,
                          struct smime_verdict *v);

/* The same with the content read through rd(arg, ...) in pieces. */
int smime_verify_detached_fn(const struct smime_verify_opts *o,
                             smime_read_fn rd, void *arg,
                             const unsigned char *sig, size_t siglen,
                             struct smime_verdict *v);

/*
 * Verify opaque signed-data: der is the DER/BER ContentInfo, read once
 * in 16 KiB pieces (not freed; a BIO over the base64-decoded part, a file
 * or memory).  The encapsulated content (the octets of eContent, pieces of
 * a constructed OCTET STRING joined) is written to content_out (may be
 * NULL) as it is read, before the signature is judged: what was written
 * is only to be used as the verdict allows, and a permerror found after
 * the content (cut certificates or signer infos) leaves it written.
 * Fills *v as smime_verify_detached does (v->opaque set); returns 0, or
 * -1 on out of memory or when content_out fails (v says temperror).
 */
int smime_verify_opaque(const struct smime_verify_opts *o, BIO *der,
                        BIO *content_out, struct smime_verdict *v);

/* The trust bundle ca_file as a store for o->store (shared by threads;
 * X509_STORE_free it).  NULL with err filled when it cannot be read. */
X509_STORE *smime_trust_load(const char *ca_file, char *err, size_t errlen);

/* Free what the verdict holds and zero it; NULL is fine. */
void smime_verdict_clear(struct smime_verdict *v);

#endif
