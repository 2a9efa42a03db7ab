/* snapshot_dec -- the keys each mailbox may decrypt with, loaded with the
 * snapshot (see snapshot.h: snapshot_decrypt_keys). */
#include "certstore.h"
#include "db.h"
#include "keystore.h"
#include "snapshot.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

struct dec_load {
	struct snapshot *s;
	size_t cap;
	int oom;
};

static void dkey_clear(struct decrypt_key *d)
{
	free(d->address);
	free(d->serial);
	free(d->status);
	free(d->problem);
	X509_free(d->cert);
	EVP_PKEY_free(d->key);
}

/* The signing key of the mapped certificate x of address, when it is a
 * file key already loaded: the same EVP_PKEY decrypts (a reference). */
static EVP_PKEY *signer_key(const struct snapshot *s, const char *address,
                            X509 *x)
{
	const struct signer_entry *e = snapshot_lookup(s, address);

	if (e && e->key && e->hsm == NULL && e->cert &&
	    X509_cmp(e->cert, x) == 0 && EVP_PKEY_up_ref(e->key))
		return e->key;
	return NULL;
}

/* d's key, or d->problem; never fails the build. */
static void dkey_load(struct dec_load *l, struct decrypt_key *d,
                      const struct db_cert *c)
{
	struct snapshot *s = l->s;
	struct key_ref ref = { key_backend_parse(c->key_backend),
		               c->key_location, c->secret_file };
	char err[512];
	int rc;

	if ((d->key = signer_key(s, d->address, d->cert)) != NULL)
		return;
	if (keystore_exposed(&ref, err, sizeof(err))) {
		d->problem = xstrdup(err);
		return;
	}
	if (s->keys == NULL &&
	    (s->keys = keystore_new_config(s->cfg, (int)s->cfg->pkcs11_sessions,
	                                   (int)s->cfg->pkcs11_retry)) ==
	            NULL) {
		l->oom = 1;
		return;
	}
	rc = keystore_load_decrypt_key(s->keys, &ref, d->cert, &d->key, &d->hsm,
	                               err, sizeof(err));
	/* rc 1: a token key that is not there now; it may come back */
	if (rc != 0)
		d->problem = xstrdup(err);
}

static int add_cert(void *arg, const char *mapped, const struct db_cert *c)
{
	struct dec_load *l = arg;
	struct snapshot *s = l->s;
	STACK_OF(X509) *certs = cert_stack_from_pem(c->cert_pem);
	struct decrypt_key *d;

	if (s->ndkeys == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		struct decrypt_key *n = realloc(s->dkeys, ncap * sizeof(*n));
		if (n == NULL) {
			sk_X509_pop_free(certs, X509_free);
			l->oom = 1;
			return 1;
		}
		s->dkeys = n;
		l->cap = ncap;
	}
	if (certs == NULL || sk_X509_num(certs) == 0) {
		/* its mapping, if any, already says so for signing */
		sk_X509_pop_free(certs, X509_free);
		return 0;
	}
	d = &s->dkeys[s->ndkeys++];
	memset(d, 0, sizeof(*d));
	d->cert = sk_X509_shift(certs);
	sk_X509_pop_free(certs, X509_free);
	d->address = str_lower(xstrdup(c->mailbox));
	d->serial = xstrdup(c->serial);
	d->status = xstrdup(c->status);
	d->not_before = c->not_before;
	d->not_after = c->not_after;
	d->revoked_at = c->revoked_at;
	if (d->address == NULL || d->serial == NULL || d->status == NULL) {
		l->oom = 1;
		return 1;
	}
	dkey_load(l, d, c);
	return l->oom;
}

/* By address, then newest (notBefore) first. */
static int dkey_cmp(const void *a, const void *b)
{
	const struct decrypt_key *x = a, *y = b;
	int c = strcmp(x->address, y->address);

	if (c)
		return c;
	return (x->not_before < y->not_before) -
	       (x->not_before > y->not_before);
}

int snapshot_decrypt_load(struct snapshot *s, struct db *db, char *err,
                          size_t errlen)
{
	struct dec_load l = { s, 0, 0 };
	char dberr[512];

	if (db_certs(db, add_cert, &l, dberr, sizeof(dberr)) != 0)
		return seterr(err, errlen, "database %s: %s", s->cfg->database,
		              dberr);
	if (l.oom)
		return seterr(err, errlen, "out of memory loading keys");
	if (s->ndkeys > 1)
		qsort(s->dkeys, s->ndkeys, sizeof(s->dkeys[0]), dkey_cmp);
	return 0;
}

void snapshot_decrypt_free(struct snapshot *s)
{
	for (size_t i = 0; s && i < s->ndkeys; i++)
		dkey_clear(&s->dkeys[i]);
	if (s)
		free(s->dkeys);
}

static int addr_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct decrypt_key *)elem)->address);
}

size_t snapshot_decrypt_keys(const struct snapshot *s, const char *mailbox,
                             const struct decrypt_key **out)
{
	const struct decrypt_key *hit;
	size_t lo, hi;

	*out = NULL;
	if (s == NULL || mailbox == NULL || s->ndkeys == 0)
		return 0;
	hit = bsearch(mailbox, s->dkeys, s->ndkeys, sizeof(s->dkeys[0]),
	              addr_cmp);
	if (hit == NULL)
		return 0;
	lo = hi = (size_t)(hit - s->dkeys);
	while (lo > 0 && strcmp(s->dkeys[lo - 1].address, mailbox) == 0)
		lo--;
	while (hi < s->ndkeys && strcmp(s->dkeys[hi].address, mailbox) == 0)
		hi++;
	*out = &s->dkeys[lo];
	return hi - lo;
}

const char *snapshot_decrypt_state(const struct decrypt_key *d, time_t now)
{
	if (d == NULL)
		return "none";
	if (str_ieq(d->status, "revoked"))
		return "revoked";
	if (now > d->not_after)
		return "expired";
	if (str_ieq(d->status, "superseded"))
		return "superseded";
	return "active";
}

size_t snapshot_decrypt_report(const struct snapshot *s, char *out,
                               size_t outlen)
{
	size_t n = 0;

	if (out && outlen)
		out[0] = '\0';
	for (size_t i = 0; s && i < s->ndkeys; i++) {
		const struct decrypt_key *d = &s->dkeys[i];
		if (d->problem == NULL)
			continue;
		n++;
		if (out)
			adderr(out, outlen,
			       "%s: %s certificate %s cannot decrypt: %s",
			       d->address, d->status, d->serial, d->problem);
	}
	return n;
}
