/*
 * evidence -- the check of one disputed message (issue 14): does its
 * signature verify, who signed it, was the certificate good when it
 * signed and is it good today (expired? revoked, since when?), and what
 * the audit log recorded for its Message-ID, with the hash chain checked
 * up to that row.  The result is a set of facts plus a verdict in
 * Indonesian and English that smimectl verify prints (and that the milter
 * or another tool may reuse).  Pure: no output, no exit.
 *
 * The signature is judged twice by smime_verify (the one verifier):
 *   - at the signing time (the signingTime attribute; today when it has
 *     none), without the revocation lists: the content, the signer, the
 *     validity and the chain as they were then;
 *   - today, with the imported CRLs.
 * Revocation is then weighed by its date: from the CRL entries
 * (revoked_serials) and, for the city's own certificates, the
 * certificates table (smimectl revoke).  A certificate revoked after it
 * signed leaves the signature "valid at signing time, revoked since ...";
 * one revoked at or before the signing time (or with no date to compare)
 * makes it invalid.
 *
 * Where the later parts of issue 14 come in:
 *   - an RFC 3161 token (trusted time) that verifies against
 *     o->timestamp_ca_file replaces the signingTime claim as the time the
 *     signature is judged at (evidence_signing_time; e->time_source says
 *     "timestamp");
 *   - protected headers (RFC 9788, evidence_hp.c): the copies in the
 *     signed part are compared with the outer header section once the
 *     signature verified; a difference makes the message invalid and is
 *     named in e->hp_detail and the reasons;
 *   - audit anchors: e->audit gets the nearest anchor after the row.
 */
#ifndef SMIME_EVIDENCE_H
#define SMIME_EVIDENCE_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "db.h"
#include "smime_verify.h"

/* The outcome for one message; the numbers are smimectl verify's exit
 * codes for a single file. */
enum evidence_status {
	EVIDENCE_VALID = 0,    /* signature good (at least at signing time),
	                          audit chain intact up to its row */
	EVIDENCE_INVALID = 1,  /* the signature or its certificate fails, or
	                          the audit chain is broken up to its row */
	EVIDENCE_UNCHECKED = 2 /* could not be judged: unsigned, encrypted,
	                          no database, no trust bundle */
};

/* "valid", "invalid", "unchecked". */
const char *evidence_status_name(enum evidence_status s);

struct evidence_opts {
	const char *ca_file; /* the trust bundle */
	X509_STORE *store;   /* ca_file loaded (smime_trust_load); NULL: read
	                        ca_file for each message */
	struct db *db;       /* revocation and audit; NULL: "could not
	                        check" with db_error */
	const char *db_error;
	/* one node's audit chain and its anchors verified once for a run of
	 * several messages (db_audit_verify_node_anchors' result, rc and
	 * anchors); chain NULL, or a row of another node (chain->node):
	 * evidence_check verifies the row's own chain itself */
	const struct db_audit_check *chain;
	int chain_rc;
	const struct db_audit_anchor *anchors;
	size_t nanchors;
	const char *authserv_id; /* ours, to find the gateway's stamp; NULL:
	                            none looked for */
	const char *timestamp_ca_file; /* the TSA's trust bundle, for an RFC
	                                  3161 token on the signature; NULL:
	                                  a token is not checked */
	time_t now;
};

/* The audit row of the message. */
struct evidence_audit {
	int rows;     /* rows with this Message-ID (0: none found) */
	long long id; /* the row reported: the one with the signer's serial,
	                 else the last (its position in the hash chain) */
	time_t at;
	char *queue_id, *action, *cert_serial, *result, *hash;
	int chain;           /* 1: the chain verifies up to this row, 0:
	                        broken at or before it, -1: not checked */
	long long broken_id; /* the first broken row (0: none) */
	long long prev_id;   /* the row before it (0: none) */
	enum db_audit_problem problem;
	/* the nearest RFC 3161 anchor at or after the row (0: none yet) */
	long long anchor_id, anchor_row;
	time_t anchor_time;   /* its genTime */
	int anchor_ok;        /* it holds (anchor_check) */
	char anchor_why[300]; /* why not, or "" */
};

struct evidence {
	enum evidence_status status;
	const char *shape; /* "multipart/signed", "signed-data",
	                           "enveloped-data", "unsigned", "unreadable" */
	char *message_id;  /* header values, unfolded (NULL: absent) */
	char *stamp;       /* the Authentication-Results field of our
	                      authserv_id (inbound mail), or NULL */
	char *from, *subject, *date;
	int signature_ok;           /* 1: content intact and signed by the
	                           certificate's key, chain good at signing */
	struct smime_verdict then;  /* judged at signing_time, no CRLs */
	struct smime_verdict today; /* judged at now, with the CRLs */
	time_t signing_time;        /* the time judged at (0: none given) */
	const char *time_source;    /* "timestamp" (an RFC 3161 token that
	                               verified), "signingTime", or NULL */
	int ts_present;             /* the signature carries a token */
	time_t ts_gen_time;         /* its genTime when it verified, else 0 */
	char ts_tsa[300];           /* the TSA (its certificate's subject) */
	char ts_problem[300];       /* why it did not verify, or "" */
	char **chain;               /* subjects, signer first, trust anchor last
	                           (NULL-terminated; NULL when unknown) */
	int revoked;                /* the signer or an issuer is revoked */
	time_t revoked_at;          /* since when (0: date unknown) */
	const char *revoked_by;     /* "crl" or "certificates" */
	char *revoked_what;         /* subject of the revoked certificate */
	struct evidence_audit audit;
	/* header protection (RFC 9788), multipart/signed only */
	const char *hp;      /* the signed part's hp parameter: "clear",
	                     "cipher", or NULL (no protected copies) */
	int hp_fields;       /* protected fields compared */
	char *hp_changed;    /* the first field that differs, or NULL */
	char hp_detail[420]; /* "Subject changed after signing: ..." */
	char reason_en[700]; /* why, in plain words ("" when all good) */
	char reason_id[700];
	char verdict[2048]; /* the line to paste: "SAH / VALID: ..." */
};

/*
 * Check the message msg (len octets: header, blank line, body, as stored
 * in a mailbox or .eml file; LF or CRLF line ends) and fill *e (cleared
 * first; evidence_clear it).  Returns 0 when a status was reached (bad
 * input is a status, not an error), -1 on out of memory with err filled.
 */
int evidence_check(const struct evidence_opts *o, const unsigned char *msg,
                   size_t len, struct evidence *e, char *err, size_t errlen);

/* Mark e "could not check" with why (for a file that cannot be read);
 * e is cleared first and the verdict line written. */
void evidence_unreadable(struct evidence *e, const char *why);

/* Free what e holds and zero it; NULL is fine. */
void evidence_clear(struct evidence *e);

#endif
