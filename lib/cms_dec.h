/*
 * cms_dec -- streaming decryption of a CMS EnvelopedData or
 * AuthEnvelopedData (RFC 5652, RFC 5083/5084) fed in pieces of DER, with
 * bounded memory whatever the size of the message.
 *
 * Input: the DER (or BER: indefinite lengths and constructed OCTET STRINGs
 * as streaming encoders write them) of a ContentInfo, i.e. the base64-
 * decoded body of an application/pkcs7-mime part, in pieces of any size.
 *
 * How: the outer structure is walked with ASN1_get_object.  Everything of
 * the EnvelopedData before the encrypted content (version, originatorInfo,
 * recipientInfos, content type and algorithm; at most CMS_DEC_HEADER_MAX
 * octets) is kept and handed to OpenSSL as a ContentInfo whose content is
 * detached, so OpenSSL's CMS code reads the RecipientInfos, unwraps the
 * content-encryption key (CMS_decrypt_set1_pkey_and_peer) and sets up the
 * cipher from the algorithm parameters (CMS_dataInit with the detached
 * content).  The encrypted content then streams through that cipher as it
 * arrives, and the plaintext goes to a spool (memory, then a 0600 temp
 * file).  For AuthEnvelopedData the tag, which follows the content, is set
 * at the end, and no plaintext is handed out before it verifies.
 *
 * Use (wave 2: lib/inbound.c at end of message):
 *
 *   d = cms_dec_new(spool_mem, spool_dir, err, errlen);
 *   for each piece:  rc = cms_dec_feed(d, piece, n, err, errlen);
 *       rc == CMS_DEC_MORE:        go on
 *       rc == CMS_DEC_RECIPIENTS:  the RecipientInfos are read: look at
 *           cms_dec_recipient_count/get, cms_dec_names(d, cert) for each
 *           envelope recipient's certificates; give up (cms_dec_free) or
 *           cms_dec_try_key(d, cert, key) until one returns 1; go on
 *           feeding (the rest of this piece was kept)
 *       rc == CMS_DEC_NOT_ENCRYPTED: another CMS content type
 *           (cms_dec_type: signed-data, compressed-data...); stop
 *       rc < 0: bad input or error (err says which); stop
 *   cms_dec_finish(d, err, errlen) == 0, then cms_dec_read() the plaintext.
 *   cms_dec_free(d).
 *
 * Memory: at most CMS_DEC_HEADER_MAX for the header, 64 KiB of input, the
 * spool's spool_mem, and the rest of the one piece that holds the end of
 * the RecipientInfos (until it is walked); nothing grows with the content.
 * Time is linear in the input.  Nesting is limited to CMS_DEC_DEPTH_MAX.
 *
 * Against Bleichenbacher-style oracles, a wrong RSA key for a certificate
 * that IS named is not told apart at cms_dec_try_key (OpenSSL then decrypts
 * with a random key, as CMS_decrypt does): cms_dec_finish fails instead
 * (bad padding, or the GCM tag).  A key that does not belong to cert is
 * refused at once (a configuration error, not a property of the message).
 */
#ifndef SMIME_CMS_DEC_H
#define SMIME_CMS_DEC_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/* The most octets of EnvelopedData before the encrypted content
 * (recipientInfos, originatorInfo...) that are kept; more is an error. */
#define CMS_DEC_HEADER_MAX (1024 * 1024)

/* Nesting deeper than this (constructed strings in strings...) is an
 * error. */
#define CMS_DEC_DEPTH_MAX 32

/* cms_dec_feed's results besides -1 (error). */
#define CMS_DEC_MORE          0
#define CMS_DEC_RECIPIENTS    1
#define CMS_DEC_NOT_ENCRYPTED 2

/* What the ContentInfo holds (cms_dec_type). */
enum cms_dec_type {
	CMS_DEC_TYPE_UNKNOWN = 0, /* not read far enough yet */
	CMS_DEC_TYPE_NOT_CMS,     /* the input is not a ContentInfo */
	CMS_DEC_TYPE_ENVELOPED,
	CMS_DEC_TYPE_AUTH_ENVELOPED,
	CMS_DEC_TYPE_SIGNED,
	CMS_DEC_TYPE_COMPRESSED,
	CMS_DEC_TYPE_DATA,
	CMS_DEC_TYPE_OTHER /* another CMS content type */
};

/* The kind of a RecipientInfo. */
enum cms_dec_ri {
	CMS_DEC_RI_KTRI, /* key transport (RSA PKCS#1 v1.5, RSA-OAEP) */
	CMS_DEC_RI_KARI, /* key agreement (ECDH) */
	CMS_DEC_RI_OTHER /* KEK, password or other: never matches a key */
};

