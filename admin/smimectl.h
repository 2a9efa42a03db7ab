/* smimectl -- what the command files of the admin tool share.  The command
 * table and main are in smimectl.c; nothing calls back into it. */
#ifndef ADMIN_SMIMECTL_H
#define ADMIN_SMIMECTL_H

#include <stdio.h>
#include <time.h>

#include <openssl/x509.h>

#include "config.h"
#include "db.h"
#include "util.h"

/* ---- common.c ---- */

/* Print "smimectl: message" and exit with code. */
_Noreturn void die(int code, const char *fmt, ...) PRINTFLIKE(2, 3);
/* The configuration file load_config reads (-c; CONFIG_DEFAULT_PATH when
 * never called). */
void set_config_path(const char *path);
/* The configuration named by -c, or die. */
struct config *load_config(void);
/* Open the database, or die. */
struct db *open_db(struct config *cfg, enum db_open_mode mode);
/* From here on run as the milter's user (see common.c). */
void become_user(const struct config *cfg);
/* become_user, then open_db: what a command that only works on the
 * database does first. */
struct db *open_db_as_user(struct config *cfg, enum db_open_mode mode);
/* key_dir made (mode 0700, as the caller: call become_user first) when it
 * is missing; dies saying what to do when its parent is missing or it is
 * not a directory. */
void key_dir_create(const struct config *cfg);
/* A warning on stderr when mbox is not in a signing domain of cfg. */
void warn_signing_domain(const struct config *cfg, const char *mbox);
/* The address in the argument in (of option opt, NULL for an operand)
 * into mbox, or die with the usage error. */
void mailbox_arg(const char *opt, const char *in, char *mbox, size_t len);
/* --kind and --key-type values, or die with the usage error. */
void check_kind(const char *kind);
void check_key_type(const char *type);
/* Who runs the command, for the audit trail. */
const char *actor(void);
/* One --name VALUE option: its value is stored in *value. */
struct long_arg {
	const char *name;
	const char **value;
};
/* Parse the options args (ended by a NULL name) of a command's argv with
 * getopt_long from argv[1].  Returns 0, or -1 at an unknown option or a
 * missing value (getopt_long has said which on stderr); optind is then the
 * first operand. */
int parse_long_args(int argc, char **argv, const struct long_arg *args);

/* ---- json.c: --json output on stdout ---- */

/* A JSON string (or null) on stdout. */
void json_str(const char *s);
/* The start of the object of row n (0: the first) of a JSON array:
 * {"id": id, "name": value -- the caller adds members, then json_row_end. */
void json_row_begin(int n, long long id, const char *name, const char *value);
/* One member of a JSON object: a name and a string value (NULL: null). */
struct json_kv {
	const char *name, *value;
};
/* The last n members kv of a row, each as `, "name": value`, and its
 * closing "}". */
void json_row_end(const struct json_kv *kv, size_t n);
/* The members every certificate listing has, in this order: serial,
 * fingerprint, subject, issuer, not_before, not_after. */
void json_cert_fields(const char *serial, const char *fingerprint,
                      const char *subject, const char *issuer,
                      time_t not_before, time_t not_after);

/* ---- csr.c: certificate requests ---- */

/* The --usage value of keygen and renew: 1 for "sign,decrypt" (also the
 * default, for NULL), 0 for "sign"; dies with the usage error otherwise. */
int csr_usage_parse(const char *usage);
/* A PKCS#10 for key with subject and (if not NULL) a copy of the
 * subjectAltName extension san, key usage fit for S/MIME: digitalSignature,
 * and with decrypt keyEncipherment (RSA) or keyAgreement (ec); NULL when it
 * cannot be built. */
X509_REQ *csr_make(const X509_NAME *subject, const X509_EXTENSION *san,
                   EVP_PKEY *key, int ec, int decrypt);
/* A request for a new mailbox: subject CN=mbox, subjectAltName mbox; NULL
 * when it cannot be built. */
X509_REQ *csr_for_mailbox(const char *mbox, EVP_PKEY *key, int ec, int decrypt);
/* The file DIR/MAILBOX.csr.pem opened for writing (as the caller), its
 * name in path; dies when it cannot be created. */
FILE *csr_open(const char *outdir, const char *mbox, char *path,
               size_t pathlen);
/* req written as PEM to f (closed), path naming it in messages; returns
 * the PEM text (malloc'd), or dies. */
char *csr_write(FILE *f, X509_REQ *req, const char *path);

