/*
 * db -- the store: certificates, the mailbox -> certificate mapping,
 * revocations and the audit log, in SQLite (a file, WAL mode, so smimectl
 * writes while the milter reads) or PostgreSQL (a postgresql:// URI, for
 * more than one host).  The schema is versioned (PRAGMA user_version, or
 * PostgreSQL's table schema_version) and migrated step by step by
 * db_open(..., DB_CREATE).
 *
 * Where it lives: db.c (open, migrations, transactions, the statement
 * helpers of db_int.h), db_sqlite.c and db_pg.c (the two backends),
 * db_cert.c (certificates, mappings, history,
 * revocation, CRLs), db_audit.c (the audit hash chain), db_renewal.c
 * (renewals, alerts), db_recipient.c (recipient certificates, CRL
 * entries), db_report.c (the report's queries), db_stats.c (smimectl
 * stats).
 */
#ifndef SMIME_DB_H
#define SMIME_DB_H

#include <stddef.h>
#include <time.h>

#define DB_SCHEMA_VERSION 9

/* The longest node name (schema 9: one audit chain per node). */
#define DB_NODE_MAX 255

struct db;

enum db_open_mode {
	DB_READWRITE = 0, /* must exist at the current schema version */
	DB_CREATE = 1,    /* create and/or migrate */
	DB_READONLY = 2
};

/* A read-only connection to path kept open for the calling thread (until
 * it exits, or path changes), for lookups made per message (db_thread.c).
 * Not to be closed by the caller.  NULL with err filled. */
struct db *db_thread_readonly(const char *path, char *err, size_t errlen);

/* Open the database.  Returns 0 or -1 with err filled (a missing file or an
 * old schema says to run "smimectl init"). */
int db_open(const char *path, enum db_open_mode mode, struct db **out,
            char *err, size_t errlen);
void db_close(struct db *db);

/* Schema version of an open database. */
int db_version(struct db *db);

int db_begin(struct db *db, char *err, size_t errlen);
int db_commit(struct db *db, char *err, size_t errlen);
void db_rollback(struct db *db);

/* What identifies a certificate, in struct db_cert and struct db_recipient
 * alike (the fields of cert_info, certstore.h): subject and issuer as
 * cert_name_text gives them, serial in hex and the SHA-256 fingerprint in
 * hex (both upper-case), and the validity. */
#define DB_CERT_IDENTITY   \
	char *subject;     \
	char *issuer;      \
	char *serial;      \
	char *fingerprint; \
	time_t not_before; \
	time_t not_after

struct db_cert {
	long long id;
	char *kind; /* individual, role, system */
	char *mailbox;
	DB_CERT_IDENTITY;
	char *status;      /* active, superseded, revoked */
	char *key_backend; /* pkcs12, pem, pkcs11 */
	char *key_location;
	char *secret_file;
	char *cert_pem;
	char *chain_pem;
	time_t created_at;
	time_t revoked_at;
	char *revocation_reason;
	char *owner;   /* owner's name (schema 2) */
	char *nip;     /* civil-servant number */
	char *unit;    /* Perangkat Daerah */
	char *contact; /* where alerts go (NULL: the mailbox) */
};

/* Free the strings of a db_cert filled by this module. */
void db_cert_clear(struct db_cert *c);

struct cert_info;
/* Zero *dc and point its identity fields (subject, issuer, serial,
 * fingerprint, validity) at those of ci: borrowed, not copied, so ci must
 * outlive dc and dc must not be passed to db_cert_clear. */
void db_cert_from_info(struct db_cert *dc, const struct cert_info *ci);

/* 1 when a certificate with this fingerprint is already stored. */
int db_cert_exists(struct db *db, const char *fingerprint);

/* Insert a certificate (status active).  Sets c->id. */
int db_cert_add(struct db *db, struct db_cert *c, char *err, size_t errlen);

/*
 * Map address to cert_id.  A previously mapped certificate of that mailbox
 * is marked superseded; history keeps both.  Call inside a transaction.
 */
int db_map(struct db *db, const char *address, long long cert_id,
           const char *kind, const char *actor, char *err, size_t errlen);

