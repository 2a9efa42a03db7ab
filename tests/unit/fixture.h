/*
 * fixture -- what the unit tests share: a private temp directory, shell
 * commands, files, certificates made in-process (or read from
 * tests/data/unit), a signer mapped in a database, and a fixed signing
 * time.  Failures to build the fixture itself end the test (exit 1) with a
 * "# ..." line: a test cannot pass on a fixture that was not made.
 */
#ifndef SMIME_TEST_FIXTURE_H
#define SMIME_TEST_FIXTURE_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct db;

/* The checked-in test PKI (run from the top of the tree, as tests/run.sh
 * does): ca.crt.pem, leaf.{crt,key}.pem (unit@banjarkota.go.id), leaf.p12
 * with leaf.pass, server.{crt,key}.pem (EKU serverAuth). */
#define FIXTURE_DATA "tests/data/unit"

/* 2026-01-01T00:00:00Z: signatures made in tests carry this time. */
#define FIXTURE_SIGNING_TIME ((time_t)1767225600)

/*
 * Make a new private directory /tmp/smime-test-NAME.XXXXXX and remember it
 * for fixture_path and fixture_cleanup.  Returns its path (owned by the
 * fixture, valid until fixture_cleanup).  Exits when it cannot be made.
 */
const char *fixture_dir(const char *name);

/* "DIR/name" for the directory of fixture_dir, in one of eight buffers
 * used in turn (copy it to keep it longer). */
const char *fixture_path(const char *name);

/* Remove the directory of fixture_dir and all in it.  Returns 0, or -1
 * (said in a "#" line).  Fine to call when there is none. */
int fixture_cleanup(void);

/* The end of a test's main: fixture_cleanup, then rc (tap_done()'s). */
int fixture_end(int rc);

/* Run a printf-formatted shell command.  Returns its exit status (0 on
 * success); a failure is said in a "#" line. */
int fixture_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Run a printf-formatted shell command and keep the first line of its
 * output (without the newline) in out.  Returns out, or "" when the
 * command failed or printed nothing (said in a "#" line). */
const char *fixture_sh_out(char *out, size_t outlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Write text to path with the given mode (0600...).  Returns 0 or -1. */
int fixture_write(const char *path, const char *text, int mode);

/* The first certificate / the private key of FIXTURE_DATA/name; exits
 * when it cannot be read.  The caller frees it. */
X509 *fixture_data_cert(const char *name);
EVP_PKEY *fixture_data_key(const char *name);

/*
 * A certificate for key with subject O=Test Partner, CN=cn, signed by
 * issuer/ikey (NULL, NULL: self-signed), serial serial, valid from
 * now + from to now + to seconds, with the extensions exts ("name:value"
 * as in openssl.cnf, several separated by '|'; NULL for none).  Exits on failure.
 */
X509 *fixture_cert_make(EVP_PKEY *key, const char *cn, X509 *issuer,
                        EVP_PKEY *ikey, long serial, time_t now, long from,
                        long to, const char *exts);

/* Write a (and b when not NULL) to path as PEM.  Returns 0 or -1. */
int fixture_pem_write(const char *path, X509 *a, X509 *b);

/* Write key unencrypted as PEM to path, mode 0600.  Returns 0 or -1. */
int fixture_key_write(const char *path, EVP_PKEY *key);

/*
 * Store x (chain: chain_pem, may be NULL) in db with its key in the PEM
 * file key_path, and map mailbox to it as an "individual" certificate.
 * Returns the certificate id, or -1 with err filled.
 */
long long fixture_db_signer(struct db *db, X509 *x, const char *chain_pem,
                            const char *key_path, const char *mailbox,
                            char *err, size_t errlen);

/* ---- the database under test ------------------------------------------
 * SQLite files in the fixture directory, or PostgreSQL databases when
 * SMIME_TEST_DB_URI names a server (tests/admin/pg.sh sets it to the
 * maintenance database of a private one): the same tests, both backends. */

/* 1 when the tests run on PostgreSQL (SMIME_TEST_DB_URI set). */
int fixture_db_pg(void);

/* A fresh, empty database for name: the SQLite path fixture_path(name)
 * (removed if there), or a PostgreSQL database made for this test
 * process and name (dropped first if there, and by fixture_cleanup), as a
 * URI.  One of eight buffers used in turn.  Exits when it cannot be
 * made. */
const char *fixture_db(const char *name);

/* Run sql on target (path or URI) over a connection of its own that does
 * not look at the schema version: for tests that change rows behind the
 * library's back.  0, or -1 (said in a "#" line). */
int fixture_db_exec(const char *target, const char *sql);

/* The first column of the first row of sql on target as an integer, -1
 * when there is no row or an error (said in a "#" line). */
long long fixture_db_int(const char *target, const char *sql);

/* The same as malloc'd text; NULL for none. */
char *fixture_db_text(const char *target, const char *sql);

/* Empty target again: the SQLite file (and its -wal, -shm) removed, or
 * PostgreSQL's schema public dropped and made anew.  0 or -1. */
int fixture_db_reset(const char *target);

/* Set the schema version of target behind the library's back (PRAGMA
 * user_version or table schema_version).  0 or -1 (said in a "#" line). */
int fixture_db_set_version(const char *target, int version);

#endif
