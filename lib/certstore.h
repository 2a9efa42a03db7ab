/*
 * certstore -- certificate checks and conversions: reading certificate
 * files, PEM text, e-mail addresses, signing and encryption rules, chains.
 *
 * The certificate and its chain are kept in the database (PEM); the private
 * key lives in a key store backend named by a key reference (keystore.h,
 * included here for the callers that use both).  Keys are loaded once per
 * configuration snapshot, never per message.
 */
#ifndef SMIME_CERTSTORE_H
#define SMIME_CERTSTORE_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "keystore.h"

/*
 * Read every certificate of a file, in file order (first = leaf when the
 * file is a leaf and its chain): PEM with any number of CERTIFICATE (also
 * TRUSTED CERTIFICATE) and PKCS7 blocks (other blocks are skipped), a DER
 * certificate, or a DER/BER PKCS#7 bundle (certs-only .p7b/.p7c, or the
 * certificates of a signature).  Returns 0 and *out (free with
 * sk_X509_pop_free), or -1 with err naming the file.
 */
int cert_read_file(const char *path, STACK_OF(X509) **out, char *err,
                   size_t errlen);

/* Parse certificates from PEM text. */
STACK_OF(X509) *cert_stack_from_pem(const char *pem);

/* PEM text of one certificate / of a stack (malloc'd; NULL on error). */
char *cert_to_pem(X509 *x);
char *cert_stack_to_pem(STACK_OF(X509) *sk);

/*
 * Every e-mail address of x (subjectAltName rfc822Name, then subject
 * emailAddress), lower-case, without duplicates, as a NULL-terminated
 * malloc'd array (free with cert_emails_free); NULL on out of memory; an
 * empty array when there is none.
 */
char **cert_emails(X509 *x);
/* Free what cert_emails returned; NULL is fine. */
void cert_emails_free(char **v);

/*
 * May mail be encrypted to x?  The key is RSA or EC; keyUsage (when
 * present) allows key transport (RSA: keyEncipherment) or key agreement
 * (EC: keyAgreement); extendedKeyUsage (when present) includes
 * emailProtection or anyExtendedKeyUsage; and
 * X509_check_purpose(X509_PURPOSE_SMIME_ENCRYPT) agrees.  That purpose
 * demands keyEncipherment and the emailProtection bit itself, so for an
 * EC key (keyAgreement) and for an anyExtendedKeyUsage-only certificate
 * only its remaining part, the Netscape certificate type, is applied.
 * Time is not looked at.  Returns 0, or -1 with err saying which rule
 * failed in plain words.
 */
int cert_check_encryption(X509 *x, char *err, size_t errlen);

/*
 * Verify that x chains to a trust anchor in ca_file (PEM, DER or PKCS#7,
 * read on every call), with untrusted (may be NULL) as candidate
 * intermediates, at time now: signatures, validity of every certificate
 * of the chain, CA constraints.  No purpose and no CRL is checked here.
 * Returns 0, or -1 with err holding X509_verify_cert_error_string and the
 * depth and subject of the certificate it failed at.
 */
int cert_verify_chain(X509 *x, STACK_OF(X509) *untrusted, const char *ca_file,
                      time_t now, char *err, size_t errlen);

/* 1 when the certificate carries addr (rfc822Name in subjectAltName or
 * emailAddress in the subject), compared case-insensitively. */
int cert_has_email(X509 *x, const char *addr);

/* First e-mail address of the certificate (malloc'd, lower-case) or NULL. */
char *cert_first_email(X509 *x);

/*
 * Everything that must hold before x may sign mail from mailbox at time now:
 * inside its validity period, keyUsage/extendedKeyUsage allow S/MIME
 * signing, and it carries the mailbox.  Returns 0 or -1 with err saying why.
 */
int cert_check_signing(X509 *x, const char *mailbox, time_t now, char *err,
                       size_t errlen);

/* The parts of cert_check_signing: the validity period at time now (from
 * times already extracted), and what does not change with time (key
 * usage, extended key usage, the mailbox).  Snapshots check usage once at
 * load; messages only compare times.  Return 0 or -1 with err filled. */
int validity_check(time_t not_before, time_t not_after, time_t now, char *err,
                   size_t errlen);
int cert_check_usage(X509 *x, const char *mailbox, char *err, size_t errlen);

/* 1 when key is the private half of x's public key. */
int cert_matches_key(X509 *x, EVP_PKEY *key);

/* Metadata as text: serial (hex, upper-case), SHA-256 fingerprint (hex),
 * subject and issuer (RFC 2253), validity.  Strings are malloc'd. */
struct cert_info {
	char *serial;
	char *fingerprint;
	char *subject;
	char *issuer;
	time_t not_before;
	time_t not_after;
};
int cert_info_get(X509 *x, struct cert_info *ci);
void cert_info_clear(struct cert_info *ci);

/* SHA-256 (hex) of the DER SubjectPublicKeyInfo of key; malloc'd. */
char *pubkey_sha256_hex(EVP_PKEY *key);

/* RFC 2253 text of a name, as stored in the database (malloc'd). */
char *cert_name_text(X509_NAME *n);

/* time_t of an ASN1_TIME (UTC). */
time_t asn1_time_to_time(const ASN1_TIME *t);

/*
 * Build the chain for leaf from the candidates in extra and in ca_file (may
 * be NULL): issuers up to, not including, a self-signed root.  Returns a new
 * stack (possibly empty).
 */
STACK_OF(X509) *cert_build_chain(X509 *leaf, STACK_OF(X509) *extra,
                                 const char *ca_file);

#endif