/* Called for each row; return non-zero to stop. */
typedef int (*db_cert_fn)(void *arg, const char *address,
                          const struct db_cert *c);

/* Active mappings (mailbox, its certificate).  Returns 0 or -1. */
int db_mappings(struct db *db, db_cert_fn fn, void *arg, char *err,
                size_t errlen);

/* Every certificate, newest first, with its mapped address or NULL. */
int db_certs(struct db *db, db_cert_fn fn, void *arg, char *err, size_t errlen);

/*
 * Find one certificate by the id printed by list, its serial (hex) or its
 * SHA-256 fingerprint (hex).  Returns 1 and fills *out (db_cert_clear it),
 * 0 when nothing matches, -1 on error or when spec is ambiguous (err says
 * which certificates it matches).
 */
int db_cert_find(struct db *db, const char *spec, struct db_cert *out,
                 char *err, size_t errlen);

/* Remove the mapping of address (history keeps it).  Returns 1 when a
 * mapping was removed, 0 when there was none, -1 on error. */
int db_unmap(struct db *db, const char *address, const char *actor, char *err,
             size_t errlen);

/* Mark one certificate revoked by id; returns 1 when changed, 0 when it
 * already was, -1 on error. */
int db_revoke_id(struct db *db, long long id, const char *reason, time_t when,
                 const char *actor, char *err, size_t errlen);

/* History of a mailbox (address) or of a certificate (cert_id > 0, address
 * NULL), oldest first: fn(arg, at, address, cert_id, event, detail, actor). */
typedef int (*db_history_fn)(void *arg, time_t at, const char *address,
                             long long cert_id, const char *event,
                             const char *detail, const char *actor);
int db_history(struct db *db, const char *address, long long cert_id,
               db_history_fn fn, void *arg, char *err, size_t errlen);

/* Renewal alerts (Pasal 14): 1 when the alert for threshold (days) was
 * already sent for cert_id, 0 when not, -1 on error. */
int db_alert_sent(struct db *db, long long cert_id, int threshold, char *err,
                  size_t errlen);
/* Record that the alert for threshold was sent (idempotent). */
int db_alert_record(struct db *db, long long cert_id, int threshold, char *err,
                    size_t errlen);

/* A pending renewal (smimectl renew): a new key waiting for its
 * certificate. */
struct db_renewal {
	long long id;
	char *mailbox;
	char *kind;
	char *key_backend;
	char *key_location;
	char *secret_file;
	char *pubkey_sha256; /* of the SubjectPublicKeyInfo, hex */
};

/* Record a pending renewal; sets r->id. */
int db_renewal_add(struct db *db, struct db_renewal *r, const char *csr_pem,
                   long long old_cert_id, const char *actor, char *err,
                   size_t errlen);

/* The open renewal whose key has this public-key hash: 1 and *out filled
 * (db_renewal_clear it), 0 when none, -1 on error. */
int db_renewal_find(struct db *db, const char *pubkey_sha256,
                    struct db_renewal *out, char *err, size_t errlen);

/* Mark a renewal completed by cert_id. */
int db_renewal_complete(struct db *db, long long id, long long cert_id,
                        char *err, size_t errlen);
void db_renewal_clear(struct db_renewal *r);

/* The tables of the yearly report (smimectl report), and their columns:
 * counts are decimal text, the first column names the row. */
enum db_report_table {
	DB_REPORT_CERTS_BY_KIND,      /* kind, active, issued, renewed,
	                                 revoked, expired */
	DB_REPORT_CERTS_BY_UNIT,      /* unit, and the same counts */
	DB_REPORT_MESSAGES_BY_MONTH,  /* month (01..12, every one), signed,
	                                 encrypted, unsigned, failed */
	DB_REPORT_MESSAGES_BY_UNIT,   /* unit, and the same counts */
	DB_REPORT_UNSIGNED_REASONS,   /* reason, messages */
	DB_REPORT_UNSIGNED_MAILBOXES, /* mailbox, messages */
	DB_REPORT_LATE_RENEWALS,      /* mailbox, expired, renewed,
	                                 days_late */
	DB_REPORT_INBOUND_BY_MONTH,   /* month (01..12, every one), decrypted,
	                                 not_decrypted, verified,
	                                 verify_failed (issue 13) */
	DB_REPORT_INBOUND_BY_UNIT,    /* unit (of each internal recipient's
	                                 newest certificate; a message to two
	                                 units counts in both), and the same
	                                 counts */
	DB_REPORT_TABLES
};

