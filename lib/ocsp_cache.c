/* ocsp_cache -- OCSP answers in memory and in the database (see
 * ocsp_cache.h). */
#include "ocsp_cache.h"
#include "certstore.h"
#include "config.h"
#include "db.h"
#include "smime_verify.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 256

ocsp_report_fn ocsp_reporter;

/* One kept answer, for (issuer, serial). */
struct entry {
	struct entry *next;
	char *issuer, *serial;
	struct ocsp_verdict v;
	time_t keep_until;
};

/* What the cache knows of one responder URL. */
struct responder {
	struct responder *next;
	char *url;
	int failing;     /* reported failing; not yet answering again */
	time_t retry_at; /* not asked before */
};

/* An answer to write to the database. */
struct pending {
	struct pending *next;
	struct db_ocsp row;
};

struct ocsp_cache {
	pthread_mutex_t lock;
	pthread_cond_t idle;
	int refs;    /* the snapshot's, and the writer's while it runs */
	int writing; /* a writer thread runs */
	int db_failing;
	struct entry *buckets[NBUCKETS];
	struct responder *responders;
	struct pending *head, *tail;
	X509_STORE *store;
	char *database;
	char *responder; /* ocsp_responder, or NULL */
	long timeout_ms;
	unsigned long hits, queries;
};

static void report(int is_error, const char *fmt, ...) PRINTFLIKE(2, 3);

