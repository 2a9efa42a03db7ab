/*
 * inbound -- the inbound end of message: lib/inbound.c decides and writes
 * the new body; this file applies its edits, replies, logs one line and
 * writes the audit row, and hands a verified signer to the harvest.
 */
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "harvest.h"
#include "log.h"
#include "milter.h"
#include "mwrap.h"

/* The From address for the log line. */
static const char *from_text(const struct conn *c)
{
	const char *f = inb_from(c->inb);

	return f ? f : "(no From address)";
}

sfsistat inbound_error(SMFICTX *ctx, struct conn *c, const char *reason)
{
	const char *note;
	enum action a = policy_action(c->snap->cfg, POLICY_ERROR, 0,
	                              inb_body_started(c->inb), &note);
	char why[700];

	if (note)
		snprintf(why, sizeof(why), "%s (%s)", reason, note);
	return conn_act(ctx, c, a, "cannot check inbound mail",
	                note ? why : reason);
}

/* A newly harvested certificate: log it once and use it at once. */
static void harvested(void *arg, const char *address, const char *serial,
                      X509 *cert)
{
	struct conn *c = arg;
	struct snapshot *s = milter_snapshot();

	mlog(LOG_NOTICE,
	     "%s: harvested certificate %s for %s (signed mail from %s)",
	     c->qid, serial, address, c->client);
	if (s && snapshot_add_harvested(s, address, serial, cert) != 0)
		mlog(LOG_WARNING,
		     "%s: out of memory: certificate %s for %s is used after "
		     "the next reload",
		     c->qid, serial, address);
	snapshot_unref(s);
}

/* The signer of a signature that verified, offered to the harvest. */
static void harvest(struct conn *c)
{
	STACK_OF(X509) *certs;
	X509 *signer = inb_signer(c->inb, &certs);
	const char *from = inb_from(c->inb);
	char why[512];
	int n;

	if (!c->snap->cfg->harvest || signer == NULL)
		return;
	n = harvest_signer(c->snap, from, signer, certs, harvested, c, why,
	                   sizeof(why));
	if (n < 0)
		mlog(LOG_WARNING, "%s: certificate harvest from %s failed: %s",
		     c->qid, from, why);
	else if (n == 0 && c->snap->cfg->log_verbose)
		mlog(LOG_INFO, "%s: nothing harvested from %s: %s", c->qid,
		     from, why);
}

/* The verdict in words, for the log line and the audit row:
 * "smime=pass (signature verified) signer SERIAL; decrypted ..." */
static void verdict_text(const struct inb_result *r, char *buf, size_t len)
{
	int n = snprintf(buf, len, "smime=%s", r->smime);

	if (r->reason[0] && n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, " (%s%s)",
		              r->action && strcmp(r->action, "not-decrypted") ==
		                                      0
		                      ? "not decrypted: "
		                      : "",
		              r->reason);
	if (r->signer_serial && n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, " signer %s",
		              r->signer_serial);
	if (r->decrypted && n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, "; decrypted for %s (%s)",
		         r->decrypted_by, r->cipher[0] ? r->cipher : "?");
}

sfsistat inbound_eom(SMFICTX *ctx, struct conn *c)
{
	const struct msg_edit *edits;
	const struct inb_result *r;
	size_t nedits;
	char err[512], text[1400];
	const char *rcpts;

	if (inb_eom(c->inb, conn_body_out, ctx, &edits, &nedits, &r, err,
	            sizeof(err)) != 0)
		return inbound_error(ctx, c, err);
	rcpts = inb_recipients(c->inb);
	verdict_text(r, text, sizeof(text));
	if (r->reject) {
		char reply[700];
		snprintf(reply, sizeof(reply), "bad signature: %s",
		         r->reason[0] ? r->reason : r->smime);
		mlog(LOG_NOTICE, "%s: inbound from %s to %s: %s; rejected",
		     c->qid, from_text(c), rcpts ? rcpts : "?", text);
		mw_setreply(ctx, "550", "5.7.1", reply);
		conn_audit(c, r->action ? r->action : "rejected", text,
		           r->signer_serial, r->signer_issuer, rcpts);
		conn_msg_done(c);
		return SMFIS_REJECT;
	}
	if (conn_apply_edits(ctx, edits, nedits) != 0)
		return inbound_error(ctx, c, "MTA refused a header change");
	mlog(r->action ? LOG_NOTICE : LOG_INFO,
	     "%s: inbound from %s to %s: %s (%zu edits%s)", c->qid,
	     from_text(c), rcpts ? rcpts : "?", text, nedits,
	     r->body_replaced ? ", new body" : "");
	if (r->action)
		conn_audit(c, r->action, text, r->signer_serial,
		           r->signer_issuer, rcpts);
	harvest(c);
	conn_msg_done(c);
	return SMFIS_CONTINUE;
}