/* Called for each row with its columns as text (NULL for SQL NULL), valid
 * during the call; return non-zero to stop. */
typedef int (*db_row_fn)(void *arg, int ncols, const char *const *cols);

/* The rows of one report table for the period [start, end): "active"
 * counts certificates still valid at now, "expired" those that ran out in
 * the period before now.  Returns 0 or -1 with err filled. */
int db_report(struct db *db, enum db_report_table table, time_t start,
              time_t end, time_t now, db_row_fn fn, void *arg, char *err,
              size_t errlen);

/* Newest nextUpdate of the CRLs imported per issuer: fn(arg, issuer,
 * next_update) for each issuer. */
typedef int (*db_crl_fn)(void *arg, const char *issuer, time_t next_update);
int db_crls(struct db *db, db_crl_fn fn, void *arg, char *err, size_t errlen);

/*
 * Mark the certificates with this issuer (as stored) and serial revoked:
 * signing certificates and recipient certificates (schema 4) alike.
 * *count gets the number of certificates changed, of both kinds (0 when
 * unknown or already revoked).  History records "revoked" for a signing
 * certificate and "recipient-revoked" (detail: the serial) for a recipient
 * certificate.
 */
int db_revoke(struct db *db, const char *issuer, const char *serial,
              const char *reason, time_t when, const char *actor, int *count,
              char *err, size_t errlen);

/* Record an imported CRL. */
int db_crl_add(struct db *db, const char *issuer, time_t this_update,
               time_t next_update, int entries, char *err, size_t errlen);

/* ---- recipient certificates (schema 4) --------------------------------
 * Certificates of the people mail may be encrypted to: imported with
 * "smimectl recipient import" or harvested from signed inbound mail.  One
 * row per (address, certificate); a certificate with two addresses has two
 * rows.  revoked_serials keeps every entry of every imported CRL, so a
 * certificate stored after its CRL was imported is still known revoked.
 */
struct db_recipient {
	long long id;
	char *address; /* lower-case */
	DB_CERT_IDENTITY;
	char *status; /* active, revoked */
	char *source; /* import, harvest */
	char *cert_pem;
	time_t created_at;
};

/* Free the strings of r and zero it; NULL is fine. */
void db_recipient_clear(struct db_recipient *r);

/*
 * Store r (status active) unless (address, fingerprint) is already stored:
 * *added = 1 when a row was inserted, 0 when it was already there.  The
 * address is stored lower-cased; r->id, r->status and r->created_at are
 * ignored (the row gets its own).  r->source must be "import" or "harvest".
 * Records a history event (mailbox_history: address, event
 * "recipient-import" or "recipient-harvest", detail the serial) with actor
 * when a row was inserted.  Returns 0 or -1 with err filled.
 */
int db_recipient_add(struct db *db, const struct db_recipient *r,
                     const char *actor, int *added, char *err, size_t errlen);

/* Called for each row (valid only during the call); return non-zero to
 * stop. */
typedef int (*db_recipient_fn)(void *arg, const struct db_recipient *r);

/*
 * Recipient certificates of address (NULL: all; compared lower-cased),
 * ordered by address, then newest not_before first; with active_only only
 * status active.  Expiry is not filtered: compare not_after yourself.
 * Returns 0 or -1 with err filled.
 */
int db_recipients(struct db *db, const char *address, int active_only,
                  db_recipient_fn fn, void *arg, char *err, size_t errlen);

/*
 * Delete the recipient certificates named by spec: an address (with '@':
 * all of its certificates), an id as printed by "recipient list", a serial
 * or a SHA-256 fingerprint (hex, any case; every address the certificate
 * is stored under).  *count = rows removed (0: nothing matched).  A spec
 * that is the id of one certificate and the serial of another, or a serial
 * shared by certificates of different issuers, is refused as ambiguous
 * (-1, err says to give the fingerprint) and nothing is removed.  History
 * event "recipient-remove" (detail the serial) per row.  Returns 0 or -1.
 */
