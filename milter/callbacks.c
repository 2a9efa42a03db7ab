/*
 * callbacks -- the mlfi_* functions.  Glue only: every decision is a call
 * into lib/ (policy.c: internal, outbound, actions; message.c: verdicts);
 * this file maps verdicts to milter replies, logs one line per message and
 * writes the audit row.  The inbound end of message is inbound.c.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "conn.h"
#include "db.h"
#include "log.h"
#include "milter.h"
#include "mwrap.h"

time_t milter_signing_time;

static pthread_mutex_t snap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *current;
static int active, inflight, stopping;

struct snapshot *milter_snapshot(void)
{
	struct snapshot *s;

	pthread_mutex_lock(&snap_lock);
	s = snapshot_ref(current);
	pthread_mutex_unlock(&snap_lock);
	return s;
}

void milter_set_snapshot(struct snapshot *s)
{
	struct snapshot *old;

	pthread_mutex_lock(&snap_lock);
	old = current;
	current = s;
	pthread_mutex_unlock(&snap_lock);
	snapshot_unref(old);
}

int milter_active(void)
{
	return __atomic_load_n(&active, __ATOMIC_SEQ_CST);
}

int milter_inflight(void)
{
	return __atomic_load_n(&inflight, __ATOMIC_SEQ_CST);
}

void milter_stop_begin(void)
{
	__atomic_store_n(&stopping, 1, __ATOMIC_SEQ_CST);
}

void conn_msg_done(struct conn *c)
{
	msg_free(c->msg);
	c->msg = NULL;
	inb_free(c->inb);
	c->inb = NULL;
	c->inbound = 0;
	if (c->inflight)
		__atomic_sub_fetch(&inflight, 1, __ATOMIC_SEQ_CST);
	c->inflight = 0;
	c->late = 0;
	free(c->deferred);
	c->deferred = NULL;
	c->outbound = 0;
	c->qid[0] = '\0';
}

const char *conn_qid(SMFICTX *ctx, struct conn *c)
{
	if (c->qid[0] == '\0') {
		const char *q = mw_getsymval(ctx, "i");
		snprintf(c->qid, sizeof(c->qid), "%s", q ? q : "NOQUEUE");
	}
	return c->qid;
}

void conn_audit(struct conn *c, const char *action, const char *result,
                const char *serial, const char *issuer, const char *recipients)
{
	struct audit_row r;

	if (mw_offline)
		return; /* the offline test mode leaves no trace in the log */
	memset(&r, 0, sizeof(r));
	r.queue_id = c->qid;
	r.message_id = c->msg ? msg_message_id(c->msg) : NULL;
	r.from_addr = c->inb   ? inb_from(c->inb)
	              : c->msg ? msg_from(c->msg)
	                       : NULL;
	r.action = action;
	r.cert_serial = serial              ? serial
	                : c->msg && !c->inb ? msg_signer_serial(c->msg)
	                                    : NULL;
	r.cert_issuer = issuer;
	r.recipients = recipients;
	r.digest = c->inb ? NULL : c->snap->cfg->digest;
	r.result = result;
	audit_submit(c->snap->audit, &r);
}

/* Apply a configured action; logs and audits; returns the sfsistat. */
static void audit(struct conn *c, const char *action, const char *result)
{
	conn_audit(c, action, result, NULL, NULL,
	           c->inb ? inb_recipients(c->inb) : NULL);
}

sfsistat conn_act(SMFICTX *ctx, struct conn *c, enum action a, const char *what,
                  const char *reason)
{
	char text[600];

	snprintf(text, sizeof(text), "%s: %s", what, reason);
	switch (a) {
	case ACTION_ACCEPT:
		/* inbound: delivered as it came, without a stamp */
		mlog(LOG_NOTICE, "%s: %s; passed %s", conn_qid(ctx, c), text,
		     c->inb ? "unchecked" : "unsigned");
		audit(c, c->inb ? "passed" : "unsigned", text);
		conn_msg_done(c);
		return SMFIS_ACCEPT;
	case ACTION_REJECT:
		mlog(LOG_NOTICE, "%s: %s; rejected", conn_qid(ctx, c), text);
		mw_setreply(ctx, "550", "5.7.1", text);
		audit(c, "rejected", text);
		conn_msg_done(c);
		return SMFIS_REJECT;
	default:
		mlog(LOG_WARNING, "%s: %s; tempfailed", conn_qid(ctx, c), text);
		mw_setreply(ctx, "451", "4.7.0", text);
		audit(c, "tempfailed", text);
		conn_msg_done(c);
		return SMFIS_TEMPFAIL;
	}
}

