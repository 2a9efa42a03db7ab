/*
 * message_eom -- end of an outbound message (see msg_eom in message.h):
 * the 7-bit rewrite streamed through the digest, the CMS signature, the
 * multipart/signed body (or the enveloped one), in 64 KiB chunks to the
 * MTA, and the header edits.
 */
#include "message.h"
#include "cms.h"
#include "hdrprot.h"
#include "message_int.h"
#include "p11.h"
#include "spool.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define OUT_CHUNK 65536

static ssize_t spool_reader(void *arg, unsigned char *buf, size_t len)
{
	return spool_read(arg, buf, len);
}

static int digest_sink(void *arg, const unsigned char *buf, size_t len)
{
	return EVP_DigestUpdate(arg, buf, len) ? 0 : -1;
}

/* Output buffer so that small writes go out as <= 64 KiB chunks. */
struct outbuf {
	mime_write_fn out;
	void *arg;
	size_t len;
	unsigned char buf[OUT_CHUNK];
};

static int ob_flush(struct outbuf *o)
{
	int rc = 0;

	if (o->len > 0)
		rc = o->out(o->arg, o->buf, o->len);
	o->len = 0;
	return rc;
}

static int ob_write(void *arg, const unsigned char *p, size_t n)
{
	struct outbuf *o = arg;

	while (n > 0) {
		buf_fill(o->buf, &o->len, OUT_CHUNK, &p, &n);
		if (o->len == OUT_CHUNK && ob_flush(o) != 0)
			return -1;
	}
	return 0;
}

static int add_edit(struct msg *m, enum msg_edit_op op, const char *name,
                    int index, const char *value)
{
	struct msg_edit *n = realloc(m->edits, (m->nedits + 1) * sizeof(*n));

	if (n == NULL)
		return -1;
	m->edits = n;
	n = &m->edits[m->nedits];
	n->op = op;
	n->index = index;
	n->name = strdup(name);
	n->value = value ? strdup(value) : NULL;
	if (n->name == NULL || (value && n->value == NULL)) {
		free(n->name);
		free(n->value);
		return -1;
	}
	m->nedits++;
	return 0;
}

/* The header fields of the signed entity: the top-level Content-* ones,
 * with header protection the protected copies and hp= too (hdrprot.h). */
struct ehdrs {
	const struct mime_header *h;
	size_t n;
};

/* Run pass 2 of the MIME rewrite from the first body byte into wr. */
static int write_entity(struct msg *m, const struct ehdrs *hdrs,
                        mime_write_fn wr, void *arg, char *err, size_t errlen)
{
	if (spool_rewind(m->body, err, errlen) != 0)
		return -1;
	return mime_rewrite(m->scan, hdrs->h, hdrs->n, spool_reader, m->body,
	                    wr, arg, err, errlen);
}

