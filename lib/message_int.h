/*
 * message_int -- the message context shared by message.c (headers,
 * envelope, the verdicts at end of headers) and message_eom.c
 * (the signed or encrypted body at end of message).  Private to those two.
 */
#ifndef SMIME_MESSAGE_INT_H
#define SMIME_MESSAGE_INT_H

#include <openssl/x509.h>

#include "message.h"

struct chdr {
	char *name;  /* owns the allocation, */
	char *value; /* which holds the value after the name */
	int index;
};

struct msg {
	const struct snapshot *snap;
	time_t signing_time;
	struct chdr *ch; /* top-level Content-* headers */
	size_t nch, capch;
	struct chdr *hp; /* copies of the protected fields (RFC 9788) */
	size_t nhp, caphp;
	char *from_value;
	int from_count;
	int have_mime_version;
	char *message_id;
	char from[320];
	const struct signer_entry *signer;
	struct spool *body;
	struct mime_scan *scan;
	struct msg_edit *edits;
	size_t nedits;
	int overflow;
	char envfrom[320];
	char **rcpts; /* envelope recipients, lower-case, no duplicates */
	size_t nrcpts, caprcpts;
	STACK_OF(X509) *enc; /* encrypt to these (not owned), or NULL */
	char *enc_note;      /* why opportunistic encryption did not happen */
	int required;        /* a recipient's rule requires encryption */
	/* the signature time-stamp (timestamp_url, issue 14) */
	time_t ts_time;    /* the token's genTime; 0: no token */
	char ts_note[400]; /* why there is none (TSA failure), or "" */
	int ts_failed;     /* on_timestamp_failure = tempfail and it failed */
	int body_sent;     /* part of a new body went to the MTA */
};

#endif