static sfsistat on_error(SMFICTX *ctx, struct conn *c, const char *reason)
{
	const char *note;
	enum action a =
	        c->msg ? msg_action(c->msg, MSG_ERROR, &note)
	               : policy_action(c->snap->cfg, POLICY_ERROR, 0, 0, &note);
	char why[700];

	if (note)
		snprintf(why, sizeof(why), "%s (%s)", reason, note);
	return conn_act(ctx, c, a,
	                c->inb ? "cannot check inbound mail" : "cannot sign",
	                note ? why : reason);
}

/*
 * Steps we need no reply for: MAIL, headers and body chunks only feed the
 * message context, so the MTA need not wait for each of them (two round
 * trips per message instead of one per header).  Errors found there are
 * kept in c->deferred and acted on at end of headers or end of message.
 */
#define WANT_NR (SMFIP_NR_HDR | SMFIP_NR_MAIL | SMFIP_NR_BODY | SMFIP_NR_CONN)
#define WANT_NO (SMFIP_NOHELO | SMFIP_NORCPT | SMFIP_NOUNKNOWN | SMFIP_NODATA)

static sfsistat reply(struct conn *c, unsigned long nr_flag)
{
	return (c->pflags & nr_flag) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static void defer(struct conn *c, const char *why)
{
	if (c->deferred == NULL)
		c->deferred = strdup(why);
}

/* Does the inbound path look at mail at all? */
static int inbound_on(const struct config *cfg)
{
	return cfg->inbound_decrypt || cfg->inbound_verify;
}

static sfsistat mlfi_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                               unsigned long f2, unsigned long f3,
                               unsigned long *pf0, unsigned long *pf1,
                               unsigned long *pf2, unsigned long *pf3)
{
	struct conn *c = calloc(1, sizeof(*c));
	unsigned long need = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY;
	unsigned long skip = WANT_NO;
	struct snapshot *s = milter_snapshot();

	if (c == NULL) {
		snapshot_unref(s);
		return SMFIS_REJECT; /* the MTA applies milter_default_action */
	}
	if ((f0 & need) != need) {
		mlog(LOG_ERR, "the MTA does not allow header and body changes");
		free(c);
		snapshot_unref(s);
		return SMFIS_REJECT;
	}
	/* recipients matter to an encryption policy (which may refuse one:
	 * it needs the reply) and to the inbound path (which only listens:
	 * no reply, no round trip per recipient); without either the MTA
	 * need not send them */
	if (s && (s->cfg->nencrypt > 0 || inbound_on(s->cfg)))
		skip &= ~SMFIP_NORCPT;
	if (s && s->cfg->nencrypt == 0)
		skip |= SMFIP_NR_RCPT;
	c->snap = s; /* the connection keeps the snapshot it negotiated with */
	c->pflags = f1 & (WANT_NR | skip);
	mw_setpriv(ctx, c);
	*pf0 = need;
	*pf1 = c->pflags;
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

static sfsistat mlfi_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
	struct conn *c = mw_getpriv(ctx);

	if (c == NULL)
		c = calloc(1, sizeof(*c));
	if (c == NULL) {
		mlog(LOG_ERR, "out of memory at connect");
		return SMFIS_TEMPFAIL;
	}
	if (c->snap == NULL)
		c->snap = milter_snapshot();
	/* -t --inbound plays a client from outside */
	c->internal = mw_offline && mw_offline->inbound
	                      ? 0
	                      : policy_client_internal(c->snap->cfg, addr);
	if (addr == NULL) {
		snprintf(c->client, sizeof(c->client), "local");
	} else {
		if (addr->sa_family == AF_INET)
			inet_ntop(AF_INET,
			          &((struct sockaddr_in *)addr)->sin_addr,
			          c->client, sizeof(c->client));
		else if (addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6,
			          &((struct sockaddr_in6 *)addr)->sin6_addr,
			          c->client, sizeof(c->client));
		else
			snprintf(c->client, sizeof(c->client), "%s",
			         host ? host : "unknown");
	}
	if (!c->connected)
		__atomic_add_fetch(&active, 1, __ATOMIC_SEQ_CST);
	c->connected = 1;
	mw_setpriv(ctx, c);
	return reply(c, SMFIP_NR_CONN);
}