int db_recipient_remove(struct db *db, const char *spec, const char *actor,
                        int *count, char *err, size_t errlen);

/* 1 when (issuer, serial) is listed by an imported CRL, 0 when not, -1 on
 * error (err filled).  issuer as cert_name_text gives it, serial hex
 * upper-case. */
int db_serial_revoked(struct db *db, const char *issuer, const char *serial,
                      char *err, size_t errlen);

/* Like db_serial_revoked; when listed, *when (may be NULL) gets the CRL
 * entry's revocation date, 0 when the row has none. */
int db_serial_revoked_at(struct db *db, const char *issuer, const char *serial,
                         time_t *when, char *err, size_t errlen);

/* Record one CRL entry (idempotent: a known (issuer, serial) is left as it
 * is).  reason may be NULL.  Returns 0 or -1 with err filled. */
int db_serial_revoke_add(struct db *db, const char *issuer, const char *serial,
                         const char *reason, time_t when, char *err,
                         size_t errlen);

struct audit_row {
	time_t at;
	const char *queue_id;
	const char *message_id;
	const char *from_addr;
	const char *action; /* signed, passed, rejected, tempfailed... */
	const char *cert_serial;
	const char *digest;
	const char *result; /* ok, or the reason */
	/* schema 6, inbound rows (issue 13; actions decrypted, verified,
	 * verify-failed, not-decrypted): */
	const char *recipients;  /* envelope recipients, ", " between */
	const char *cert_issuer; /* the signer's issuer (cert_serial: its
	                            serial; result: the verdict) */
};

/*
 * Append one audit row to the hash chain of db's node (schema 5; one chain
 * per node since schema 9, db_set_node): reads the hash of that node's
 * last row and inserts the next id (SQLite: the largest + 1; PostgreSQL:
 * the table's sequence, gaps and all) with prev_hash and hash, inside one
 * write transaction (the caller's, when one is open: db_begin takes BEGIN
 * IMMEDIATE; otherwise its own) and under the node's lock (PostgreSQL: an
 * advisory lock on the node name), so concurrent writers of a node keep
 * one chain and never wait for another node's.
 * hash = SHA-256 of "smime-milter-audit-v1\n" and the length-prefixed
 * encoding of prev_hash, id, at, queue_id, message_id, from_addr, action,
 * cert_serial, digest, result (see db_audit.c; smimectl(8) AUDIT LOG);
 * a row with recipients or cert_issuer (schema 6) is hashed with
 * "smime-milter-audit-v2\n" and those two columns appended; a row of a
 * named node (schema 9) with "smime-milter-audit-v3\n", the v2 fields and
 * the node.
 * Keeps its prepared statements in db: one thread at a time per db (the
 * audit writer has its own connection).  Returns 0 or -1 with err filled.
 */
int db_audit_add(struct db *db, const struct audit_row *r, char *err,
                 size_t errlen);

enum db_audit_problem {
	DB_AUDIT_OK = 0,
	DB_AUDIT_HASH_MISSING,   /* hash NULL or not 64 hex digits */
	DB_AUDIT_PREV_MISSING,   /* prev_hash NULL or not 64 hex digits */
	DB_AUDIT_CHANGED,        /* the columns do not give the stored hash */
	DB_AUDIT_LINK,           /* prev_hash is not the previous row's hash:
	                          a row deleted, inserted or moved before it */
	DB_AUDIT_ANCHOR_CHANGED, /* the anchor row's hash is not the one
	                            recorded: the chain was rewritten */
	DB_AUDIT_ANCHOR_MISSING  /* the anchor row is gone */
};

struct db_audit_check {
	long long rows;     /* rows verified (before the break, if any) */
	long long last_id;  /* the last verified row (0: none) */
	char last_hash[65]; /* its hash (64 zeros: none) */
	long long bad_id;   /* the first broken row */
	long long prev_id;  /* the row before it (0: none) */
	enum db_audit_problem problem;
	char node[DB_NODE_MAX + 1]; /* the chain (schema 9): the node's name,
	                               "" for rows of no named node */
};

