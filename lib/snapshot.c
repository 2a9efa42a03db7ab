/* snapshot -- immutable, ref-counted config + keys (see snapshot.h). */
#include "snapshot.h"
#include "audit.h"
#include "certstore.h"
#include "cms.h"
#include "db.h"
#include "keystore.h"
#include "ocsp_cache.h"
#include "smime_verify.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>

struct build {
	struct snapshot *s;
	size_t cap;
	char *warn;
	size_t warnlen;
	int problems;
	int oom;
	char exposed[512]; /* first key or secret file others can read */
};

static void entry_clear(struct signer_entry *e)
{
	char *text[] = { e->address, e->kind, e->serial, e->status,
		         e->problem };

	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		free(text[i]);
	X509_free(e->cert);
	sk_X509_pop_free(e->chain, X509_free);
	EVP_PKEY_free(e->key);
}

/*
 * e's private key, checked against its certificate.  Returns 0 (usable),
 * 1 when e->key is a PKCS#11 key that cannot sign now but recovers by
 * itself once its token or object is back (no reload needed), or -1 (an
 * operational fault); err says why.  All keys of a snapshot come from one
 * key store: one login per token.
 */
static int load_key(struct build *b, struct signer_entry *e,
                    const struct db_cert *c, char *err, size_t errlen)
{
	const struct config *cfg = b->s->cfg;
	struct key_ref ref = { key_backend_parse(c->key_backend),
		               c->key_location, c->secret_file };

	/* a key others could read is not used at all: the whole build fails
	 * (smime-milter refuses to start, a reload keeps the old snapshot) */
	if (keystore_exposed(&ref, err, errlen)) {
		if (b->exposed[0] == '\0')
			snprintf(b->exposed, sizeof(b->exposed), "%s", err);
		return -1;
	}
	if (b->s->keys == NULL &&
	    (b->s->keys = keystore_new_config(cfg, (int)cfg->pkcs11_sessions,
	                                      (int)cfg->pkcs11_retry)) == NULL)
		return seterr(err, errlen, "out of memory");
	return keystore_load_key(b->s->keys, &ref, e->cert, &e->key, &e->hsm,
	                         err, errlen);
}

static int add_mapping(void *arg, const char *address, const struct db_cert *c)
{
	struct build *b = arg;
	struct signer_entry *e;
	STACK_OF(X509) *certs;
	char err[512];
	int rc;

	if (b->s->nentries == b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 64;
		struct signer_entry *n =
		        realloc(b->s->entries, ncap * sizeof(*n));
		if (n == NULL) {
			b->oom = 1;
			return 1;
		}
		b->s->entries = n;
		b->cap = ncap;
	}
	e = &b->s->entries[b->s->nentries++];
	memset(e, 0, sizeof(*e));
	e->address = str_lower(xstrdup(address));
	e->kind = xstrdup(c->kind);
	e->serial = xstrdup(c->serial);
	e->status = xstrdup(c->status);
	certs = cert_stack_from_pem(c->cert_pem);
	if (certs && sk_X509_num(certs) > 0)
		e->cert = sk_X509_shift(certs);
	sk_X509_pop_free(certs, X509_free);
	e->chain = cert_stack_from_pem(c->chain_pem);
	if (e->address == NULL || e->kind == NULL || e->chain == NULL) {
		b->oom = 1;
		return 1;
	}
	e->not_before = c->not_before;
	e->not_after = c->not_after;
	if (e->cert == NULL) {
		snprintf(err, sizeof(err), "stored certificate does not parse");
	} else if (!str_ieq(c->status, "active")) {
		snprintf(err, sizeof(err), "certificate %s is %s", c->serial,
		         c->status);
	} else if ((rc = load_key(b, e, c, err, sizeof(err))) < 0) {
		e->key_fault = 1;
	} else if (rc == 1) {
		/* keeps its key: usable again without a reload */
	} else if (cert_check_usage(e->cert, e->address, err, sizeof(err)) !=
	           0) {
		/* static properties: checked here once, not per message;
		 * such a mailbox has no usable certificate */
		EVP_PKEY_free(e->key);
		e->key = NULL;
		e->hsm = NULL;
	} else {
		b->s->nusable++;
		e->can_encrypt =
		        cert_check_encryption(e->cert, err, sizeof(err)) == 0;
		/* validity is checked per message; here it is only worth a
		 * warning (and a failure of -n) */
		if (validity_check(e->not_before, e->not_after, time(NULL), err,
		                   sizeof(err)) != 0) {
			b->problems++;
			adderr(b->warn, b->warnlen, "%s: %s", e->address, err);
		}
		return 0;
	}
	e->problem = xstrdup(err);
	b->problems++;
	adderr(b->warn, b->warnlen, "%s: %s", e->address, err);
	return 0;
}

