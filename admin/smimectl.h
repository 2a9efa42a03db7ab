/* smimectl -- helpers shared by the subcommand files of the admin tool. */
#ifndef ADMIN_SMIMECTL_H
#define ADMIN_SMIMECTL_H

#include <stdio.h>

#include <openssl/x509.h>

#include "config.h"
#include "db.h"
#include "util.h"

/* Print "smimectl: message" and exit with code. */
void die(int code, const char *fmt, ...) PRINTFLIKE(2, 3);
/* The configuration named by -c, or die. */
struct config *load_config(void);
/* Open the database, or die. */
struct db *open_db(struct config *cfg, enum db_open_mode mode);
/* From here on run as the milter's user (see smimectl.c). */
void become_user(const struct config *cfg);
/* --kind and --key-type values, or die with the usage error. */
void check_kind(const char *kind);
void check_key_type(const char *type);
/* Who runs the command, for the audit trail. */
const char *actor(void);
/* A JSON string (or null) on stdout. */
void json_str(const char *s);

/* Certificate requests (smimectl.c): a PKCS#10 for key with subject and
 * (if not NULL) subjectAltName san; the file DIR/MAILBOX.csr.pem opened as
 * the caller, then written (returns the PEM text).  Both die on failure. */
X509_REQ *make_csr(const X509_NAME *subject, const X509_EXTENSION *san,
                   EVP_PKEY *key, int ec);
FILE *open_csr(const char *outdir, const char *mbox, char *path,
               size_t pathlen);
char *write_csr(FILE *f, X509_REQ *req, const char *path);

/* PKCS#11 (hsm.c).  All die with a clear message on failure. */
/* The private key uri on its token, checked against cert's public key. */
EVP_PKEY *hsm_key_for_cert(const struct config *cfg, const char *uri,
                           X509 *cert);
/* The certificate object with the CKA_ID of the key named by uri. */
X509 *hsm_cert_of_key(const struct config *cfg, const char *uri);
/* A new key pair on the token of uri: returns the signing EVP_PKEY, the
 * new key's URI and the SHA-256 of its public key (both malloc'd). */
EVP_PKEY *hsm_keygen(const struct config *cfg, const char *uri,
                     const char *label, const char *type, char **newuri,
                     char **pubkey_sha256);
int cmd_tokens(int argc, char **argv);
int cmd_keygen(int argc, char **argv);

/* smimectl report (report.c). */
int cmd_report(int argc, char **argv);

/* smimectl recipient import|list|remove (recipient.c): certificates mail
 * may be encrypted to. */
int cmd_recipient(int argc, char **argv);

/* smimectl audit verify [--json] (audit.c): the audit log's hash chain. */
int cmd_audit(int argc, char **argv);

#endif
