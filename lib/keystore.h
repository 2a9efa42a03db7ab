/*
 * keystore -- private keys behind one interface: a table of backends keyed
 * by enum key_backend (PKCS#12 files, PEM key files, PKCS#11 tokens).
 *
 * A struct keystore is made once per configuration snapshot (or smimectl
 * run).  It carries what a backend needs beyond the key reference itself:
 * for PKCS#11 the module, the PIN files and the p11_ctx that holds the
 * tokens, their logins and session pools.  Keys it hands out must be freed
 * before it is.
 *
 * Every backend hands out only the key of the certificate it is asked for:
 * a key read from a file is compared with the certificate, a token key is
 * found and checked on the token.
 *
 * Decryption (the inbound half) is the second operation of the same
 * backend table: keystore_load_decrypt_key gives the key whose private
 * operation opens a CMS RecipientInfo addressed to a certificate -- for a
 * file the same EVP_PKEY as for signing, for a token a wrapper whose RSA
 * decryption (C_Decrypt) and ECDH (C_DeriveKey) run on the token.  Hand it
 * to OpenSSL's CMS decryption (CMS_decrypt_set1_pkey_and_peer,
 * CMS_RecipientInfo_set0_pkey + CMS_RecipientInfo_decrypt) as any key.
 */
#ifndef SMIME_KEYSTORE_H
#define SMIME_KEYSTORE_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct config;
struct p11_ctx;
struct p11_key;
struct p11_settings;

enum key_backend { KEY_NONE = 0, KEY_PKCS12, KEY_PEM, KEY_PKCS11 };

/* Where a key lives.  secret_file holds the passphrase/PIN (may be NULL for
 * an unencrypted PEM key, and for a token key whose PIN file comes from the
 * configuration). */
struct key_ref {
	enum key_backend backend;
	const char *location; /* file path, or PKCS#11 URI */
	const char *secret_file;
};

/* Name <-> enum for the database ("pkcs12", "pem", "pkcs11"); "none" and
 * KEY_NONE for anything else. */
const char *key_backend_name(enum key_backend b);
enum key_backend key_backend_parse(const char *s);

struct keystore;

/* A key store whose PKCS#11 keys use the settings p11 (copied; NULL: no
 * module, no PINs).  NULL on out of memory. */
struct keystore *keystore_new(const struct p11_settings *p11);

/* The same with the PKCS#11 settings of cfg (pkcs11_module,
 * pkcs11_tokens) and a pool of sessions per token, retry seconds between
 * reconnect attempts.  NULL on out of memory. */
struct keystore *keystore_new_config(const struct config *cfg, int sessions,
                                     int retry);

/* The PKCS#11 context of ks, for the admin tool's token operations
 * (keygen, listing, a token key's certificate).  NULL for NULL. */
struct p11_ctx *keystore_p11(struct keystore *ks);

/* Frees the store and closes its token sessions; NULL is fine.  The keys it
 * handed out must be freed first. */
void keystore_free(struct keystore *ks);

/*
 * 1 when a file of ref (the key file, the secret file) may be read or
 * replaced by others, with err naming it; 0 otherwise, and always 0 for
 * backends whose key is not in a file.  A missing file is not exposed.
 */
int keystore_exposed(const struct key_ref *ref, char *err, size_t errlen);

/*
 * Load the private key named by ref, the key of cert.  Checks that key and
 * secret files are private (not group/world readable); secrets are
 * cleansed after use.  cert may be NULL for file keys (no comparison); a
 * token key needs it to be found and checked.  Returns:
 *    0  *out is the key, usable now;
 *    1  (PKCS#11) *out is a key that cannot sign now -- token down, login
 *       failed, object missing -- err says why; it may recover by itself;
 *   -1  no key: *out is NULL, err says why ("... does not match
 *       certificate SERIAL" when it is another certificate's key).
 * *hsm (may be NULL) receives the token key for p11_key_ready(), or NULL
 * for a file key.
 */
int keystore_load_key(struct keystore *ks, const struct key_ref *ref,
                      X509 *cert, EVP_PKEY **out, struct p11_key **hsm,
                      char *err, size_t errlen);

/*
 * The private key of ref for decrypting what was encrypted to cert (which
 * is needed, for every backend).  Same checks and returns as
 * keystore_load_key; for a token key also -1 when the object may not
 * decrypt (CKA_DECRYPT for RSA, CKA_DERIVE for EC false: a key made by
 * smimectl keygen --usage sign), err saying so.  The key is for
 * decryption only: whether its certificate may still sign is the caller's
 * business (snapshot_decrypt_keys never offers one for signing).
 */
int keystore_load_decrypt_key(struct keystore *ks, const struct key_ref *ref,
                              X509 *cert, EVP_PKEY **out, struct p11_key **hsm,
                              char *err, size_t errlen);

/*
 * Read a PKCS#12 file with the passphrase read from passfile.  Returns key,
 * leaf certificate and the extra certificates (any of the outputs may be
 * NULL to ignore).  Error text says "wrong passphrase" when that is the cause.
 */
int keystore_read_pkcs12(const char *path, const char *passfile, EVP_PKEY **key,
                         X509 **cert, STACK_OF(X509) **extra, char *err,
                         size_t errlen);

#endif