/* Finish the digest in md and sign it with the message's signer. */
static int sign_digest(struct msg *m, EVP_MD_CTX *md, unsigned char **der,
                       size_t *derlen, char *err, size_t errlen)
{
	const struct signer_entry *e = m->signer;
	unsigned char dgst[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;

	if (!EVP_DigestFinal_ex(md, dgst, &dlen)) {
		seterr_ssl(err, errlen, "digest final");
		return -1;
	}
	const struct config *cfg = m->snap->cfg;
	struct cms_timestamp ts = {
		.url = cfg->timestamp_url,
		.ca_file = cfg->timestamp_ca_file,
		.timeout_ms = (long)cfg->timestamp_timeout * 1000,
		.required =
		        cfg->on_timestamp_failure &&
		        strcasecmp(cfg->on_timestamp_failure, "tempfail") == 0,
	};

	if (cms_sign_digest_ts(e->cert, e->chain, e->key, m->snap->md, dgst,
	                       dlen, m->signing_time,
	                       cfg->timestamp_url ? &ts : NULL, der, derlen,
	                       err, errlen) != 0) {
		if (cfg->timestamp_url && ts.required &&
		    strncmp(err, "time-stamp: ", 12) == 0)
			m->ts_failed = 1;
		else if (e->hsm && *p11_last_error())
			seterr(err, errlen, "%s", p11_last_error());
		return -1;
	}
	m->ts_time = ts.gen_time;
	snprintf(m->ts_note, sizeof(m->ts_note), "%s", ts.note);
	return 0;
}

/* The entity on its way out also goes into the digest. */
struct tee {
	EVP_MD_CTX *md;
	mime_write_fn wr;
	void *arg;
};

static int tee_sink(void *arg, const unsigned char *p, size_t n)
{
	struct tee *t = arg;

	if (!EVP_DigestUpdate(t->md, p, n))
		return -1;
	return t->wr(t->arg, p, n);
}

/* The multipart/signed body: entity, then the signature part.  With md
 * (initialized, nothing fed yet) the entity is hashed as it is written and
 * signed before the signature part: one run over the body, and the octets
 * signed are the octets sent.  Without md, *der holds the signature. */
static int write_signed_body(struct msg *m, const struct ehdrs *hdrs,
                             const char *boundary, EVP_MD_CTX *md,
                             unsigned char **der, size_t *derlen,
                             mime_write_fn wr, void *arg, char *err,
                             size_t errlen)
{
	struct tee t = { md, wr, arg };

	static const char sigpart[] =
	        "\r\nContent-Type: application/pkcs7-signature;"
	        " name=\"smime.p7s\"\r\n"
	        "Content-Transfer-Encoding: base64\r\n"
	        "Content-Disposition: attachment; filename=\"smime.p7s\"\r\n"
	        "Content-Description: S/MIME Cryptographic Signature\r\n\r\n";

#define PUT(str) wr(arg, (const unsigned char *)(str), strlen(str))
	if (PUT("This is an S/MIME signed message.\r\n\r\n--") ||
	    PUT(boundary) || PUT("\r\n"))
		goto outfail;
	if (md != NULL) {
		if (write_entity(m, hdrs, tee_sink, &t, err, errlen) != 0 ||
		    sign_digest(m, md, der, derlen, err, errlen) != 0)
			return -1;
	} else if (write_entity(m, hdrs, wr, arg, err, errlen) != 0) {
		return -1;
	}
	if (PUT("\r\n--") || PUT(boundary) || PUT(sigpart) ||
	    mime_base64_write(*der, *derlen, wr, arg) != 0 || PUT("\r\n--") ||
	    PUT(boundary) || PUT("--\r\n"))
		goto outfail;
	return 0;
#undef PUT
outfail:
	return seterr(err, errlen, "cannot write the new body");
}

/* Replace the top-level Content-* headers by name: value pairs. */
static int set_content_headers(struct msg *m, const char *const *nv)
{
	for (size_t i = m->nch; i-- > 0;)
		if (add_edit(m, EDIT_DELETE, m->ch[i].name, m->ch[i].index,
		             NULL) != 0)
			return -1;
	if (!m->have_mime_version &&
	    add_edit(m, EDIT_ADD, "MIME-Version", 0, "1.0") != 0)
		return -1;
	for (; nv[0]; nv += 2)
		if (add_edit(m, EDIT_ADD, nv[0], 0, nv[1]) != 0)
			return -1;
	return 0;
}

/* Encrypt the signed entity (its Content-Type, then the body) to m->enc,
 * base64 into ob. */
static int write_encrypted(struct msg *m, const struct ehdrs *hdrs,
                           const char *ctype, const char *boundary,
                           EVP_MD_CTX *md, unsigned char **der, size_t *derlen,
                           struct outbuf *ob, char *err, size_t errlen)
{
	const struct config *cfg = m->snap->cfg;
	struct mime_b64 *b64 = mime_b64_new(ob_write, ob);
	struct cms_enc *enc = NULL;
	int rc = -1;

	if (b64 == NULL)
		return seterr(err, errlen, "out of memory");
	enc = cms_encrypt_new(m->enc, cfg->encrypt_cipher,
	                      str_ieq(cfg->encrypt_rsa_padding, "oaep"),
	                      mime_b64_feed, b64, err, errlen);
	if (enc == NULL)
		goto out;
	if (cms_encrypt_write(enc,
	                      (const unsigned char *)"Content-Type: ", 14) ||
	    cms_encrypt_write(enc, (const unsigned char *)ctype,
	                      strlen(ctype)) ||
	    cms_encrypt_write(enc, (const unsigned char *)"\r\n\r\n", 4)) {
		seterr(err, errlen, "cannot write the new body");
		goto out;
	}
	if (write_signed_body(m, hdrs, boundary, md, der, derlen,
	                      cms_encrypt_write, enc, err, errlen) != 0 ||
	    cms_encrypt_finish(enc, err, errlen) != 0)
		goto out;
	if (mime_b64_end(b64) != 0) {
		seterr(err, errlen, "cannot write the new body to the MTA");
		goto out;
	}
	rc = 0;
out:
	cms_encrypt_free(enc);
	mime_b64_free(b64);
	return rc;
}

/* The first top-level Content-Type value, or NULL. */
static const char *top_content_type(const struct msg *m)
{
	for (size_t i = 0; i < m->nch; i++)
		if (str_ieq(m->ch[i].name, "Content-Type"))
			return m->ch[i].value;
	return NULL;
}

int msg_eom(struct msg *m, mime_write_fn out, void *outarg,
            const struct msg_edit **edits, size_t *nedits, char *err,
            size_t errlen)
{
	const struct signer_entry *e = m->signer;
	struct mime_header *ch = NULL, *prot = NULL;
	struct hdrprot hp = { 0 };
	struct ehdrs eh = { NULL, 0 }, *hdrs = &eh;
	unsigned char rnd[16];
	unsigned char *der = NULL;
	size_t derlen = 0;
	EVP_MD_CTX *md = NULL;
	struct outbuf *ob = NULL;
	char boundary[64], ctype[256];
	int rc = -1, one_pass;

	*edits = NULL;
	*nedits = 0;
	if (errlen)
		err[0] = '\0';
	/* One run over the body, hashing what is sent and signing before the
	 * signature part -- unless a failure must leave the message as it
	 * came (on_error = accept): then digest and sign first, and only
	 * then start the new body. */
	one_pass = m->snap != NULL &&
	           msg_error_action(m, m->snap->cfg->on_error, NULL) !=
	                   ACTION_ACCEPT;
	if (e == NULL || m->body == NULL)
		return seterr(err, errlen, "end of message without a signer");
	if (mime_scan_finish(m->scan, err, errlen) != 0)
		return -1;
	ch = calloc(m->nch + 1, sizeof(*ch));
	prot = calloc(m->nhp + 1, sizeof(*prot));
	md = EVP_MD_CTX_new();
	ob = malloc(sizeof(*ob));
	if (ch == NULL || prot == NULL || md == NULL || ob == NULL) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < m->nch; i++) {
		ch[i].name = m->ch[i].name;
		ch[i].value = m->ch[i].value;
	}
	for (size_t i = 0; i < m->nhp; i++) {
		prot[i].name = m->hp[i].name;
		prot[i].value = m->hp[i].value;
	}
	eh.h = ch;
	eh.n = m->nch;
	/* RFC 9788: the root part carries the protected fields and hp= --
	 * unless its Content-Type has an hp parameter already */
	if (m->snap->cfg->header_protection &&
	    !hdrprot_ct_has_hp(top_content_type(m))) {
		if (hdrprot_build(ch, m->nch, mime_scan_default_ct(m->scan),
		                  prot, m->nhp, m->enc != NULL, &hp) != 0) {
			seterr(err, errlen, "out of memory");
			goto out;
		}
		eh.h = hp.h;
		eh.n = hp.n;
	}
	if (!EVP_DigestInit_ex(md, m->snap->md, NULL)) {
		seterr_ssl(err, errlen, "digest init");
		goto out;
	}
	/* two runs: the digest of the signed entity first */
	if (!one_pass &&
	    (write_entity(m, hdrs, digest_sink, md, err, errlen) != 0 ||
	     sign_digest(m, md, &der, &derlen, err, errlen) != 0))
		goto out;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		seterr(err, errlen, "no randomness for the boundary");
		goto out;
	}
	strcpy(boundary, "=_smime_");
	for (size_t i = 0; i < sizeof(rnd); i++)
		sprintf(boundary + strlen(boundary), "%02x", rnd[i]);
	snprintf(ctype, sizeof(ctype),
	         "multipart/signed; protocol=\"application/pkcs7-signature\";"
	         " micalg=%s;\r\n\tboundary=\"%s\"",
	         cms_micalg(m->snap->md), boundary);
	ob->out = out;
	ob->arg = outarg;
	ob->len = 0;

	if (m->enc) {
		/* header edits: Content-* move inside; outside only the
		 * enveloped (or authEnveloped) entity */
		const char *const nv[] = {
			"Content-Type",
			cms_cipher_is_aead(m->snap->cfg->encrypt_cipher)
			        ? "application/pkcs7-mime;"
			          " smime-type=authEnveloped-data;"
			          " name=\"smime.p7m\""
			        : "application/pkcs7-mime;"
			          " smime-type=enveloped-data; "
			          "name=\"smime.p7m\"",
			"Content-Transfer-Encoding",
			"base64",
			"Content-Disposition",
			"attachment; filename=\"smime.p7m\"",
			"Content-Description",
			"S/MIME Encrypted Message",
			NULL
		};
		if (set_content_headers(m, nv) != 0)
			goto oom;
		m->body_sent = 1;
		if (write_encrypted(m, hdrs, ctype, boundary,
		                    one_pass ? md : NULL, &der, &derlen, ob,
		                    err, errlen) != 0 ||
		    ob_flush(ob) != 0)
			goto fail;
	} else {
		/* header edits: Content-* move inside, multipart/signed
		 * outside */
		const char *const nv[] = { "Content-Type", ctype, NULL };
		if (set_content_headers(m, nv) != 0)
			goto oom;
		m->body_sent = 1;
		if (write_signed_body(m, hdrs, boundary, one_pass ? md : NULL,
		                      &der, &derlen, ob_write, ob, err,
		                      errlen) != 0 ||
		    ob_flush(ob) != 0)
			goto fail;
	}
	*edits = m->edits;
	*nedits = m->nedits;
	rc = 0;
	goto out;
oom:
	seterr(err, errlen, "out of memory");
	goto out;
fail:
	if (err[0] == '\0')
		seterr(err, errlen, "cannot write the new body to the MTA");
out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	free(ob);
	hdrprot_free(&hp);
	free(prot);
	free(ch);
	return rc;
}

/* The whole top-level entity (Content-* headers, blank line, body) in
 * memory, for OpenSSL's S/MIME parser. */
