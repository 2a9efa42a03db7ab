/*
 * p11_int -- what the p11 files share; not for the rest of the program,
 * which uses p11.h.
 *
 *   p11_uri.c    RFC 7512 URIs
 *   p11.c        modules (process-wide), tokens, sessions, logins; CKR names
 *   p11_key.c    keys on a token: find, check against a certificate, sign
 *   p11_dec.c    decryption on a token: C_Decrypt (RSA), C_DeriveKey (ECDH)
 *   p11_evp.c    EVP_PKEY wrappers whose private operations go to a p11_key
 *   p11_admin.c  smimectl only: certificate of a key, keygen, listing
 *
 * Locking: a module's rw lock is read-held around every call into it and
 * write-held to finalize and initialize it again; a token's mu guards its
 * state, pool and keys.  Functions below say which locks their caller holds.
 */
#ifndef SMIME_P11_INT_H
#define SMIME_P11_INT_H

#include "p11.h"
#include "util.h"

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include <openssl/ec.h>

#include <p11-kit/pkcs11.h>

#define P11_ERR_MAX 512

struct p11_module {
	char *path;
	void *dl;
	CK_FUNCTION_LIST *f;
	int refs;
	/* read-held around every call on the module; write-held to
	 * finalize and initialize it again */
	pthread_rwlock_t rw;
	pthread_mutex_t mu; /* serializes reinitialization */
	unsigned gen;       /* bumped by each C_Initialize attempt */
	int ok;             /* the last C_Initialize succeeded */
	CK_RV init_rv;
	struct p11_module *next;
};

enum tok_state { TOK_NEW = 0, TOK_OK, TOK_DOWN, TOK_LOGIN_FAILED };

struct p11_token {
	struct p11_ctx *ctx;
	struct p11_module *mod;
	char *label, *manufacturer, *serial, *model;
	long slot_id;
	char *pin; /* kept for logging in again after a reconnect */
	size_t pinlen;
	char *pin_origin; /* the file, for messages (never the PIN) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	enum tok_state state;
	unsigned gen; /* module generation of slot, sessions and login */
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE *pool;
	int nfree, nopen;
	time_t down_since, last_try;
	char why[256]; /* why it is down / login failed */
	struct p11_token *next;
};

enum key_state { KEY_NEW = 0, KEY_FOUND, KEY_MISSING };

struct p11_key {
	struct p11_token *tok;
	char *uri;
	unsigned char *id;
	size_t idlen;
	char *object;
	EVP_PKEY *pub; /* what the key must match */
	CK_KEY_TYPE type;
	CK_OBJECT_HANDLE h;
	unsigned gen; /* token generation h belongs to */
	enum key_state state;
	int mismatch; /* the object is not the certificate's key */
	/* CKA_DECRYPT (RSA) or CKA_DERIVE (EC) of the object found: 1 or 0,
	 * -1 while not known (not found yet, attribute unreadable) */
	int may_decrypt;
	time_t last_try;
	char why[256];
	struct p11_key *next;
};

struct p11_ctx {
	char *module;
	char **pin_tokens, **pin_files;
	size_t npins;
	int sessions, retry;
	struct p11_token *tokens;
	struct p11_key *keys;
};

/* ---- p11.c -------------------------------------------------------------- */

/* The CKR_ name of rv ("CKR 0x..." when unknown; thread-local buffer). */
const char *p11_ckr_name(CK_RV rv);

/* 1 for errors after which the token (or our link to it) is not trusted
 * until the module has been initialized again. */
int p11_ckr_is_device(CK_RV rv);

/* One event to p11_reporter (nothing when it is NULL). */
void p11_report(int is_error, const char *fmt, ...) PRINTFLIKE(2, 3);

/* Why the last signature of this thread failed (p11_last_error). */
extern __thread char p11_last_err[P11_ERR_MAX];
/* The CKR_ code of the token call that failed last in this thread (set by
 * p11_key_op; CKR_OK when the failure was not the token's answer). */
extern __thread CK_RV p11_last_rv;

/* The process-wide module loaded from path (a reference), or NULL with
 * err; put it back with p11_module_put (NULL is fine). */
struct p11_module *p11_module_get(const char *path, char *err, size_t errlen);
void p11_module_put(struct p11_module *m);

/* Finalize and initialize m again, unless someone did since seen_gen. */
void p11_module_reinit(struct p11_module *m, unsigned seen_gen);

/* The token's name for messages: label, serial or "(any)". */
const char *p11_tname(const struct p11_token *t);

/* A space-padded PKCS#11 text field of n octets as a C string (out has
 * room for n + 1). */
void p11_padded(char *out, const CK_UTF8CHAR *in, size_t n);

/* 1 when the token info ti is the token t names. */
int p11_token_matches(const struct p11_token *t, const CK_TOKEN_INFO *ti);

