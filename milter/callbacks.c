/*
 * callbacks -- the mlfi_* functions.  Glue only: every decision is a call
 * into lib/ (policy.c: internal, outbound, actions; message.c: verdicts);
 * this file maps verdicts to milter replies, logs one line per message and
 * writes the audit row.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "db.h"
#include "log.h"
#include "message.h"
#include "milter.h"
#include "mwrap.h"
#include "policy.h"

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

/* Connection context, from negotiate (or connect) to close. */
struct conn {
	unsigned long pflags; /* protocol steps agreed with the MTA */
	char *deferred;       /* error seen where no reply could be given */
	struct snapshot *snap;
	int internal; /* the client is internal (policy_client_internal) */
	char client[INET6_ADDRSTRLEN + 8];
	struct msg *msg; /* message context, from envfrom to eom/abort */
	int outbound;    /* this message: internal or authenticated client */
	int connected;   /* connect ran: counted in active */
	int inflight;    /* the message is counted in inflight */
	int late;        /* the message began after the stop */
	char qid[64];
};

static void msg_cleanup(struct conn *c)
{
	msg_free(c->msg);
	c->msg = NULL;
	if (c->inflight)
		__atomic_sub_fetch(&inflight, 1, __ATOMIC_SEQ_CST);
	c->inflight = 0;
	c->late = 0;
	free(c->deferred);
	c->deferred = NULL;
	c->outbound = 0;
	c->qid[0] = '\0';
}

static const char *qid_of(SMFICTX *ctx, struct conn *c)
{
	if (c->qid[0] == '\0') {
		const char *q = mw_getsymval(ctx, "i");
		snprintf(c->qid, sizeof(c->qid), "%s", q ? q : "NOQUEUE");
	}
	return c->qid;
}

static void audit(struct conn *c, const char *action, const char *result)
{
	struct audit_row r;

	if (mw_offline)
		return; /* the offline test mode leaves no trace in the log */
	memset(&r, 0, sizeof(r));
	r.queue_id = c->qid;
	r.message_id = c->msg ? msg_message_id(c->msg) : NULL;
	r.from_addr = c->msg ? msg_from(c->msg) : NULL;
	r.action = action;
	r.cert_serial = c->msg ? msg_signer_serial(c->msg) : NULL;
	r.digest = c->snap->cfg->digest;
	r.result = result;
	audit_submit(c->snap->audit, &r);
}

