/*
 * snapshot -- one immutable, reference-counted view of everything the
 * milter needs: the configuration, the mailbox -> signer mapping with keys
 * already loaded, and a database handle for the audit log.  Reload builds a
 * complete new snapshot and swaps it in; connections finish on the one they
 * started with.
 */
#ifndef SMIME_SNAPSHOT_H
#define SMIME_SNAPSHOT_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "config.h"

struct audit_queue;
struct keystore;
struct p11_key;

struct signer_entry {
	char *address; /* lower-case */
	char *kind;
	char *serial;
	char *status; /* certificate status in the database */
	X509 *cert;
	time_t not_before, not_after; /* of cert, for the per-message check */
	STACK_OF(X509) *chain;
	EVP_PKEY *key; /* NULL when unusable: see problem */
	char *problem; /* why this mailbox cannot sign, or NULL */
	int key_fault; /* 1: problem is an operational fault (key unreadable) */
	struct p11_key *hsm; /* the key is on a PKCS#11 token (or NULL) */
	int can_encrypt;     /* cert may also be an encryption recipient */
};

/* A certificate to encrypt to (smimectl recipient import, harvesting). */
struct rcpt_cert {
	char *address; /* lower-case */
	char *serial;
	X509 *cert;
	time_t not_before, not_after;
};

struct snapshot {
	int refs;
	unsigned long generation;
	time_t built_at;
	struct config *cfg;
	EVP_MD *md;                /* fetched once per snapshot */
	struct audit_queue *audit; /* audit log writer */
	struct keystore *keys; /* where the keys came from (tokens, sessions) */
	struct signer_entry *entries; /* sorted by address */
	size_t nentries;
	size_t nusable;
	struct rcpt_cert *rcpts; /* active recipient certificates, by address */
	size_t nrcpts;
	/* certificates harvested while this snapshot is current: used at
	 * once, and found in the database by the next snapshot */
	pthread_mutex_t harvest_lock;
	struct rcpt_cert *harvested;
	size_t nharvested, capharvested;
};

/*
 * Build a snapshot from the configuration file at conf_path: load and
 * validate the configuration, open the database, load every mapped key.
 * Problems with single mailboxes do not fail the build: they are appended
 * to warn (one per line) and the mailbox is marked unusable.  With strict
 * set (smime-milter -n) any such problem fails the build.
 * Returns 0 or -1 with err filled.
 */
int snapshot_build(const char *conf_path, int strict, struct snapshot **out,
                   char *err, size_t errlen, char *warn, size_t warnlen);

/* Find the entry of address (lower-case), or NULL. */
const struct signer_entry *snapshot_lookup(const struct snapshot *s,
                                           const char *address);

/*
 * The certificate to encrypt to address (lower-case) at time now: the
 * newest (by notBefore) inside its validity among the recipient
 * certificates, the harvested ones and the mapped certificate of an
 * internal mailbox that allows encryption.  *serial (may be NULL) gets its
 * serial.  Both stay valid while the snapshot lives.  NULL when none.
 */
X509 *snapshot_encryption_cert(const struct snapshot *s, const char *address,
                               time_t now, const char **serial);

/* Make a harvested certificate usable at once (the database already has
 * it).  Returns 0, or -1 on out of memory. */
int snapshot_add_harvested(struct snapshot *s, const char *address,
                           const char *serial, X509 *cert);

/* Reference counting (thread-safe). unref frees at zero; NULL is fine. */
struct snapshot *snapshot_ref(struct snapshot *s);
void snapshot_unref(struct snapshot *s);

#endif
