/*
 * conn -- the per-connection context the callbacks share (callbacks.c:
 * the mlfi_* functions and the outbound path; inbound.c: the inbound end
 * of message).  Glue only.
 */
#ifndef MILTER_CONN_H
#define MILTER_CONN_H

#include <netinet/in.h>

#include <libmilter/mfapi.h>

#include "inbound.h"
#include "message.h"
#include "policy.h"
#include "snapshot.h"

/* Connection context, from negotiate (or connect) to close. */
struct conn {
	unsigned long pflags; /* protocol steps agreed with the MTA */
	char *deferred;       /* error seen where no reply could be given */
	struct snapshot *snap;
	int internal; /* the client is internal (policy_client_internal) */
	char client[INET6_ADDRSTRLEN + 8];
	struct msg *msg; /* message context, from envfrom to eom/abort */
	struct inb *inb; /* inbound context (not outbound, inbound on) */
	int inbound;     /* inb_eoh said INB_PROCESS: the body is inb's */
	int outbound;    /* this message: internal or authenticated client */
	int connected;   /* connect ran: counted in active */
	int inflight;    /* the message is counted in inflight */
	int late;        /* the message began after the stop */
	char qid[64];
};

/* One audit row for this message (nothing in the offline mode).  serial,
 * issuer and recipients may be NULL (serial NULL: the signing
 * certificate's, for outbound rows). */
void conn_audit(struct conn *c, const char *action, const char *result,
                const char *serial, const char *issuer, const char *recipients);

/* The queue id (the MTA's "i" macro, NOQUEUE without one), kept. */
const char *conn_qid(SMFICTX *ctx, struct conn *c);

/* Apply a configured action (on_error and the like): reply, log, audit,
 * end the message.  what and reason go into the reply text. */
sfsistat conn_act(SMFICTX *ctx, struct conn *c, enum action a, const char *what,
                  const char *reason);

/* End of the message: free its contexts, uncount it. */
void conn_msg_done(struct conn *c);

/* Apply header edits in order; 0, or -1 when the MTA refused one. */
int conn_apply_edits(SMFICTX *ctx, const struct msg_edit *edits, size_t nedits);

/* mime_write_fn over smfi_replacebody (arg: the SMFICTX). */
int conn_body_out(void *arg, const unsigned char *buf, size_t len);

/* The inbound end of message (inbound.c): the new body, the stamp, the
 * audit row, the harvest, or on_bad_signature's reject. */
sfsistat inbound_eom(SMFICTX *ctx, struct conn *c);

/* The configured action when the inbound path cannot do its job:
 * on_error, never "accept" once part of a new body was sent. */
sfsistat inbound_error(SMFICTX *ctx, struct conn *c, const char *reason);

#endif
