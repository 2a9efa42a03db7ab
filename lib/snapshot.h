/*
 * snapshot -- one immutable, reference-counted view of everything the
 * milter needs: the configuration, the mailbox -> signer mapping with keys
 * already loaded, the keys each mailbox may decrypt with (snapshot_dec.c),
 * and a database handle for the audit log.  Reload builds a
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
struct ocsp_cache;
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

/* A certificate of a mailbox whose key may decrypt mail encrypted to it:
 * the active one, and the superseded, expired and revoked ones (partners
 * keep last year's certificate).  Never used for signing. */
struct decrypt_key {
	char *address; /* lower-case mailbox of the certificate */
	char *serial;
	char *status; /* in the database: active, superseded, revoked */
	X509 *cert;
	time_t not_before, not_after, revoked_at;
	EVP_PKEY *key;       /* decrypts (on the token for a PKCS#11 key);
	                        NULL when it could not be loaded: see problem */
	struct p11_key *hsm; /* the key is on a PKCS#11 token (or NULL) */
	char *problem;       /* why key is NULL (or, for a token key that is
	                        away now, why it may fail), or NULL */
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
	struct decrypt_key *dkeys; /* by address, newest first */
	size_t ndkeys;
	X509_STORE *trust; /* ca_file, loaded once for inbound verification
	                      (NULL: none, or unreadable at build) */
	struct rcpt_cert *rcpts; /* active recipient certificates, by address */
	size_t nrcpts;
	struct ocsp_cache *ocsp; /* OCSP answers (ocsp = true), or NULL */
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
 * serial.  Both stay valid while the snapshot lives.  NULL when none, or
 * when OCSP (ocsp = true) says that certificate is revoked.
 */
X509 *snapshot_encryption_cert(const struct snapshot *s, const char *address,
                               time_t now, const char **serial);

/*
 * The certificates of mailbox (lower-case) whose key may decrypt, newest
 * first: *out points to the first of the returned count, inside the
 * snapshot (valid while it lives); 0 and NULL when none.  Every certificate
 * stored for the mailbox is there, whatever its status: the active one,
 * superseded, expired and revoked ones (snapshot_decrypt_state says which,
 * for the stamp).  Entries whose key could not be loaded are there too,
 * key NULL and problem saying why, so the caller can tell "no key" from
 * "not ours".  To pick one, compare each cert with a RecipientInfo
 * (CMS_RecipientInfo_ktri_cert_cmp / CMS_RecipientEncryptedKey_cert_cmp)
 * and hand key to OpenSSL's CMS decryption.  These keys are for
 * decryption only: signing goes through snapshot_lookup, which refuses
 * every certificate that is not active.
 */
size_t snapshot_decrypt_keys(const struct snapshot *s, const char *mailbox,
                             const struct decrypt_key **out);

/* "revoked", "expired" (at now), "superseded" or "active" for d, in that
 * order of precedence; "none" for NULL. */
const char *snapshot_decrypt_state(const struct decrypt_key *d, time_t now);

/*
 * The decryption keys that could not be loaded, one line each
 * ("ADDR: STATUS certificate SERIAL cannot decrypt: WHY") into out (may be
 * NULL to count only), for -n and the logs.  These are not in the build's
 * warnings: a key that only decrypts never makes a mailbox unable to sign,
 * nor -n fail.  Returns how many there are.
 */
size_t snapshot_decrypt_report(const struct snapshot *s, char *out,
                               size_t outlen);

/* For snapshot_build (snapshot_dec.c): load every stored certificate's
 * decryption key into s (s->cfg, and the signer entries sorted, whose file
 * keys are shared).  A key that cannot be loaded does not fail: its entry
 * says why (snapshot_decrypt_report).  Returns 0, or -1 with err on a
 * database error or out of memory.  snapshot_unref frees them with
 * snapshot_decrypt_free. */
struct db;
int snapshot_decrypt_load(struct snapshot *s, struct db *db, char *err,
                          size_t errlen);
void snapshot_decrypt_free(struct snapshot *s);

/* Make a harvested certificate usable at once (the database already has
 * it).  Returns 0, or -1 on out of memory. */
int snapshot_add_harvested(struct snapshot *s, const char *address,
                           const char *serial, X509 *cert);

/* Reference counting (thread-safe). unref frees at zero; NULL is fine. */
struct snapshot *snapshot_ref(struct snapshot *s);
void snapshot_unref(struct snapshot *s);

#endif