static sfsistat mlfi_envfrom(SMFICTX *ctx, char **argv)
{
	struct conn *c = mw_getpriv(ctx);
	const char *auth;

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	conn_msg_done(c);
	if (__atomic_load_n(&stopping, __ATOMIC_SEQ_CST)) {
		c->late = 1; /* tempfailed at end of headers */
		return reply(c, SMFIP_NR_MAIL);
	}
	c->msg = msg_new(c->snap);
	if (c->msg != NULL) {
		c->inflight = 1;
		__atomic_add_fetch(&inflight, 1, __ATOMIC_SEQ_CST);
	}
	if (c->msg == NULL) {
		defer(c, "out of memory");
		return reply(c, SMFIP_NR_MAIL);
	}
	msg_set_signing_time(c->msg, milter_signing_time);
	if (argv && argv[0])
		msg_envfrom(c->msg, argv[0]);
	auth = mw_getsymval(ctx, "{auth_authen}");
	c->outbound =
	        policy_outbound(c->internal, auth != NULL && *auth != '\0');
	if (!c->outbound && inbound_on(c->snap->cfg) &&
	    (c->inb = inb_new(c->snap)) == NULL)
		defer(c, "out of memory");
	return reply(c, SMFIP_NR_MAIL);
}

static sfsistat mlfi_envrcpt(SMFICTX *ctx, char **argv)
{
	struct conn *c = mw_getpriv(ctx);
	const char *reason;
	char text[800];
	int rc;

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	if (c->msg == NULL || c->deferred || argv == NULL || argv[0] == NULL)
		return reply(c, SMFIP_NR_RCPT);
	if (c->inb && inb_rcpt(c->inb, argv[0]) != 0)
		defer(c, "out of memory");
	rc = msg_rcpt(c->msg, argv[0], c->outbound, &reason);
	if (rc < 0) {
		defer(c, "out of memory");
	} else if (rc > 0) {
		snprintf(text, sizeof(text), "%s", reason);
		mlog(LOG_NOTICE, "%s: recipient %s refused: %s",
		     conn_qid(ctx, c), argv[0], text);
		mw_setreply(ctx, "550", "5.7.1", text);
		audit(c, "rejected", text);
		return SMFIS_REJECT; /* this recipient only */
	}
	return reply(c, SMFIP_NR_RCPT);
}

/* A header or body step that only feeds the message: is there one to
 * feed (no error deferred yet)? */
static int feeding(const struct conn *c)
{
	return c->msg != NULL && c->deferred == NULL;
}

/* The reply to a feeding step; a failed one (err) is deferred. */
static sfsistat fed(struct conn *c, int failed, const char *err,
                    unsigned long nr_flag)
{
	if (failed)
		defer(c, err);
	return reply(c, nr_flag);
}

static sfsistat mlfi_header(SMFICTX *ctx, char *name, char *value)
{
	struct conn *c = mw_getpriv(ctx);
	char err[256];

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	if (feeding(c) && c->inb && inb_header(c->inb, name, value) != 0)
		defer(c, "out of memory");
	return fed(c,
	           feeding(c) && msg_header(c->msg, name, value, err,
	                                    sizeof(err)) != 0,
	           err, SMFIP_NR_HDR);
}

static sfsistat mlfi_eoh(SMFICTX *ctx)
{
	struct conn *c = mw_getpriv(ctx);
	const char *reason;
	enum msg_verdict v;

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	if (c->late)
		return conn_act(ctx, c, ACTION_TEMPFAIL, "not signed",
		                "the filter is shutting down");
	if (c->deferred || c->msg == NULL) {
		char why[256];
		snprintf(why, sizeof(why), "%s",
		         c->deferred ? c->deferred : "no message context");
		return on_error(ctx, c, why);
	}
	if (c->inb) {
		switch (inb_eoh(c->inb, c->outbound, &reason)) {
		case INB_PROCESS:
			c->inbound = 1;
			return SMFIS_CONTINUE;
		case INB_ERROR:
			return on_error(ctx, c, reason);
		default: /* not ours to look at: the signer's rules decide */
			inb_free(c->inb);
			c->inb = NULL;
		}
	}
	switch (v = msg_eoh(c->msg, c->outbound, &reason)) {
	case MSG_SIGN:
		return SMFIS_CONTINUE;
	case MSG_PASS:
		mlog(LOG_INFO, "%s: not signed: %s (client %s)",
		     conn_qid(ctx, c), reason, c->client);
		if (c->snap->cfg->log_verbose)
			audit(c, "passed", reason);
		conn_msg_done(c);
		return SMFIS_ACCEPT;
	case MSG_NOCERT:
		return conn_act(ctx, c, msg_action(c->msg, v, NULL),
		                "no usable certificate", reason);
	case MSG_REJECT:
		return conn_act(ctx, c, msg_action(c->msg, v, NULL),
		                "encryption policy", reason);
	default:
		return on_error(ctx, c, reason);
	}
}

