/*
 * inbound -- one inbound message through decryption, verification and the
 * Authentication-Results stamp (issue 13), shaped like the milter
 * callbacks as message.h is, so the milter, -t --inbound and the unit
 * tests run the same code.  No libmilter and no logging in here.
 *
 * Use (milter/callbacks.c, wave 2):
 *
 *   inb = inb_new(snap);
 *   inb_rcpt(inb, addr) for each RCPT TO;
 *   inb_header(inb, name, value) for each header;
 *   v = inb_eoh(inb, outbound, &reason);
 *       INB_PASS:    not ours (outbound, no internal recipient, the
 *                    inbound keys off): accept untouched;
 *       INB_PROCESS: send the body with inb_body, then inb_eom.
 *   inb_eom(inb, out, arg, &edits, &nedits, &result, err, errlen):
 *       writes a new body through out only when result->body_replaced
 *       (decrypted, or opaque signed-data unwrapped); the edits always
 *       hold the stamp (forged Authentication-Results of our authserv-id
 *       deleted, ours added, the Subject tag).  result->reject says
 *       on_bad_signature = reject applies (550 5.7.1 with result->reason);
 *       no body is written then.
 *   inb_free(inb).
 *
 * The edits, in order: EDIT_DELETE of each forged Authentication-Results
 * (highest index first), after decryption/unwrapping EDIT_DELETE of the
 * outer Content-* fields (highest first) and EDIT_ADD of the inner ones,
 * EDIT_ADD of our Authentication-Results (folded with "\n" for
 * smfi_addheader), and with a tag EDIT_DELETE Subject 1 + EDIT_ADD of the
 * tagged Subject (msg_edit has no change operation).  A bad signature
 * inside an encrypted message still leaves it decrypted (smime says so).
 *
 * Bad input (broken base64 or DER, an encrypted part nested in a
 * multipart) never fails inb_eom: the body stays as it is and the stamp
 * says smime=permerror.  inb_eom returns -1 only for local trouble (out of
 * memory, the spool, the writer), the milter's on_error case.
 */
#ifndef SMIME_INBOUND_H
#define SMIME_INBOUND_H

#include <stddef.h>

#include <openssl/x509.h>

#include "message.h"
#include "snapshot.h"

enum inb_verdict {
	INB_PASS = 0, /* nothing to do: accept untouched */
	INB_PROCESS,  /* inbound: body, then inb_eom */
	INB_ERROR     /* cannot do the job (out of memory): on_error */
};

/* What end of message did, for the audit row and the log line.  Strings
 * are owned by the context (valid until inb_free). */
struct inb_result {
	const char *action; /* "decrypted", "verified", "verify-failed",
	                       "not-decrypted", or NULL (only stamped) */
	const char *smime;  /* RFC 7281 word: pass, fail, ... none */
	char reason[600];   /* the verdict's reason, or why not decrypted */
	const char *signer_serial, *signer_issuer, *signer_identifier;
	char decrypted_by[400]; /* "ADDR certificate SERIAL (STATE)", or "" */
	char cipher[64];        /* content cipher after decryption, or "" */
	int decrypted;          /* the body is the decrypted content */
	int revoked_key;        /* ... with the key of a revoked certificate */
	int body_replaced;      /* a new body was written through out */
	int reject;             /* on_bad_signature = reject applies */
};

struct inb;

/* A new context on snapshot s (not referenced: the caller keeps s alive).
 * NULL on out of memory. */
struct inb *inb_new(const struct snapshot *s);

/* One envelope recipient (RCPT TO argument, angle brackets allowed).
 * Returns 0, or -1 on out of memory. */
int inb_rcpt(struct inb *inb, const char *addr);

/* One header as the MTA passes it; keeps the top-level Content-* fields,
 * From, Subject, Message-ID, and the index of every Authentication-Results
 * field that claims our authserv-id (authres_is_ours), however many.  Returns 0 or -1 on out of memory. */
int inb_header(struct inb *inb, const char *name, const char *value);

/* End of headers: the verdict; *reason (may be NULL) gets a static text
 * for INB_PASS and INB_ERROR. */
enum inb_verdict inb_eoh(struct inb *inb, int outbound, const char **reason);

/* A chunk of the body (after INB_PROCESS), spooled.  Returns 0, or -1
 * with err filled (disk full). */
int inb_body(struct inb *inb, const unsigned char *buf, size_t len, char *err,
             size_t errlen);

/*
 * End of message: decrypt, verify, stamp (see the top of this file).  The
 * new body, when there is one, goes through out in chunks of at most 64
 * KiB with CRLF line ends.  *edits, *nedits (owned by inb) and *result are
 * set on success.  Returns 0, or -1 with err filled on a local failure;
 * then part of a new body may have been written (result->body_replaced).
 */
int inb_eom(struct inb *inb, mime_write_fn out, void *outarg,
            const struct msg_edit **edits, size_t *nedits,
            const struct inb_result **result, char *err, size_t errlen);

/* The envelope recipients, ", " between them, for the audit row and the
 * log (owned by inb; "" when none, NULL on out of memory). */
const char *inb_recipients(struct inb *inb);

/* The From address (after inb_eoh), or NULL when there is none usable. */
const char *inb_from(const struct inb *inb);

/* 1 when inb_eom began to write a new body (a failure after that must not
 * let the message go: it would be delivered half replaced). */
int inb_body_started(const struct inb *inb);

/* After inb_eom, when the signature verified (smime=pass): its signer
 * certificate, and in *certs (may be NULL) the certificates it carried,
 * for a harvest (harvest.h).  Owned by inb; NULL when it did not pass. */
X509 *inb_signer(const struct inb *inb, STACK_OF(X509) **certs);

/* Free; NULL is fine. */
void inb_free(struct inb *inb);

#endif