static void report(int is_error, const char *fmt, ...)
{
	ocsp_report_fn fn = ocsp_reporter;
	char text[1024];
	va_list ap;

	if (fn == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fn(is_error, text);
}

static unsigned bucket(const char *issuer, const char *serial)
{
	unsigned h = 2166136261u;

	for (const char *p = serial; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	for (const char *p = issuer; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % NBUCKETS;
}

/* The entry of (issuer, serial), or NULL.  With the lock held. */
static struct entry *entry_find(struct ocsp_cache *c, const char *issuer,
                                const char *serial)
{
	for (struct entry *e = c->buckets[bucket(issuer, serial)]; e;
	     e = e->next)
		if (strcmp(e->serial, serial) == 0 &&
		    strcmp(e->issuer, issuer) == 0)
			return e;
	return NULL;
}

/* Keep v for (issuer, serial) until keep_until.  With the lock held.
 * 0, or -1 out of memory. */
static int entry_put(struct ocsp_cache *c, const char *issuer,
                     const char *serial, const struct ocsp_verdict *v,
                     time_t keep_until)
{
	struct entry *e = entry_find(c, issuer, serial);
	unsigned b;

	if (e == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return -1;
		e->issuer = xstrdup(issuer);
		e->serial = xstrdup(serial);
		if (e->issuer == NULL || e->serial == NULL) {
			free(e->issuer);
			free(e->serial);
			free(e);
			return -1;
		}
		b = bucket(issuer, serial);
		e->next = c->buckets[b];
		c->buckets[b] = e;
	}
	e->v = *v;
	e->keep_until = keep_until;
	return 0;
}

/* The state of url (made when new), or NULL out of memory.  With the
 * lock held. */
static struct responder *responder_get(struct ocsp_cache *c, const char *url)
{
	struct responder *r;

	for (r = c->responders; r; r = r->next)
		if (strcmp(r->url, url) == 0)
			return r;
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->url = xstrdup(url)) == NULL) {
		free(r);
		return NULL;
	}
	r->next = c->responders;
	c->responders = r;
	return r;
}

/* How long an answer is kept: until its nextUpdate, else a while. */
static time_t keep_until(const struct ocsp_verdict *v, time_t checked)
{
	return v->next_update > 0 ? v->next_update
	                          : checked + OCSP_KEEP_NO_NEXT;
}

static int seed_row(void *arg, const struct db_ocsp *r)
{
	struct ocsp_cache *c = arg;
	struct ocsp_verdict v = { .reason = -1 };

	if (r->issuer == NULL || r->serial == NULL ||
	    ocsp_status_parse(r->status, &v.status) != 0)
		return 0;
	v.revoked_at = r->revoked_at;
	v.this_update = r->this_update;
	v.next_update = r->next_update;
	for (int i = 0; r->reason && i <= 10; i++)
		if (ocsp_reason_name(i) &&
		    strcmp(ocsp_reason_name(i), r->reason) == 0)
			v.reason = i;
	return entry_put(c, r->issuer, r->serial, &v,
	                 keep_until(&v, r->checked_at)) != 0;
}

static void cache_drop(struct ocsp_cache *c)
{
	for (size_t i = 0; i < NBUCKETS; i++)
		while (c->buckets[i]) {
			struct entry *e = c->buckets[i];
			c->buckets[i] = e->next;
			free(e->issuer);
			free(e->serial);
			free(e);
		}
	while (c->responders) {
		struct responder *r = c->responders;
		c->responders = r->next;
		free(r->url);
		free(r);
	}
	while (c->head) {
		struct pending *p = c->head;
		c->head = p->next;
		db_ocsp_clear(&p->row);
		free(p);
	}
	X509_STORE_free(c->store);
	free(c->database);
	free(c->responder);
	pthread_cond_destroy(&c->idle);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void cache_unref(struct ocsp_cache *c)
{
	int last;

	pthread_mutex_lock(&c->lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (last)
		cache_drop(c);
}

struct ocsp_cache *ocsp_cache_new(const struct config *cfg, struct db *db,
                                  char *err, size_t errlen)
{
	struct ocsp_cache *c;
	const char *u = cfg->ocsp_responder;
	char dberr[512];

	if (cfg->ca_file == NULL) {
		seterr(err, errlen,
		       "%s: ocsp = true needs ca_file (the trust bundle that "
		       "verifies the responders' answers)",
		       cfg->path);
		return NULL;
	}
	if (u && strncasecmp(u, "http://", 7) != 0 &&
	    strncasecmp(u, "https://", 8) != 0) {
		seterr(err, errlen,
		       "%s:%d: ocsp_responder: '%s' is not an http:// or "
		       "https:// URL",
		       cfg->path, cfg->line_ocsp_responder, u);
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->idle, NULL);
	c->refs = 1;
	c->timeout_ms = (long)cfg->ocsp_timeout * 1000;
	c->database = xstrdup(cfg->database);
	c->responder = u ? xstrdup(u) : NULL;
	if (c->database == NULL || (u && c->responder == NULL)) {
		seterr(err, errlen, "out of memory");
		cache_drop(c);
		return NULL;
	}
	if ((c->store = smime_trust_load(cfg->ca_file, dberr, sizeof(dberr))) ==
	    NULL) {
		seterr(err, errlen, "%s:%d: ca_file (for OCSP): %s", cfg->path,
		       cfg->line_ca_file, dberr);
		cache_drop(c);
		return NULL;
	}
	if (db && db_ocsp_current(db, time(NULL), OCSP_KEEP_NO_NEXT, seed_row,
	                          c, dberr, sizeof(dberr)) != 0) {
		seterr(err, errlen, "OCSP answers in %s: %s", cfg->database,
		       dberr);
		cache_drop(c);
		return NULL;
	}
	return c;
}

/* Write the queued answers, one transaction per batch, until none is
 * left.  A failure drops the batch (the answers stay in memory; the
 * responder is asked again after the next start) and is reported once. */
static void *writer(void *arg)
{
	struct ocsp_cache *c = arg;

	for (;;) {
		struct pending *batch;
		struct db *db = NULL;
		char err[512] = "";
		int rc, first;

		pthread_mutex_lock(&c->lock);
		batch = c->head;
		c->head = c->tail = NULL;
		if (batch == NULL) {
			c->writing = 0;
			pthread_cond_broadcast(&c->idle);
			pthread_mutex_unlock(&c->lock);
			break;
		}
		pthread_mutex_unlock(&c->lock);
		rc = db_open(c->database, DB_READWRITE, &db, err, sizeof(err));
		if (rc == 0)
			rc = db_begin(db, err, sizeof(err));
		for (struct pending *p = batch; rc == 0 && p; p = p->next)
			rc = db_ocsp_put(db, &p->row, err, sizeof(err));
		if (rc == 0 && (rc = db_commit(db, err, sizeof(err))) != 0)
			db_rollback(db);
		db_close(db);
		pthread_mutex_lock(&c->lock);
		first = rc != 0 && !c->db_failing;
		c->db_failing = rc != 0;
		pthread_mutex_unlock(&c->lock);
		if (first) /* once, until a write works again */
			report(1, "OCSP answers not stored in %s: %s",
			       c->database, err);
		while (batch) {
			struct pending *p = batch;
			batch = p->next;
			db_ocsp_clear(&p->row);
			free(p);
		}
	}
	cache_unref(c);
	return NULL;
}

/* Queue the answer v for the database and wake (or start) the writer.
 * With the lock held; a failure only costs the stored copy. */
static void queue_write(struct ocsp_cache *c, const struct cert_info *ci,
                        const struct ocsp_verdict *v, const char *url,
                        time_t now)
{
	struct pending *p = calloc(1, sizeof(*p));
	const char *reason = ocsp_reason_name(v->reason);
	pthread_attr_t attr;
	pthread_t t;

	if (p == NULL)
		return;
	p->row.issuer = xstrdup(ci->issuer);
	p->row.serial = xstrdup(ci->serial);
	p->row.status = xstrdup(ocsp_status_name(v->status));
	p->row.reason = reason ? xstrdup(reason) : NULL;
	p->row.responder = xstrdup(url);
	p->row.revoked_at = v->revoked_at;
	p->row.this_update = v->this_update;
	p->row.next_update = v->next_update;
	p->row.checked_at = now;
	if (p->row.issuer == NULL || p->row.serial == NULL ||
	    p->row.status == NULL || p->row.responder == NULL) {
		db_ocsp_clear(&p->row);
		free(p);
		return;
	}
	if (c->tail)
		c->tail->next = p;
	else
		c->head = p;
	c->tail = p;
	if (c->writing)
		return;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, writer, c) == 0) {
		c->writing = 1;
		c->refs++;
	}
	pthread_attr_destroy(&attr);
}

/* Ask url about x; the answer kept and queued.  1, 0 (why says), -1. */
static int ask(struct ocsp_cache *c, X509 *x, STACK_OF(X509) *untrusted,
               const struct cert_info *ci, const char *url, time_t now,
               struct ocsp_verdict *v, char *why, size_t whylen)
{
	struct responder *r;
	X509 *issuer;
	char err[512];
	int rc, was_failing;

	pthread_mutex_lock(&c->lock);
	r = responder_get(c, url);
	if (r && r->failing && now < r->retry_at) {
		pthread_mutex_unlock(&c->lock);
		seterr(why, whylen, "OCSP responder %s is failing", url);
		return 0;
	}
	pthread_mutex_unlock(&c->lock);
	if (r == NULL)
		return -1;
	if ((issuer = ocsp_find_issuer(x, untrusted, c->store)) == NULL) {
		seterr(why, whylen, "issuer of %s not found for OCSP",
		       ci->serial);
		return 0;
	}
	rc = ocsp_query(x, issuer, c->store, url, c->timeout_ms, v, err,
	                sizeof(err));
	X509_free(issuer);
	pthread_mutex_lock(&c->lock);
	c->queries++;
	was_failing = r->failing;
	if (rc != 0) {
		r->failing = 1;
		r->retry_at = now + OCSP_RETRY;
	} else {
		r->failing = 0;
		if (entry_put(c, ci->issuer, ci->serial, v,
		              keep_until(v, now)) == 0)
			queue_write(c, ci, v, url, now);
	}
	pthread_mutex_unlock(&c->lock);
	if (rc != 0) {
		if (!was_failing)
			report(1,
			       "OCSP responder at %s failed (%s); the CRL "
			       "status is used until it answers again",
			       url, err);
		seterr(why, whylen, "%s", err);
		return 0;
	}
	if (was_failing)
		report(0, "OCSP responder %s answers again", url);
	report(0, "OCSP: certificate %s of %s is %s (responder %s)", ci->serial,
	       ci->issuer, ocsp_status_name(v->status), url);
	return 1;
}

int ocsp_cache_check(struct ocsp_cache *c, X509 *x, STACK_OF(X509) *untrusted,
                     time_t now, struct ocsp_verdict *v, char *why,
                     size_t whylen)
{
	struct cert_info ci;
	struct entry *e;
	char *url;
	int rc;

	if (why && whylen)
		why[0] = '\0';
	if (c == NULL || x == NULL)
		return 0;
	if (cert_info_get(x, &ci) != 0)
		return -1;
	pthread_mutex_lock(&c->lock);
	e = entry_find(c, ci.issuer, ci.serial);
	if (e && now < e->keep_until) {
		*v = e->v;
		c->hits++;
		pthread_mutex_unlock(&c->lock);
		cert_info_clear(&ci);
		return 1;
	}
	pthread_mutex_unlock(&c->lock);
	url = c->responder ? xstrdup(c->responder) : ocsp_cert_url(x);
	if (url == NULL) {
		seterr(why, whylen, "certificate %s names no OCSP responder",
		       ci.serial);
		cert_info_clear(&ci);
		return 0;
	}
	rc = ask(c, x, untrusted, &ci, url, now, v, why, whylen);
	free(url);
	cert_info_clear(&ci);
	return rc;
}

int ocsp_cache_revoked(struct ocsp_cache *c, X509 *x, STACK_OF(X509) *untrusted,
                       time_t now, time_t *when)
{
	struct ocsp_verdict v;

	if (ocsp_cache_check(c, x, untrusted, now, &v, NULL, 0) != 1 ||
	    v.status != OCSP_VERDICT_REVOKED)
		return 0;
	if (when)
		*when = v.revoked_at;
	return 1;
}

int ocsp_cache_judge(struct ocsp_cache *c, struct smime_verdict *v, time_t now)
{
	char day[16] = "";
	struct tm tm;
	time_t when = 0;

	if (c == NULL || v == NULL || v->result != SMIME_PASS ||
	    !ocsp_cache_revoked(c, v->signer, v->certs, now, &when))
		return 0;
	if (when > 0 && gmtime_r(&when, &tm) != NULL)
		strftime(day, sizeof(day), " %Y-%m-%d", &tm);
	v->result = SMIME_FAIL;
	snprintf(v->reason, sizeof(v->reason),
	         "certificate revoked%s (serial %s of %s, says its OCSP "
	         "responder)",
	         day, v->serial ? v->serial : "?", v->issuer ? v->issuer : "?");
	return 1;
}

void ocsp_cache_counts(struct ocsp_cache *c, unsigned long *hits,
                       unsigned long *queries)
{
	if (c)
		pthread_mutex_lock(&c->lock);
	if (hits)
		*hits = c ? c->hits : 0;
	if (queries)
		*queries = c ? c->queries : 0;
	if (c)
		pthread_mutex_unlock(&c->lock);
}

void ocsp_cache_free(struct ocsp_cache *c)
{
	struct timespec ts;

	if (c == NULL)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&c->lock);
	while (c->writing &&
	       pthread_cond_timedwait(&c->idle, &c->lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&c->lock);
	cache_unref(c);
}