/*
 * Walk the audit log in id order and recompute the chain, in one read
 * transaction.  With anchor_id > 0, row anchor_id must also exist and have
 * the hash anchor_hash (64 hex digits recorded earlier, e.g. printed by a
 * previous verify): that catches a chain recomputed after a change and
 * rows deleted from the end.  Returns 0 when every row verifies, 1 at the
 * first broken link (out says which and why), -1 on error with err filled.
 */
int db_audit_verify(struct db *db, long long anchor_id, const char *anchor_hash,
                    struct db_audit_check *out, char *err, size_t errlen);

/* Called for each audit row found, with its id and hash (valid only
 * during the call); return non-zero to stop. */
typedef int (*db_audit_row_fn)(void *arg, long long id,
                               const struct audit_row *r, const char *hash);

/* The audit rows whose message_id is exactly message_id (the Message-ID
 * field's value as the milter stored it), oldest first, through fn.
 * Returns 0 or -1 with err filled. */
int db_audit_find(struct db *db, const char *message_id, db_audit_row_fn fn,
                  void *arg, char *err, size_t errlen);

/* One RFC 3161 anchor of the chain (schema 7, table audit_anchors): a
 * TSA's token whose imprint is the hash of row audit_id, the head of the
 * chain when it was made (the 32 bytes the 64 hex digits spell). */
struct db_audit_anchor {
	long long id;
	long long audit_id;   /* the anchored row */
	char hash[65];        /* its hash then, the token's imprint in hex */
	unsigned char *token; /* the TimeStampToken, DER (malloc'd) */
	size_t token_len;
	time_t gen_time; /* the token's genTime, as stored */
	char *tsa_url;
	time_t created_at;
	/* the log now, read by db_audit_verify_anchors: */
	int row_found;     /* 1 when row audit_id is still there */
	char row_hash[65]; /* its stored hash ("" when NULL or malformed) */
	char *node;        /* the chain it stamps (schema 9; malloc'd) */
};

/*
 * Store an anchor: token (DER, len bytes) from the TSA at tsa_url over
 * hash (64 hex digits), the hash of audit row audit_id, genTime gen_time;
 * it belongs to the chain of that row's node (schema 9).
 * Returns the new anchor's id, or -1 with err filled.
 */
long long db_audit_anchor_add(struct db *db, long long audit_id,
                              const char *hash, const unsigned char *token,
                              size_t len, time_t gen_time, const char *tsa_url,
                              char *err, size_t errlen);

/*
 * db_audit_verify, and in the same read transaction every anchor in id
 * order with the current hash of its row: *anchors (malloc'd, free with
 * db_audit_anchors_free) and *n.  Returns what db_audit_verify returns
 * (0, 1 or -1 with err filled; on -1 *anchors is NULL).
 */
int db_audit_verify_anchors(struct db *db, long long anchor_id,
                            const char *anchor_hash, struct db_audit_check *out,
                            struct db_audit_anchor **anchors, size_t *n,
                            char *err, size_t errlen);

/* Free n anchors from db_audit_verify_anchors; NULL is fine. */
void db_audit_anchors_free(struct db_audit_anchor *a, size_t n);

/* ---- smimectl stats (db_stats.c) -------------------------------------- */

/* One count of audit rows: in all and since the start of the window. */
struct db_stats_count {
	char *key; /* an action, or the reason of unsigned mail */
	long long total, recent;
};

/* An active certificate mapped to a mailbox (one in use). */
struct db_stats_cert {
	char *mailbox, *kind, *serial;
	time_t not_after;
};

/* The newest CRL of an issuer (largest thisUpdate). */
struct db_stats_crl {
	char *issuer;
	time_t this_update, next_update; /* 0: not stored */
};

/* One node's audit chain (schema 9). */
struct db_stats_node {
	char *node; /* "" for rows of no named node */
	long long rows, last_id;
	long long unanchored; /* its rows after its newest anchor */
};