static void rcpt_clear(struct rcpt_cert *r)
{
	free(r->address);
	free(r->serial);
	X509_free(r->cert);
}

static int rcpt_push(struct rcpt_cert **v, size_t *n, size_t *cap,
                     const char *address, const char *serial, X509 *x)
{
	struct rcpt_cert *r;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct rcpt_cert *nv = realloc(*v, ncap * sizeof(*nv));
		if (nv == NULL)
			return -1;
		*v = nv;
		*cap = ncap;
	}
	r = &(*v)[*n];
	memset(r, 0, sizeof(*r));
	r->address = str_lower(xstrdup(address));
	r->serial = xstrdup(serial);
	if (r->address == NULL || r->serial == NULL || !X509_up_ref(x)) {
		rcpt_clear(r);
		return -1;
	}
	r->cert = x;
	r->not_before = asn1_time_to_time(X509_get0_notBefore(x));
	r->not_after = asn1_time_to_time(X509_get0_notAfter(x));
	(*n)++;
	return 0;
}

struct rcpt_load {
	struct build *b;
	size_t cap;
};

static int add_recipient(void *arg, const struct db_recipient *r)
{
	struct rcpt_load *l = arg;
	struct snapshot *s = l->b->s;
	STACK_OF(X509) *certs = cert_stack_from_pem(r->cert_pem);
	X509 *x = certs && sk_X509_num(certs) > 0 ? sk_X509_value(certs, 0)
	                                          : NULL;
	int rc = 0;

	if (x == NULL) {
		/* not a signing problem: -n does not fail on it */
		adderr(l->b->warn, l->b->warnlen,
		       "recipient %s: stored certificate %s does not parse",
		       r->address, r->serial);
	} else if (rcpt_push(&s->rcpts, &s->nrcpts, &l->cap, r->address,
	                     r->serial, x) != 0) {
		l->b->oom = 1;
		rc = 1;
	}
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

/* Newest certificate of address valid at now in v[0..n), or NULL; v need
 * not be sorted. */
static const struct rcpt_cert *rcpt_best(const struct rcpt_cert *v, size_t n,
                                         const char *address, time_t now,
                                         const struct rcpt_cert *best)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].address, address) == 0 &&
		    now >= v[i].not_before && now <= v[i].not_after &&
		    (best == NULL || v[i].not_before > best->not_before))
			best = &v[i];
	return best;
}

static int rcpt_cmp(const void *a, const void *b)
{
	return strcmp(((const struct rcpt_cert *)a)->address,
	              ((const struct rcpt_cert *)b)->address);
}

X509 *snapshot_encryption_cert(const struct snapshot *cs, const char *address,
                               time_t now, const char **serial)
{
	struct snapshot *s = (struct snapshot *)cs; /* the harvest lock */
	const struct rcpt_cert *best = NULL;
	const struct signer_entry *e;
	const char *ser = NULL;
	X509 *x = NULL;
	time_t nb = 0;

	if (s == NULL || address == NULL)
		return NULL;
	if (s->nrcpts > 0) {
		/* the first entry of address, then its neighbours */
		struct rcpt_cert key = { .address = (char *)address };
		const struct rcpt_cert *hit = bsearch(&key, s->rcpts, s->nrcpts,
		                                      sizeof(key), rcpt_cmp);
		if (hit) {
			size_t lo = (size_t)(hit - s->rcpts), hi = lo + 1;
			while (lo > 0 &&
			       strcmp(s->rcpts[lo - 1].address, address) == 0)
				lo--;
			while (hi < s->nrcpts &&
			       strcmp(s->rcpts[hi].address, address) == 0)
				hi++;
			best = rcpt_best(s->rcpts + lo, hi - lo, address, now,
			                 NULL);
		}
	}
	pthread_mutex_lock(&s->harvest_lock);
	best = rcpt_best(s->harvested, s->nharvested, address, now, best);
	if (best) {
		x = best->cert;
		ser = best->serial;
		nb = best->not_before;
	}
	pthread_mutex_unlock(&s->harvest_lock);
	e = snapshot_lookup(s, address);
	if (e && e->can_encrypt && e->cert && str_ieq(e->status, "active") &&
	    now >= e->not_before && now <= e->not_after &&
	    (x == NULL || e->not_before > nb)) {
		x = e->cert;
		ser = e->serial;
	}
	/* revoked by OCSP: like a revoked recipient certificate, none */
	if (x &&
	    ocsp_cache_revoked(s->ocsp, x, e && x == e->cert ? e->chain : NULL,
	                       now, NULL))
		x = NULL, ser = NULL;
	if (serial)
		*serial = ser;
	return x;
}

