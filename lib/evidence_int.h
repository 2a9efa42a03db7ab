/*
 * evidence_int -- shared by lib/evidence*.c only: the message as a
 * buffer (evidence_msg.c: header fields, the parts of a multipart/signed,
 * the signature's DER) and the verdict text (evidence_text.c).
 */
#ifndef SMIME_EVIDENCE_INT_H
#define SMIME_EVIDENCE_INT_H

#include <stddef.h>

#include <openssl/bio.h>

#include "evidence.h"
#include "smime_verify.h"

/* A range of the message buffer. */
struct ev_span {
	const unsigned char *p;
	size_t n;
};

/* The value of the first header field name in the header block hdr,
 * unfolded and trimmed (malloc'd), or NULL when absent. */
char *ev_header(struct ev_span hdr, const char *name);
/* The same for the field's n-th occurrence (0: the first). */
char *ev_header_n(struct ev_span hdr, const char *name, int n);

/* Split msg into its header block and body (after the blank line). */
void ev_split(struct ev_span msg, struct ev_span *hdr, struct ev_span *body);

/* The two parts of a multipart/signed body with this boundary: the first
 * part's octets (as they are, up to the line end before the delimiter)
 * and the signature part (its header and body).  NULL when found, else
 * why not. */
const char *ev_signed_parts(struct ev_span body, const char *boundary,
                            struct ev_span *content, struct ev_span *sig);

/* The DER of the signature part sig (base64 or binary), malloc'd into
 * *der.  NULL when done, else why not. */
const char *ev_sig_der(struct ev_span sig, unsigned char **der, size_t *len);

/* A reader over s that gives every bare LF as CRLF (the canonical form
 * the signature covers: a mailbox file may have lost its CRs). */
struct ev_canon {
	struct ev_span s;
	size_t pos;
	int lf_owed; /* a bare LF seen: its CR written, the LF still owed */
};
ssize_t ev_canon_read(void *arg, void *buf, size_t len);

/* A BIO reading the body of an application/pkcs7-mime entity as DER
 * (through a base64 filter when b64).  NULL on out of memory. */
BIO *ev_der_bio(struct ev_span body, int b64);

/* 1 when the (base64 when b64) CMS in body is EnvelopedData or
 * AuthEnvelopedData. */
int ev_is_enveloped(struct ev_span body, int b64);

/* Compare the protected header fields in the signed part content (its
 * header section, when its Content-Type has the hp parameter) with the
 * outer header section outer: fills e->hp, hp_fields, hp_changed and
 * hp_detail (evidence_hp.c). */
void ev_hp_compare(struct ev_span content, struct ev_span outer,
                   struct evidence *e);

/* The verdict line of e (status and reasons set) into e->verdict. */
void ev_verdict_text(struct evidence *e);

/* The Indonesian words for an English reason of smime_verify. */
const char *ev_reason_id(const char *reason_en);

#endif
