/*
 * cms -- detached CMS SignedData over a digest computed as the content
 * streamed past (so the content never has to be held whole).
 */
#ifndef SMIME_CMS_H
#define SMIME_CMS_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "mime.h"

/* The digest named in the configuration ("sha256"...), fetched once so
 * that messages do not look it up again; EVP_MD_free() it.  NULL when the
 * name is not one we sign with. */
EVP_MD *cms_digest_fetch(const char *name);

/* RFC 8551 micalg value for md ("sha-256"...). */
const char *cms_micalg(const EVP_MD *md);

/*
 * Build a DER-encoded detached SignedData for content whose digest (with md)
 * is dgst.  The SignerInfo carries contentType, signingTime (signing_time, or
 * now when 0), messageDigest and SMIMECapabilities (AES-256-GCM, AES-256-CBC,
 * AES-128-CBC); the certificate set holds cert and chain.  *der is
 * OPENSSL_malloc'd.  Returns 0 or -1 with err filled.
 */
int cms_sign_digest(X509 *cert, STACK_OF(X509) *chain, EVP_PKEY *key,
                    const EVP_MD *md, const unsigned char *dgst, size_t dgstlen,
                    time_t signing_time, unsigned char **der, size_t *derlen,
                    char *err, size_t errlen);

/* A signature time-stamp (RFC 3161 Appendix A) for cms_sign_digest_ts. */
struct cms_timestamp {
	const char *url;     /* the TSA (http or https) */
	const char *ca_file; /* the TSA's trust bundle */
	long timeout_ms;
	int required;    /* 1: no token fails the signing; 0: sign without */
	char note[400];  /* out: why there is no token (required 0), or "" */
	time_t gen_time; /* out: the token's genTime (0: no token) */
};

/*
 * cms_sign_digest, and then, with ts (may be NULL), the SHA-256 of the
 * signature value time-stamped by ts->url and the checked token added as
 * the unsigned attribute id-aa-signatureTimeStampToken (lib/tsa.c).  A TSA
 * that fails (timeout, refusal, a token that does not verify) fails the
 * signing when ts->required, else leaves the signature without a token and
 * says why in ts->note.
 */
int cms_sign_digest_ts(X509 *cert, STACK_OF(X509) *chain, EVP_PKEY *key,
                       const EVP_MD *md, const unsigned char *dgst,
                       size_t dgstlen, time_t signing_time,
                       struct cms_timestamp *ts, unsigned char **der,
                       size_t *derlen, char *err, size_t errlen);

/*
 * Streaming encryption of a MIME entity (issue 5).
 *
 * cms_encrypt_new starts an EnvelopedData (cipher "aes-256-cbc" or
 * "aes-128-cbc") or AuthEnvelopedData (RFC 5083/5084: "aes-256-gcm",
 * "aes-128-gcm") to every certificate of recips.  RSA recipients get key
 * transport with PKCS#1 v1.5, or RSAES-OAEP (SHA-256, MGF1-SHA-256) when
 * oaep is set; EC recipients get ECDH key agreement
 * (dhSinglePass-stdDH-sha256kdf-scheme with AES key wrap).  The caller has
 * checked the certificates (usage, validity).  The BER encoding goes to out
 * while the content is written, so nothing is held whole.  Returns NULL with
 * err filled.
 *
 * cms_encrypt_write has the mime_write_fn shape (arg: the struct cms_enc).
 * cms_encrypt_finish writes the end of the structure (the GCM tag too);
 * returns 0 or -1 with err.  cms_encrypt_free accepts NULL.
 */
struct cms_enc;
struct cms_enc *cms_encrypt_new(STACK_OF(X509) *recips, const char *cipher,
                                int oaep, mime_write_fn out, void *outarg,
                                char *err, size_t errlen);
int cms_encrypt_write(void *enc, const unsigned char *buf, size_t len);
int cms_encrypt_finish(struct cms_enc *e, char *err, size_t errlen);
void cms_encrypt_free(struct cms_enc *e);

/* 1 when cipher (a configuration name) makes AuthEnvelopedData. */
int cms_cipher_is_aead(const char *cipher);

#endif