int snapshot_add_harvested(struct snapshot *s, const char *address,
                           const char *serial, X509 *cert)
{
	int rc;

	pthread_mutex_lock(&s->harvest_lock);
	rc = rcpt_push(&s->harvested, &s->nharvested, &s->capharvested, address,
	               serial, cert);
	pthread_mutex_unlock(&s->harvest_lock);
	return rc;
}

/*
 * One audit queue per database file, shared by every snapshot that writes
 * to it.  A reload used to open a second queue and free the old one with a
 * 5 s timeout: while the database was locked (a long smimectl transaction),
 * the rows still queued in the old one were dropped ("N audit rows not
 * written") and the reload stalled.  A queue is reused while the path still
 * names the file it opened; a replaced database file gets a new queue.
 * The old queue is retired: the rows still queued for the old file, and
 * those its snapshot's last connections add, go to the spool file
 * (audit_spool), which the new queue writes before its own rows; a queue
 * freed while the database fails spools its rows too: a replaced snapshot
 * never loses queued rows.
 */
struct shared_audit {
	struct shared_audit *next;
	char *path;
	dev_t dev;
	ino_t ino;
	struct audit_queue *q;
	unsigned refs;
};

static pthread_mutex_t audits_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared_audit *audits;

static struct audit_queue *audit_get(const struct config *cfg, char *err,
                                     size_t errlen)
{
	const char *path = cfg->database;
	struct audit_options o = { (size_t)cfg->audit_queue_max,
		                   audit_spool_enabled ? cfg->audit_spool
		                                       : NULL };
	struct shared_audit *a;
	struct audit_queue *q = NULL;
	struct stat st = { 0 };
	/* a PostgreSQL URI names one database, whatever the files */
	int have = db_target_is_pg(path) || stat(path, &st) == 0;

	pthread_mutex_lock(&audits_lock);
	for (a = audits; a; a = a->next)
		if (have && strcmp(a->path, path) == 0 && a->dev == st.st_dev &&
		    a->ino == st.st_ino) {
			a->refs++;
			q = a->q;
			/* the bound follows a reload; the spool stays */
			audit_queue_set_max(q, o.queue_max);
			goto out;
		}
	/* another file at the path: the old queues' rows move to it */
	for (a = audits; a; a = a->next)
		if (strcmp(a->path, path) == 0)
			audit_queue_retire(a->q);
	a = calloc(1, sizeof(*a));
	if (a == NULL || (a->path = xstrdup(path)) == NULL) {
		free(a);
		seterr(err, errlen, "out of memory");
		goto out;
	}
	a->q = audit_queue_open(path, &o, audit_reporter, err, errlen);
	if (a->q == NULL) {
		free(a->path);
		free(a);
		goto out;
	}
	if (have) {
		a->dev = st.st_dev;
		a->ino = st.st_ino;
	}
	a->refs = 1;
	a->next = audits;
	audits = a;
	q = a->q;
out:
	pthread_mutex_unlock(&audits_lock);
	return q;
}

static void audit_put(struct audit_queue *q)
{
	struct shared_audit **pp, *a = NULL;

	if (q == NULL)
		return;
	pthread_mutex_lock(&audits_lock);
	for (pp = &audits; *pp; pp = &(*pp)->next)
		if ((*pp)->q == q) {
			if (--(*pp)->refs == 0) {
				a = *pp;
				*pp = a->next;
			}
			break;
		}
	pthread_mutex_unlock(&audits_lock);
	if (a) {
		audit_queue_free(a->q, 5000);
		free(a->path);
		free(a);
	}
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct signer_entry *)a)->address,
	              ((const struct signer_entry *)b)->address);
}