/* One recipient named in the message.  A kari RecipientInfo gives one
 * entry per RecipientEncryptedKey.  Pointers are borrowed from the
 * decoder and live until cms_dec_free. */
struct cms_dec_recip {
	enum cms_dec_ri kind;
	int ri_index;                 /* which RecipientInfo (0-based) */
	const X509_NAME *issuer;      /* issuer+serial form, else NULL */
	const ASN1_INTEGER *serial;   /* with issuer */
	const ASN1_OCTET_STRING *ski; /* subjectKeyIdentifier form, else NULL */
	const char *keyalg; /* key transport/agreement algorithm, short name
	                       ("rsaEncryption", "rsaesOaep",
	                       "dhSinglePass-stdDH-sha256kdf-scheme"...) */
};

struct cms_dec;

/*
 * A new decoder.  The plaintext goes to a spool that keeps spool_mem octets
 * in memory and then spills to a 0600 temp file in spool_dir (spool.h).
 * Returns NULL with err filled on out of memory.
 */
struct cms_dec *cms_dec_new(size_t spool_mem, const char *spool_dir, char *err,
                            size_t errlen);

/*
 * Feed the next len octets of DER.  Returns CMS_DEC_MORE, CMS_DEC_RECIPIENTS
 * once when the RecipientInfos have been read (the rest of buf is kept;
 * choose a key before feeding again), CMS_DEC_NOT_ENCRYPTED when the content
 * type is not (Auth)EnvelopedData (then and later), or -1 with err filled
 * (malformed, truncated where it cannot be, unsupported, no key chosen,
 * write error).  After -1 every call fails.
 */
int cms_dec_feed(struct cms_dec *d, const void *buf, size_t len, char *err,
                 size_t errlen);

/* The content type seen so far (CMS_DEC_TYPE_UNKNOWN before it is read). */
enum cms_dec_type cms_dec_type(const struct cms_dec *d);

/* The smime-type word of a content type ("enveloped-data",
 * "authEnveloped-data", "signed-data", "compressed-data", "data", "other",
 * "not-cms", "unknown"). */
const char *cms_dec_type_name(enum cms_dec_type t);

/* The content-encryption algorithm's short name ("AES-256-CBC",
 * "id-aes256-GCM", "DES-EDE3-CBC"...) once CMS_DEC_RECIPIENTS was
 * returned, else NULL. */
const char *cms_dec_cipher(const struct cms_dec *d);

/* Number of recipient entries (0 before CMS_DEC_RECIPIENTS). */
int cms_dec_recipient_count(const struct cms_dec *d);

/* Entry i (0-based); NULL when out of range. */
const struct cms_dec_recip *cms_dec_recipient_get(const struct cms_dec *d,
                                                  int i);

/* The index of the first entry that names cert (by issuer+serial or by
 * its subjectKeyIdentifier), or -1 when none does. */
int cms_dec_names(const struct cms_dec *d, X509 *cert);

/*
 * Unwrap the content-encryption key with key (any EVP_PKEY that can
 * decrypt (RSA) or derive (EC), a PKCS#11 wrapper included), for the entry
 * that names cert, and set up the content cipher.  Returns 1 (key chosen:
 * cms_dec_matched() says which entry), 0 when no entry names cert (err
 * says so; try another), -1 with err filled (the key is not cert's, key
 * agreement failed, cipher unsupported, called at the wrong time; another
 * key may still be tried unless cms_dec_feed fails too: out of memory).
 * The key is used once here; the decoder keeps no reference to it.
 */
int cms_dec_try_key(struct cms_dec *d, X509 *cert, EVP_PKEY *key, char *err,
                    size_t errlen);

/* The entry index whose key was chosen, -1 before; cms_dec_matched_cert
 * gives that certificate (borrowed, up-referenced by the decoder). */
int cms_dec_matched(const struct cms_dec *d);
X509 *cms_dec_matched_cert(const struct cms_dec *d);

/*
 * The input is complete: check that the structure ended, finish the
 * cipher (padding; the GCM tag) and make the plaintext readable.  Returns 0
 * or -1 with err filled (truncated, wrong key or damaged content, tag
 * mismatch); after -1 no plaintext can be read.
 */
int cms_dec_finish(struct cms_dec *d, char *err, size_t errlen);

/* Read up to len octets of plaintext, only after cms_dec_finish returned
 * 0.  Returns the count, 0 at the end, -1 before finish or on error. */
ssize_t cms_dec_read(struct cms_dec *d, void *buf, size_t len);

/* Octets of plaintext (after a successful finish; else 0). */
size_t cms_dec_plain_size(const struct cms_dec *d);

/* Free everything (the spool with the plaintext too); NULL is fine. */
void cms_dec_free(struct cms_dec *d);

#endif
