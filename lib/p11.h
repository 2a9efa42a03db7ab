/*
 * p11 -- private keys on PKCS#11 tokens (an HSM, a USB token, SoftHSM2).
 *
 * Direct PKCS#11 calls through the module's function list (dlopen), no
 * libp11: we need to see every CKR_ code to tell a wrong PIN from a token
 * that went away, and to reinitialize the module by ourselves when it comes
 * back.
 *
 * Shape:
 *   - a module (one per path, process-wide) is loaded and C_Initialize'd on
 *     first use -- after the milter has forked and dropped privileges;
 *   - a p11_ctx (one per configuration snapshot, or one per smimectl run)
 *     holds the tokens it uses: each token logs in once and keeps a small
 *     pool of sessions, so concurrent messages never share a session;
 *   - a p11_key names one private key (RFC 7512 URI) and is turned into an
 *     EVP_PKEY whose RSA/EC method signs on the token, and decrypts there
 *     (C_Decrypt, C_DeriveKey) when the key may.  The rest of the
 *     program (CMS, CSRs) uses that EVP_PKEY like any other key.
 *
 * Failures:
 *   - a wrong PIN marks the token "login failed" and it is never tried again
 *     in this context (tokens lock after a few failures); one log line;
 *   - a token that errors or disappears is marked down (one log line); a
 *     signature on it fails at once, and at most every `retry` seconds one
 *     caller reinitializes the module and tries again; success is logged
 *     once ("is back");
 *   - a key object that is missing is logged once and looked for again at
 *     the same pace.
 */
#ifndef SMIME_P11_H
#define SMIME_P11_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Where events go (one call per change of state).  NULL: nowhere. */
typedef void (*p11_report_fn)(int is_error, const char *text);
extern p11_report_fn p11_reporter;

enum p11_objtype { P11_ANY = 0, P11_PRIVATE, P11_PUBLIC, P11_CERT };

/* An RFC 7512 URI taken apart (values percent-decoded). */
struct p11_uri {
	char *token, *manufacturer, *serial, *model;
	char *object;
	unsigned char *id;
	size_t idlen;
	enum p11_objtype type;
	long slot_id;     /* -1: not given */
	char *pin_source; /* file path (from "file:PATH" or a bare path) */
	char *module_path;
};

/* Returns 0, or -1 with err saying what is wrong.  A pin-value attribute is
 * refused: PINs live in files, never in the database or the logs. */
int p11_uri_parse(const char *text, struct p11_uri *u, char *err,
                  size_t errlen);
void p11_uri_clear(struct p11_uri *u);

/* "pkcs11:token=T;id=%..;object=O;type=private" (malloc'd). */
char *p11_uri_make(const char *token, const unsigned char *id, size_t idlen,
                   const char *object);

/* What a context needs from the configuration. */
struct p11_settings {
	const char *module;      /* default module path (may be NULL) */
	char *const *pin_tokens; /* token labels ... */
	char *const *pin_files;  /* ... and their PIN files */
	size_t npins;
	int sessions; /* pool size per token */
	int retry;    /* seconds between reconnect attempts */
};

struct p11_ctx;
struct p11_key;

struct p11_ctx *p11_ctx_new(const struct p11_settings *set);
/* Closes the context's sessions (never C_Logout: another context may share
 * the login).  The EVP_PKEYs it handed out must be freed first. */
void p11_ctx_free(struct p11_ctx *c);

/*
 * The key named by uri, checked against cert (its public key must be the
 * key's; cert may be NULL to skip the check).  Returns:
 *    0  usable now: *out is an EVP_PKEY that signs on the token;
 *    1  a wrapper was made (*out) but the key cannot sign now: token down,
 *       login failed, key not found; err says why.  It may recover by
 *       itself (not after a failed login);
 *   -1  cannot be used at all (bad URI, no module, no PIN, key of another
 *       certificate); *out is NULL, err says why.
 * *keyp (may be NULL) receives the key, for p11_key_ready().
 */
int p11_ctx_key(struct p11_ctx *c, const char *uri, X509 *cert, EVP_PKEY **out,
                struct p11_key **keyp, char *err, size_t errlen);

/*
 * The key named by uri for decryption, checked against cert as by
 * p11_ctx_key: the same kind of EVP_PKEY, whose RSA decryption (PKCS#1
 * v1.5, OAEP: C_Decrypt) and ECDH (C_DeriveKey) happen on the token, so
 * that OpenSSL's CMS decryption takes it as a file key.  Same returns as
 * p11_ctx_key, and -1 when the object may not decrypt (CKA_DECRYPT or
 * CKA_DERIVE false), err saying so.
 */
int p11_ctx_key_decrypt(struct p11_ctx *c, const char *uri, X509 *cert,
                        EVP_PKEY **out, struct p11_key **keyp, char *err,
                        size_t errlen);

/* 1 when a signature with key may be attempted now (trying to reconnect if
 * the token is down and the retry interval has passed); 0 with err filled
 * when not. */
int p11_key_ready(struct p11_key *k, char *err, size_t errlen);

/* The reason the last signature of this thread failed ("" if none). */
const char *p11_last_error(void);

/* ---- for smimectl ---------------------------------------------------- */

/* Find the certificate object with the CKA_ID of the key named by uri.
 * Returns 0 and *cert, or -1 with err. */
int p11_ctx_key_cert(struct p11_ctx *c, const char *uri, X509 **cert, char *err,
                     size_t errlen);

/* Generate a key pair (sensitive, not extractable, CKA_TOKEN) on the token
 * of uri, with the given label and a fresh CKA_ID; type is "rsa2048",
 * "rsa3072" or "ec-p256".  The private key signs; with decrypt set it also
 * decrypts (CKA_DECRYPT for RSA, CKA_DERIVE for EC), else both are false.
 * Returns 0 with *pub (the public key), *newuri (malloc'd URI of the
 * private key) or -1 with err. */
int p11_keygen(struct p11_ctx *c, const char *uri, const char *label,
               const char *type, int decrypt, EVP_PKEY **pub, char **newuri,
               char *err, size_t errlen);

/* A key from p11_keygen as a signing EVP_PKEY (pub gives its public part).
 * Same returns as p11_ctx_key. */
int p11_ctx_key_pub(struct p11_ctx *c, const char *uri, EVP_PKEY *pub,
                    EVP_PKEY **out, char *err, size_t errlen);

/* Print slots, tokens and objects to f (smimectl tokens).  Returns 0 or -1
 * with err. */
int p11_list(struct p11_ctx *c, const char *module, void *f, char *err,
             size_t errlen);

#endif