static sfsistat mlfi_body(SMFICTX *ctx, unsigned char *buf, size_t len)
{
	struct conn *c = mw_getpriv(ctx);
	char err[256];

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	if (c->inbound)
		return fed(c,
		           feeding(c) && inb_body(c->inb, buf, len, err,
		                                  sizeof(err)) != 0,
		           err, SMFIP_NR_BODY);
	return fed(c,
	           feeding(c) &&
	                   msg_body(c->msg, buf, len, err, sizeof(err)) != 0,
	           err, SMFIP_NR_BODY);
}

int conn_body_out(void *arg, const unsigned char *buf, size_t len)
{
	return mw_replacebody(arg, buf, len) == MI_SUCCESS ? 0 : -1;
}

int conn_apply_edits(SMFICTX *ctx, const struct msg_edit *edits, size_t nedits)
{
	for (size_t i = 0; i < nedits; i++) {
		int rc = edits[i].op == EDIT_DELETE
		                 ? mw_chgheader(ctx, edits[i].name,
		                                edits[i].index, NULL)
		                 : mw_addheader(ctx, edits[i].name,
		                                edits[i].value);
		if (rc != MI_SUCCESS)
			return -1;
	}
	return 0;
}

static sfsistat mlfi_eom(SMFICTX *ctx)
{
	struct conn *c = mw_getpriv(ctx);
	const struct msg_edit *edits;
	size_t nedits;
	char err[512];

	if (c == NULL || c->msg == NULL)
		return SMFIS_TEMPFAIL;
	conn_qid(ctx, c);
	if (c->deferred) {
		char why[256];
		snprintf(why, sizeof(why), "%s", c->deferred);
		return on_error(ctx, c, why);
	}
	if (c->inbound)
		return inbound_eom(ctx, c);
	if (msg_eom(c->msg, conn_body_out, ctx, &edits, &nedits, err,
	            sizeof(err)) != 0)
		return on_error(ctx, c, err);
	if (conn_apply_edits(ctx, edits, nedits) != 0)
		return on_error(ctx, c, "MTA refused a header change");
	{
		const char *action;
		const char *more =
		        msg_outcome(c->msg, &action, err, sizeof(err));
		mlog(msg_encrypt_note(c->msg) ? LOG_NOTICE : LOG_INFO,
		     "%s: signed for %s with certificate %s%s (%zu bytes)",
		     c->qid, msg_from(c->msg), msg_signer_serial(c->msg), more,
		     msg_body_size(c->msg));
		audit(c, action, err);
	}
	conn_msg_done(c);
	return SMFIS_CONTINUE;
}

static sfsistat mlfi_abort(SMFICTX *ctx)
{
	struct conn *c = mw_getpriv(ctx);

	if (c)
		conn_msg_done(c);
	return SMFIS_CONTINUE;
}

static sfsistat mlfi_close(SMFICTX *ctx)
{
	struct conn *c = mw_getpriv(ctx);

	if (c == NULL)
		return SMFIS_CONTINUE;
	conn_msg_done(c);
	if (c->connected)
		__atomic_sub_fetch(&active, 1, __ATOMIC_SEQ_CST);
	snapshot_unref(c->snap);
	free(c);
	mw_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

struct smfiDesc milter_desc = {
	.xxfi_name = "smime-milter",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY,
	.xxfi_connect = mlfi_connect,
	.xxfi_helo = NULL,
	.xxfi_envfrom = mlfi_envfrom,
	.xxfi_envrcpt = mlfi_envrcpt,
	.xxfi_header = mlfi_header,
	.xxfi_eoh = mlfi_eoh,
	.xxfi_body = mlfi_body,
	.xxfi_eom = mlfi_eom,
	.xxfi_abort = mlfi_abort,
	.xxfi_close = mlfi_close,
	.xxfi_unknown = NULL,
	.xxfi_data = NULL,
	.xxfi_negotiate = mlfi_negotiate,
};
