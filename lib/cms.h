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
                    const EVP_MD *md, const unsigned char *dgst,
                    size_t dgstlen, time_t signing_time, unsigned char **der,
                    size_t *derlen, char *err, size_t errlen);

#endif