/* Apply a configured action; logs and audits; returns the sfsistat. */
static sfsistat act(SMFICTX *ctx, struct conn *c, enum action a,
                    const char *what, const char *reason)
{
	char text[600];

	snprintf(text, sizeof(text), "%s: %s", what, reason);
	switch (a) {
	case ACTION_ACCEPT:
		mlog(LOG_NOTICE, "%s: %s; passed unsigned", qid_of(ctx, c),
		     text);
		audit(c, "unsigned", text);
		msg_cleanup(c);
		return SMFIS_ACCEPT;
	case ACTION_REJECT:
		mlog(LOG_NOTICE, "%s: %s; rejected", qid_of(ctx, c), text);
		mw_setreply(ctx, "550", "5.7.1", text);
		audit(c, "rejected", text);
		msg_cleanup(c);
		return SMFIS_REJECT;
	default:
		mlog(LOG_WARNING, "%s: %s; tempfailed", qid_of(ctx, c), text);
		mw_setreply(ctx, "451", "4.7.0", text);
		audit(c, "tempfailed", text);
		msg_cleanup(c);
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
	return act(ctx, c, a, "cannot sign", note ? why : reason);
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
	/* recipients matter only to an encryption policy: without one the
	 * MTA need not send them (a round trip per recipient saved) */
	if (s && s->cfg->nencrypt > 0)
		skip &= ~SMFIP_NORCPT;
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
	c->internal = policy_client_internal(c->snap->cfg, addr);
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
	msg_cleanup(c);
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
		return SMFIS_CONTINUE;
	rc = msg_rcpt(c->msg, argv[0], c->outbound, &reason);
	if (rc < 0) {
		defer(c, "out of memory");
	} else if (rc > 0) {
		snprintf(text, sizeof(text), "%s", reason);
		mlog(LOG_NOTICE, "%s: recipient %s refused: %s", qid_of(ctx, c),
		     argv[0], text);
		mw_setreply(ctx, "550", "5.7.1", text);
		audit(c, "rejected", text);
		return SMFIS_REJECT; /* this recipient only */
	}
	return SMFIS_CONTINUE;
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
		return act(ctx, c, ACTION_TEMPFAIL, "not signed",
		           "the filter is shutting down");
	if (c->deferred || c->msg == NULL) {
		char why[256];
		snprintf(why, sizeof(why), "%s",
		         c->deferred ? c->deferred : "no message context");
		return on_error(ctx, c, why);
	}
	switch (v = msg_eoh(c->msg, c->outbound, &reason)) {
	case MSG_SIGN:
		return SMFIS_CONTINUE;
	case MSG_PASS:
		mlog(LOG_INFO, "%s: not signed: %s (client %s)", qid_of(ctx, c),
		     reason, c->client);
		if (c->snap->cfg->log_verbose)
			audit(c, "passed", reason);
		msg_cleanup(c);
		return SMFIS_ACCEPT;
	case MSG_NOCERT:
		return act(ctx, c, msg_action(c->msg, v, NULL),
		           "no usable certificate", reason);
	case MSG_REJECT:
		return act(ctx, c, msg_action(c->msg, v, NULL),
		           "encryption policy", reason);
	case MSG_HARVEST:
		return SMFIS_CONTINUE;
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
	return fed(c,
	           feeding(c) &&
	                   msg_body(c->msg, buf, len, err, sizeof(err)) != 0,
	           err, SMFIP_NR_BODY);
}

static int body_out(void *arg, const unsigned char *buf, size_t len)
{
	return mw_replacebody(arg, buf, len) == MI_SUCCESS ? 0 : -1;
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

/* End of an inbound signed message: harvest, then let it go untouched. */
static sfsistat harvest_eom(struct conn *c)
{
	char why[512];
	int n = msg_harvest(c->msg, harvested, c, why, sizeof(why));

	if (n < 0)
		mlog(LOG_WARNING, "%s: certificate harvest from %s failed: %s",
		     c->qid, msg_from(c->msg), why);
	else if (n == 0 && c->snap->cfg->log_verbose)
		mlog(LOG_INFO, "%s: nothing harvested from %s: %s", c->qid,
		     msg_from(c->msg), why);
	msg_cleanup(c);
	return SMFIS_ACCEPT;
}

static sfsistat mlfi_eom(SMFICTX *ctx)
{
	struct conn *c = mw_getpriv(ctx);
	const struct msg_edit *edits;
	size_t nedits;
	char err[512];

	if (c == NULL || c->msg == NULL)
		return SMFIS_TEMPFAIL;
	qid_of(ctx, c);
	if (c->deferred) {
		char why[256];
		snprintf(why, sizeof(why), "%s", c->deferred);
		return on_error(ctx, c, why);
	}
	if (msg_is_harvest(c->msg))
		return harvest_eom(c);
	if (msg_eom(c->msg, body_out, ctx, &edits, &nedits, err, sizeof(err)) !=
	    0)
		return on_error(ctx, c, err);
	for (size_t i = 0; i < nedits; i++) {
		int rc = edits[i].op == EDIT_DELETE
		                 ? mw_chgheader(ctx, edits[i].name,
		                                edits[i].index, NULL)
		                 : mw_addheader(ctx, edits[i].name,
		                                edits[i].value);
		if (rc != MI_SUCCESS)
			return on_error(ctx, c, "MTA refused a header change");
	}
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
	msg_cleanup(c);
	return SMFIS_CONTINUE;
}

static sfsistat mlfi_abort(SMFICTX *ctx)
{
	struct conn *c = mw_getpriv(ctx);

	if (c)
		msg_cleanup(c);
	return SMFIS_CONTINUE;
}

static sfsistat mlfi_close(SMFICTX *ctx)
{
	struct conn *c = mw_getpriv(ctx);

	if (c == NULL)
		return SMFIS_CONTINUE;
	msg_cleanup(c);
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