/* What "smimectl stats" shows, read in one read transaction. */
struct db_stats {
	/* every action the milter writes (signed, encrypted, unsigned,
	 * passed, rejected, tempfailed, decrypted, not-decrypted, verified,
	 * verify-failed), with 0 when there is none, then any other action
	 * found, by name */
	struct db_stats_count *actions;
	size_t nactions;
	/* unsigned mail by reason: the result up to its first ": " (the
	 * milter writes "no usable certificate: no certificate mapped to
	 * ..."), so the mailbox does not make a reason of its own */
	struct db_stats_count *reasons;
	size_t nreasons;
	struct db_stats_cert *certs; /* by mailbox */
	size_t ncerts;
	struct db_stats_crl *crls; /* by issuer */
	size_t ncrls;
	long long audit_rows;    /* the length of the hash chain */
	long long audit_last_id; /* its head (0: empty) */
	/* the newest RFC 3161 anchor (anchor_id 0: none) */
	long long anchor_id, anchor_audit_id;
	time_t anchor_gen_time;
	/* one chain per node (schema 9), by name */
	struct db_stats_node *nodes;
	size_t nnodes;
	long long audit_unanchored; /* rows after their chain's newest anchor,
	                               every chain */
};

/*
 * Fill *out (db_stats_free it) from the audit log, the mapped certificates,
 * the CRLs and the anchors; "recent" counts rows at or after since.
 * Returns 0 or -1 with err filled (*out then empty).
 */
int db_stats_read(struct db *db, time_t since, struct db_stats *out, char *err,
                  size_t errlen);

/* Free what db_stats_read filled and zero it; NULL is fine. */
void db_stats_free(struct db_stats *s);

/* ---- where CRLs come from (schema 8, table crl_sources) ---------------
 * One row per CRL URL smimectl crl fetch has tried (db_crl.c). */
struct db_crl_source {
	char *url;
	char *issuer;         /* of the last CRL stored from url; NULL: none */
	time_t last_modified; /* the server's Last-Modified; 0: none */
	time_t fetched_at;    /* when a CRL last came (200); 0: never */
	time_t checked_at;    /* the last attempt */
	time_t this_update;   /* of the stored CRL; 0: none */
	time_t next_update;
	char *status; /* "fresh", "not-modified" or "failed" */
	char *detail; /* the error in words, or NULL */
};

/* The row of url: 1 and *out filled (db_crl_source_clear it), 0 when
 * there is none (*out zeroed), -1 on error with err filled. */
int db_crl_source_get(struct db *db, const char *url, struct db_crl_source *out,
                      char *err, size_t errlen);

/* Write the row s->url with every field of s (times <= 0 as NULL),
 * replacing the one there.  Returns 0 or -1 with err filled. */
int db_crl_source_put(struct db *db, const struct db_crl_source *s, char *err,
                      size_t errlen);

/* Free the strings of s and zero it; NULL is fine. */
void db_crl_source_clear(struct db_crl_source *s);

/* ---- OCSP answers (schema 8) ------------------------------------------
 * One answer per certificate, kept until its next_update (db_ocsp.c):
 * issuer as cert_name_text gives it, serial hex upper-case (as the
 * certificates and recipient_certs tables store them). */
struct db_ocsp {
	char *issuer;
	char *serial;
	char *status;      /* good, revoked, unknown */
	time_t revoked_at; /* 0: none */
	char *reason;      /* CRL reason name, or NULL */
	time_t this_update;
	time_t next_update; /* 0: the responder gave none */
	time_t checked_at;
	char *responder; /* the URL asked */
};

/* Free the strings of r and zero it; NULL is fine. */
void db_ocsp_clear(struct db_ocsp *r);

/* Store r, replacing the answer for (issuer, serial).  Returns 0 or -1
 * with err filled. */
int db_ocsp_put(struct db *db, const struct db_ocsp *r, char *err,
                size_t errlen);

/* Called for each row (valid only during the call); non-zero stops. */
typedef int (*db_ocsp_fn)(void *arg, const struct db_ocsp *r);

/* The answers still current at now (next_update after now, or none and
 * checked within max_age seconds), to seed the milter's cache.  Returns 0
 * or -1 with err filled. */
int db_ocsp_current(struct db *db, time_t now, time_t max_age, db_ocsp_fn fn,
                    void *arg, char *err, size_t errlen);

/* The stored answer for (issuer, serial) into *out (free with
 * db_ocsp_clear): 1 when there is one, 0 when none, -1 on error. */