/* Mark t down (caller holds t->mu) and report it once. */
void p11_token_down(struct p11_token *t, const char *why);

/* Slot, first session and login for the module's current generation.
 * Caller holds the module read lock and t->mu.  Returns 0 or -1 with err. */
int p11_token_prepare(struct p11_token *t, char *err, size_t errlen);

/* A session from t's pool (caller holds t->mu, released while waiting);
 * 0 or -1 with err.  p11_session_put gives it back (gen: the token
 * generation it was taken in). */
int p11_session_get(struct p11_token *t, CK_SESSION_HANDLE *s, char *err,
                    size_t errlen);
void p11_session_put(struct p11_token *t, CK_SESSION_HANDLE s, unsigned gen);

/* Attribute type of object o (malloc'd in *val, length *len); 0 or -1. */
int p11_get_attr(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                 CK_ATTRIBUTE_TYPE type, unsigned char **val, CK_ULONG *len);

/* Up to max objects of class cls with the given id and label (either may
 * be NULL: not compared); *n receives how many. */
CK_RV p11_find_objects(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s,
                       CK_OBJECT_CLASS cls, const unsigned char *id,
                       size_t idlen, const char *label, CK_OBJECT_HANDLE *out,
                       CK_ULONG max, CK_ULONG *n);

/* The PIN file configured for the token labelled label, or NULL. */
const char *p11_pin_file_for(struct p11_ctx *c, const char *label);

/* The context's token for u, created (PIN read, module loaded) on first
 * use; NULL with err. */
struct p11_token *p11_token_for(struct p11_ctx *c, const struct p11_uri *u,
                                char *err, size_t errlen);

/* ---- p11_key.c ---------------------------------------------------------- */

/* r||s of an ECDSA signature as an ECDSA_SIG, or NULL. */
ECDSA_SIG *p11_ecdsa_from_raw(const unsigned char *raw, size_t len);

/* What an operation of p11_key_op works on: the mechanism, the input, and
 * the output (*outlen: room in, length out). */
struct p11_io {
	CK_MECHANISM *m;
	const unsigned char *in;
	size_t inlen;
	unsigned char *out;
	size_t *outlen;
};

/* One operation with k's object on session s (from p11_key_op); returns
 * the CKR_ code of the call that failed, or CKR_OK. */
typedef CK_RV (*p11_op_fn)(struct p11_key *k, CK_SESSION_HANDLE s,
                           struct p11_io *io);

/* Run fn with k's object on a pooled session, with one retry after a stale
 * handle (a reconnect by another context); a device error marks the token
 * down.  what ("signature", "decryption") and call ("C_Sign") name it in
 * messages.  Returns 0, or -1 with p11_last_err filled. */
int p11_key_op(struct p11_key *k, const char *what, const char *call,
               p11_op_fn fn, struct p11_io *io);

/* Sign in with k's object (mechanism mech), with one retry after a stale
 * handle.  Returns 0 with *outlen set, or -1 with p11_last_err filled. */
int p11_key_sign(struct p11_key *k, CK_MECHANISM_TYPE mech,
                 const unsigned char *in, size_t inlen, unsigned char *out,
                 size_t *outlen);

/* ---- p11_dec.c ---------------------------------------------------------- */

/* 1 when k's object may decrypt (RSA: CKA_DECRYPT) or derive (EC:
 * CKA_DERIVE); 0 with p11_last_err saying so.  Caller need hold no lock;
 * the object must have been found (p11_key_ready). */
int p11_key_may_decrypt(struct p11_key *k);

/* C_Decrypt of in with k's RSA object under mechanism m (CKM_RSA_PKCS or
 * CKM_RSA_PKCS_OAEP with its parameters).  *outlen: room in, length out.
 * Returns 0, or -1 with p11_last_err filled. */
int p11_key_decrypt(struct p11_key *k, CK_MECHANISM *m, const unsigned char *in,
                    size_t inlen, unsigned char *out, size_t *outlen);

/* ECDH with k's EC object and the peer's uncompressed point (C_DeriveKey,
 * CKM_ECDH1_DERIVE, no KDF): the shared x coordinate into out, whose
 * length *outlen (the field size) is asked of the token as CKA_VALUE_LEN.
 * The derived object is a session object, destroyed at once.  Returns 0,
 * or -1 with p11_last_err filled. */
int p11_key_derive(struct p11_key *k, const unsigned char *point, size_t plen,
                   unsigned char *out, size_t *outlen);

/* ---- p11_evp.c ---------------------------------------------------------- */

/* An EVP_PKEY with pub's public part whose private operations go to k, or
 * NULL (neither RSA nor EC, out of memory). */
EVP_PKEY *p11_evp_wrap(struct p11_key *k, EVP_PKEY *pub);

#endif