/* ---- hsm.c: PKCS#11.  All die with a clear message on failure. ---- */

/* The key store of this run (PKCS#12, PEM and token keys alike). */
struct keystore *hsm_keystore(const struct config *cfg);
/* The private key of ref through the key store, checked against cert's
 * public key. */
struct key_ref;
EVP_PKEY *hsm_load_key(const struct config *cfg, const struct key_ref *ref,
                       X509 *cert);
/* The certificate object with the CKA_ID of the key named by uri. */
X509 *hsm_cert_of_key(const struct config *cfg, const char *uri);
/* A new key pair on the token of uri, that also decrypts when decrypt is
 * set: returns the signing EVP_PKEY, the new key's URI and the SHA-256 of
 * its public key (both malloc'd). */
EVP_PKEY *hsm_keygen(const struct config *cfg, const char *uri,
                     const char *label, const char *type, int decrypt,
                     char **newuri, char **pubkey_sha256);

/* ---- the commands: each takes its argv from the command name on and
 * returns the exit code (or dies). ---- */

/* smimectl init, reload (service.c). */
int cmd_init(int argc, char **argv);
int cmd_reload(int argc, char **argv);
/* Ask the milter of cfg to reload: SIGUSR1 to the pid in its pidfile and,
 * with a PostgreSQL database (db, or opened here when NULL), a NOTIFY that
 * every node's milter hears (*notified = 1).  Returns that pid, 0 when cfg
 * sets no pidfile, or -1 with err filled when no milter runs, it cannot be
 * signalled or the NOTIFY failed (service.c). */
long service_reload(const struct config *cfg, struct db *db, int *notified,
                    char *err, size_t errlen);
/* Take the lock of run-once job name (notify, crl fetch, audit anchor),
 * or, when another node holds it, say so in one line, close db and exit 0:
 * that node does the work.  Held until db is closed (service.c). */
void job_begin(struct db *db, const char *name);
/* smimectl import (import.c). */
int cmd_import(int argc, char **argv);
/* smimectl list, map, unmap, revoke, show (cert.c). */
int cmd_list(int argc, char **argv);
int cmd_map(int argc, char **argv);
int cmd_unmap(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_show(int argc, char **argv);
/* smimectl crl import (crl.c), crl fetch (crl_fetch.c). */
int cmd_crl(int argc, char **argv);
int cmd_crl_fetch(int argc, char **argv);
/* The one way a CRL gets in (crl.c): crl (named name) verified against
 * cfg's ca_file (none: a warning, not verified) and applied as
 * crl_verify_apply does, with src recorded when not NULL.  Returns 0 with
 * *out filled, 1 refused, -1 database error (err filled; nothing written
 * on either). */
struct crl_applied;
int crl_import_one(const struct config *cfg, struct db *db, X509_CRL *crl,
                   const char *name, const struct db_crl_source *src,
                   struct crl_applied *out, char *err, size_t errlen);
/* smimectl renew (renew.c). */
int cmd_renew(int argc, char **argv);
/* smimectl expiring (expiring.c): monitoring-plugin exit codes. */
int cmd_expiring(int argc, char **argv);
/* smimectl notify (notify.c). */
int cmd_notify(int argc, char **argv);
/* smimectl tokens, keygen (hsm.c). */
int cmd_tokens(int argc, char **argv);
int cmd_keygen(int argc, char **argv);

/* smimectl report (report.c). */
int cmd_report(int argc, char **argv);

/* smimectl recipient import|list|remove (recipient.c): certificates mail
 * may be encrypted to. */
int cmd_recipient(int argc, char **argv);

/* smimectl audit verify [--json] (audit.c): the audit log's hash chain. */
int cmd_audit(int argc, char **argv);
/* The key ("content-changed", ...) and the plain words of an audit chain
 * problem, shared with verify (audit.c). */
const char *audit_problem_key(enum db_audit_problem p);
void audit_problem_text(const struct db_audit_check *c, char *buf, size_t len);

/* smimectl verify FILE... [--json] (verify.c): disputed messages. */
int cmd_verify(int argc, char **argv);

/* smimectl stats [--prometheus FILE] [--json] (stats.c): metrics. */
int cmd_stats(int argc, char **argv);
/* smimectl migrate --to URI (migrate.c): SQLite into PostgreSQL. */
int cmd_migrate(int argc, char **argv);
/* smimectl ocsp check ADDR|FILE (ocsp.c): ask the OCSP responder. */
int cmd_ocsp(int argc, char **argv);

#endif