int db_ocsp_get(struct db *db, const char *issuer, const char *serial,
                struct db_ocsp *out, char *err, size_t errlen);

/* 1 when target (the `database` setting) names a PostgreSQL database
 * (a URI starting postgresql:// or postgres://), 0 for an SQLite path. */
int db_target_is_pg(const char *target);

/* ---- copying an SQLite store into an empty database (db_copy.c) -------
 * What smimectl migrate does: every table of the source's catalogue with
 * every column, values with their types, ids kept, in one read
 * transaction on the source and one write transaction on the target. */

/* One table: its name, columns and the tables its foreign keys reference
 * (from the source's catalogue), the rows the source holds (read in the
 * copy's snapshot) and the rows copied. */
struct db_copy_table {
	char *name;
	char **cols, **refs;
	size_t ncols, nrefs;
	long long rows, copied;
};

struct db_copy_report {
	struct db_copy_table *tables; /* in the order they were copied */
	size_t n;
	long long identities;  /* identity sequences set (PostgreSQL) */
	long long src_version; /* the source's PRAGMA data_version */
	struct db_audit_check src_audit, dst_audit; /* both chains */
};

/* What db_copy_to returns besides 0 (copied and verified) and -1 (an
 * error on the way; err says which). */
enum {
	DB_COPY_TARGET = 1,      /* the target cannot be opened (err) */
	DB_COPY_NOT_EMPTY = 2,   /* the target holds rows: nothing written */
	DB_COPY_SRC_BROKEN = 3,  /* the source's audit chain is broken */
	DB_COPY_SRC_CHANGED = 4, /* written during the copy: rolled back */
	DB_COPY_MISMATCH = 5,    /* the copy differs: rolled back or
	                            emptied again */
	DB_COPY_SRC_TEXT = 6     /* a text value of the source is not
	                            UTF-8 (err names it): rolled back */
};

/* Put the n tables t in an order where each comes after the tables it
 * references (references to itself or to tables not in t ignored),
 * keeping their order otherwise.  0, or -1 with err filled when the
 * references form a cycle (t unchanged). */
int db_copy_order(struct db_copy_table *t, size_t n, char *err, size_t errlen);

/*
 * Copy src (an SQLite database at DB_SCHEMA_VERSION, its audit chain
 * intact) into target (a postgresql:// URI, or an SQLite path): refused
 * with nothing written when target holds rows in any of src's tables;
 * else the schema is made by the migrations, every table is copied in one
 * transaction, identity sequences are set past the largest id, the row
 * counts are compared before the commit and the audit chain of the copy
 * after it (db_audit_verify: the same rows and head hash, else the copied
 * rows are deleted again).  A source written by another connection
 * during the copy (PRAGMA data_version) rolls it back.  *r is filled
 * (free with db_copy_report_free) as far as the copy came.  Returns 0, a
 * DB_COPY_* code or -1, with err filled.
 */
int db_copy_to(struct db *src, const char *target, struct db_copy_report *r,
               char *err, size_t errlen);

/* Free what db_copy_to filled and zero it; NULL is fine. */
void db_copy_report_free(struct db_copy_report *r);

/* ---- run-once jobs and reload across nodes -----------------------------
 * A timer may run `smimectl notify`, `crl fetch` or `audit anchor` on every
 * node: one of them does the work.  PostgreSQL: a session advisory lock
 * (pg_try_advisory_lock) on db_job_key(name); SQLite (one host): an flock
 * on the file DATABASE.NAME.lock beside it (spaces in name as '-').  The
 * lock is held until db_job_unlock or db_close.  One job per connection. */

/* The advisory lock key of job name: FNV-1a (64 bits) over
 * "smime-milter job " followed by name, as a signed 64-bit integer. */
long long db_job_key(const char *name);

/* Take the lock of job name (letters, digits, ' ', '_', '-'; at most 64)
 * without waiting: *got is 1 when taken, 0 when another process or node
 * holds it.  Returns 0, or -1 with err filled. */
int db_job_lock(struct db *db, const char *name, int *got, char *err,
                size_t errlen);

/* Let go of the lock of job name taken by db_job_lock; NULL is fine. */
void db_job_unlock(struct db *db, const char *name);

