/*
 * cms_dec_int -- what lib/cms_dec.c (the OpenSSL CMS side: RecipientInfos,
 * keys, cipher, plaintext) and lib/cms_dec_der.c (the walk over the outer
 * DER) share.  Private to those files.
 */
#ifndef SMIME_CMS_DEC_INT_H
#define SMIME_CMS_DEC_INT_H

#include <stdint.h>

#include <openssl/bio.h>
#include <openssl/cms.h>

#include "cms_dec.h"
#include "der.h"
#include "spool.h"

/* Input is taken in slices of this size. */
#define CMS_DEC_IN_CHUNK 65536

/* Decoder states. */
enum {
	CD_WALK,     /* reading the structure up to the RecipientInfos */
	CD_NEED_KEY, /* RecipientInfos read; waiting for cms_dec_try_key */
	CD_CONTENT,  /* key chosen: the encrypted content streams through */
	CD_ENDED,    /* the ContentInfo ended; waiting for cms_dec_finish */
	CD_FINISHED, /* plaintext ready */
	CD_OTHER,    /* not (Auth)EnvelopedData */
	CD_FAILED
};

struct cd_recip {
	struct cms_dec_recip pub;
	CMS_RecipientInfo *ri;
	CMS_RecipientEncryptedKey *rek; /* kari only */
};

struct cms_dec {
	int state;
	enum cms_dec_type type;
	char emsg[256]; /* the error that made the state CD_FAILED */

	/* input not yet consumed: in[inoff..inlen) */
	unsigned char *in;
	size_t inlen, inoff, incap;

	struct der_walk w; /* the outer DER; w.pos is the offset of in[inoff] */

	unsigned char oid[64]; /* the ContentInfo's contentType */
	size_t oidlen;
	unsigned char mac[16]; /* AuthEnvelopedData's tag */
	size_t maclen;
	/* [1]: EnvelopedData elements before the EncryptedContentInfo;
	 * [2]: the EncryptedContentInfo's type and algorithm */
	unsigned char *cap[3];
	size_t caplen[3], capsize[3];

	CMS_ContentInfo *cms;
	struct cd_recip *recips;
	int nrecips;
	char cipher[64];
	int matched;
	X509 *mcert;
	BIO *chain, *mem; /* cipher BIO over a memory BIO of plaintext */
	struct spool *spool;
	size_t spool_mem;
	char *spool_dir;
};

/* Make the decoder fail for good: err and d->emsg get the message. */
int cd_fail(struct cms_dec *d, char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Walk what is buffered.  eof: no more input will come.  Returns
 * CMS_DEC_MORE, CMS_DEC_RECIPIENTS, CMS_DEC_NOT_ENCRYPTED or -1. */
int cd_walk(struct cms_dec *d, int eof, char *err, size_t errlen);

/* The walk has the ContentInfo's contentType (d->oid): set d->type. */
void cd_set_type(struct cms_dec *d);

/* The RecipientInfos and algorithm are in d->cap: parse them with
 * OpenSSL.  Returns 0 or -1 (cd_fail). */
int cd_header_done(struct cms_dec *d, char *err, size_t errlen);

/* Encrypted content octets: through the cipher into the spool.  Returns 0
 * or -1 (cd_fail). */
int cd_cipher_write(struct cms_dec *d, const unsigned char *p, size_t n,
                    char *err, size_t errlen);

#endif