int snapshot_build(const char *conf_path, int strict, struct snapshot **out,
                   char *err, size_t errlen, char *warn, size_t warnlen)
{
	static unsigned long generation;
	struct snapshot *s;
	struct build b;
	struct db *db = NULL;
	char dberr[512];

	*out = NULL;
	if (warn && warnlen)
		warn[0] = '\0';
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return seterr(err, errlen, "out of memory");
	s->refs = 1;
	s->built_at = time(NULL);
	pthread_mutex_init(&s->harvest_lock, NULL);
	if (config_load(conf_path, &s->cfg, err, errlen) != 0 ||
	    config_check_milter(s->cfg, err, errlen) != 0) {
		snapshot_unref(s);
		return -1;
	}
	if (s->cfg->ca_file && s->cfg->inbound_verify) {
		/* a failure here is the verifier's to report (temperror with
		 * the reason, per message), like a bundle gone later */
		char terr[256];
		s->trust =
		        smime_trust_load(s->cfg->ca_file, terr, sizeof(terr));
	}
	s->md = cms_digest_fetch(s->cfg->digest);
	if (s->md == NULL) {
		seterr_ssl(err, errlen, "digest not available");
		snapshot_unref(s);
		return -1;
	}
	if (db_open(s->cfg->database, DB_READWRITE, &db, dberr,
	            sizeof(dberr)) != 0) {
		/* "file is not a database" alone does not say which file */
		if (strstr(dberr, s->cfg->database))
			seterr(err, errlen, "%s:%d: database: %s", conf_path,
			       s->cfg->line_database, dberr);
		else
			seterr(err, errlen, "%s:%d: database %s: %s", conf_path,
			       s->cfg->line_database, s->cfg->database, dberr);
		snapshot_unref(s);
		return -1;
	}
	memset(&b, 0, sizeof(b));
	b.s = s;
	b.warn = warn;
	b.warnlen = warnlen;
	for (size_t i = 0; i < s->cfg->npkcs11_tokens && !b.exposed[0]; i++)
		path_exposed(s->cfg->pkcs11_pin_file[i], b.exposed,
		             sizeof(b.exposed));
	if (db_mappings(db, add_mapping, &b, dberr, sizeof(dberr)) != 0) {
		seterr(err, errlen, "database %s: %s", s->cfg->database, dberr);
		db_close(db);
		snapshot_unref(s);
		return -1;
	}
	/* sorted now: the decryption keys share the signers' file keys */
	if (s->nentries > 1 && !b.oom)
		qsort(s->entries, s->nentries, sizeof(s->entries[0]),
		      entry_cmp);
	if (!b.oom && !b.exposed[0] &&
	    snapshot_decrypt_load(s, db, err, errlen) != 0) {
		db_close(db);
		snapshot_unref(s);
		return -1;
	}
	if (s->cfg->nencrypt > 0 || s->cfg->harvest) {
		struct rcpt_load l = { .b = &b };
		if (db_recipients(db, NULL, 1, add_recipient, &l, dberr,
		                  sizeof(dberr)) != 0) {
			seterr(err, errlen, "database %s: %s", s->cfg->database,
			       dberr);
			db_close(db);
			snapshot_unref(s);
			return -1;
		}
	}
	if (s->cfg->ocsp &&
	    (s->ocsp = ocsp_cache_new(s->cfg, db, err, errlen)) == NULL) {
		db_close(db);
		snapshot_unref(s);
		return -1;
	}
	db_close(db);
	if (b.exposed[0]) {
		seterr(err, errlen,
		       "%s (key, PKCS#12, passphrase and PIN files must be "
		       "readable by their owner only, in directories only "
		       "trusted users can write)",
		       b.exposed);
		snapshot_unref(s);
		return -1;
	}
	if (b.oom) {
		snapshot_unref(s);
		return seterr(err, errlen, "out of memory loading keys");
	}
	if (strict && b.problems > 0) {
		seterr(err, errlen, "%d mailbox%s cannot sign", b.problems,
		       b.problems == 1 ? "" : "es");
		snapshot_unref(s);
		return -1;
	}
	db_node_default_set(s->cfg->node_name); /* the chain of our rows */
	s->audit = audit_get(s->cfg, dberr, sizeof(dberr));
	if (s->audit == NULL) {
		seterr(err, errlen, "audit log %s: %s", s->cfg->database,
		       dberr);
		snapshot_unref(s);
		return -1;
	}
	if (s->nrcpts > 1)
		qsort(s->rcpts, s->nrcpts, sizeof(s->rcpts[0]), rcpt_cmp);
	s->generation = __atomic_add_fetch(&generation, 1, __ATOMIC_SEQ_CST);
	*out = s;
	return 0;
}

const struct signer_entry *snapshot_lookup(const struct snapshot *s,
                                           const char *address)
{
	struct signer_entry key;

	if (s == NULL || s->nentries == 0)
		return NULL;
	key.address = (char *)address;
	return bsearch(&key, s->entries, s->nentries, sizeof(key), entry_cmp);
}

struct snapshot *snapshot_ref(struct snapshot *s)
{
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_SEQ_CST);
	return s;
}

void snapshot_unref(struct snapshot *s)
{
	if (s == NULL || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_SEQ_CST) > 0)
		return;
	snapshot_decrypt_free(s); /* before the signers' keys they share */
	X509_STORE_free(s->trust);
	for (size_t i = 0; i < s->nentries; i++)
		entry_clear(&s->entries[i]);
	free(s->entries);
	for (size_t i = 0; i < s->nrcpts; i++)
		rcpt_clear(&s->rcpts[i]);
	free(s->rcpts);
	for (size_t i = 0; i < s->nharvested; i++)
		rcpt_clear(&s->harvested[i]);
	free(s->harvested);
	pthread_mutex_destroy(&s->harvest_lock);
	keystore_free(s->keys); /* after the keys it handed out */
	audit_put(s->audit);
	ocsp_cache_free(s->ocsp);
	EVP_MD_free(s->md);
	config_free(s->cfg);
	free(s);
}