/* The channel `smimectl reload` notifies and every milter listens on. */
#define DB_RELOAD_CHANNEL "smime_milter_reload"

/* 1 when db can send and receive notices (PostgreSQL), 0 when not. */
int db_can_notify(const struct db *db);

/* LISTEN on channel (a lower-case identifier) on this connection: later
 * notices reach db_wait_notify.  0, or -1 with err filled (also for
 * SQLite, which has none). */
int db_listen(struct db *db, const char *channel, char *err, size_t errlen);

/* NOTIFY channel with payload (at most 7999 bytes): every connection
 * listening on it, on any node, gets it once this one commits (at once
 * outside a transaction).  0, or -1 with err filled. */
int db_notify(struct db *db, const char *channel, const char *payload,
              char *err, size_t errlen);

/* Wait up to timeout_ms for a notice on a channel db listens on: 1 with its
 * payload in buf (cut to len - 1), 0 when none came, -1 with err filled
 * when the connection is lost (close db and open a new one: this one
 * stays lost).  Notices already received come first, without waiting. */
int db_wait_notify(struct db *db, int timeout_ms, char *buf, size_t len,
                   char *err, size_t errlen);

/* ---- one audit chain per node (schema 9, issue 16) ---------------------
 * Every audit row names the node (the host, config key node_name) that
 * wrote it, and each node's rows form a chain of their own: prev_hash is
 * the hash of the previous row of the same node, and a node's writers
 * never wait for another node's (PostgreSQL: an advisory lock per node).
 * Rows written before schema 9, and by a connection without a node name,
 * have node "" and keep their v1/v2 hashes; a row of a named node is
 * hashed as v3, its node included, so a row moved to another chain no
 * longer gives its hash (db_audit.c, smimectl(8) AUDIT LOG). */

/* The node name db_open gives every connection opened after this call
 * (the programs set node_name from the configuration; NULL or "": none).
 * Names longer than DB_NODE_MAX are cut. */
void db_node_default_set(const char *name);

/* The node the audit rows of db are written for (NULL or "": none).
 * Returns 0, or -1 with err filled when name is longer than DB_NODE_MAX. */
int db_set_node(struct db *db, const char *name, char *err, size_t errlen);

/* db's node name ("" when none). */
const char *db_node(const struct db *db);

/* The nodes that have audit rows or anchors, sorted, into *names (malloc'd, free
 * with db_audit_nodes_free) and *n.  Returns 0 or -1 with err filled. */
int db_audit_nodes(struct db *db, char ***names, size_t *n, char *err,
                   size_t errlen);

/* Free what db_audit_nodes gave; NULL is fine. */
void db_audit_nodes_free(char **names, size_t n);

/* The node of audit row id into node (len bytes): 1, 0 when there is no
 * such row, -1 on error with err filled. */
int db_audit_node_of(struct db *db, long long id, char *node, size_t len,
                     char *err, size_t errlen);

/*
 * db_audit_verify for the chain of one node ("" for rows of no named
 * node); out->node is set.  db_audit_verify itself walks every node's
 * chain: it returns 1 at the first chain that breaks (out: that chain),
 * or 0 with out->rows the rows of all chains and last_id/last_hash the
 * newest head; its anchor is checked in the chain of the anchor row's
 * node (or of the only node).  db_audit_verify_anchors likewise; the
 * _node variant gives only the anchors of that node's chain.
 */
int db_audit_verify_node(struct db *db, const char *node, long long anchor_id,
                         const char *anchor_hash, struct db_audit_check *out,
                         char *err, size_t errlen);
int db_audit_verify_node_anchors(struct db *db, const char *node,
                                 long long anchor_id, const char *anchor_hash,
                                 struct db_audit_check *out,
                                 struct db_audit_anchor **anchors, size_t *n,
                                 char *err, size_t errlen);

/* After audit rows were copied with their ids (smimectl migrate): move
 * PostgreSQL's id sequence past the largest id, so the next row written
 * does not collide (SQLite needs nothing).  0 or -1 with err filled. */
int db_audit_id_sync(struct db *db, char *err, size_t errlen);

#endif
