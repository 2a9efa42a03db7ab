/* message -- one message through the signer (see message.h). */
#include "message.h"
#include "certstore.h"
#include "cms.h"
#include "p11.h"
#include "spool.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#define MAX_CONTENT_HEADERS 1000
#define OUT_CHUNK 65536

struct chdr {
	char *name;
	char *value;
	int index;
};

struct msg {
	const struct snapshot *snap;
	time_t signing_time;
	struct chdr *ch; /* top-level Content-* headers */
	size_t nch, capch;
	char *from_value;
	int from_count;
	int have_mime_version;
	char *message_id;
	char from[320];
	const struct signer_entry *signer;
	struct spool *body;
	struct mime_scan *scan;
	struct msg_edit *edits;
	size_t nedits;
	int overflow;
};

struct msg *msg_new(const struct snapshot *s)
{
	struct msg *m = calloc(1, sizeof(*m));

	if (m)
		m->snap = s;
	return m;
}

void msg_set_signing_time(struct msg *m, time_t t)
{
	m->signing_time = t;
}

int msg_header(struct msg *m, const char *name, const char *value, char *err,
               size_t errlen)
{
	if (str_iprefix(name, "Content-")) {
		struct chdr *h;
		int idx = 1;
		if (m->nch >= MAX_CONTENT_HEADERS) {
			m->overflow = 1;
			return 0;
		}
		if (m->nch == m->capch) {
			size_t ncap = m->capch ? m->capch * 2 : 8;
			struct chdr *n = realloc(m->ch, ncap * sizeof(*n));
			if (n == NULL)
				return seterr(err, errlen, "out of memory");
			m->ch = n;
			m->capch = ncap;
		}
		for (size_t i = 0; i < m->nch; i++)
			if (strcasecmp(m->ch[i].name, name) == 0)
				idx++;
		h = &m->ch[m->nch];
		h->name = strdup(name);
		h->value = strdup(value ? value : "");
		h->index = idx;
		if (h->name == NULL || h->value == NULL) {
			free(h->name);
			free(h->value);
			return seterr(err, errlen, "out of memory");
		}
		m->nch++;
	} else if (strcasecmp(name, "From") == 0) {
		if (m->from_count++ == 0 &&
		    (m->from_value = strdup(value ? value : "")) == NULL)
			return seterr(err, errlen, "out of memory");
	} else if (strcasecmp(name, "MIME-Version") == 0) {
		m->have_mime_version = 1;
	} else if (strcasecmp(name, "Message-ID") == 0 &&
	           m->message_id == NULL) {
		const char *v = value ? value : "";
		while (*v == ' ' || *v == '\t')
			v++;
		m->message_id = strndup(v, 512);
	}
	return 0;
}

static const char *top_header(const struct msg *m, const char *name)
{
	for (size_t i = 0; i < m->nch; i++)
		if (strcasecmp(m->ch[i].name, name) == 0)
			return m->ch[i].value;
	return NULL;
}

/* Reason to leave content alone: signed, encrypted or PGP/MIME. */
static const char *protected_content(const char *ctype)
{
	struct mime_ct ct;

	if (ctype == NULL)
		return NULL;
	mime_ct_parse(ctype, &ct);
	if (strcmp(ct.type, "multipart") == 0) {
		if (strcmp(ct.subtype, "signed") == 0)
			return strstr(ct.protocol, "pgp") ?
			           "PGP/MIME signed message" :
			           "already S/MIME signed";
		if (strcmp(ct.subtype, "encrypted") == 0)
			return "PGP/MIME encrypted message";
	}
	if (strcmp(ct.type, "application") == 0 &&
	    (strcmp(ct.subtype, "pkcs7-mime") == 0 ||
	     strcmp(ct.subtype, "x-pkcs7-mime") == 0 ||
	     strcmp(ct.subtype, "pkcs7-signature") == 0 ||
	     strcmp(ct.subtype, "x-pkcs7-signature") == 0))
		return "already S/MIME signed or encrypted";
	if (strcmp(ct.type, "application") == 0 &&
	    strncmp(ct.subtype, "pgp", 3) == 0)
		return "PGP message";
	return NULL;
}

enum msg_verdict msg_eoh(struct msg *m, int outbound, const char **reason)
{
	static __thread char why[512];
	const struct config *cfg = m->snap->cfg;
	const struct signer_entry *e;
	const char *r;
	char err[512];

#define VERDICT(v, text)                                                       \
	do {                                                                   \
		if (reason)                                                    \
			*reason = (text);                                      \
		return (v);                                                    \
	} while (0)

	if (reason)
		*reason = NULL;
	if (m->from_count == 0)
		VERDICT(MSG_PASS, "no From header");
	if (addr_from_header(m->from_value, m->from, sizeof(m->from), err,
	                     sizeof(err)) != 0) {
		m->from[0] = '\0';
		snprintf(why, sizeof(why), "unusable From: %s", err);
		VERDICT(MSG_PASS, why);
	}
	if (!config_signing_domain(cfg, addr_domain(m->from))) {
		snprintf(why, sizeof(why), "From domain %s is not a signing domain",
		         addr_domain(m->from));
		VERDICT(MSG_PASS, why);
	}
	if (!outbound)
		VERDICT(MSG_PASS, "not outbound (client neither internal nor "
		                  "authenticated)");
	if (m->from_count > 1)
		VERDICT(MSG_PASS, "more than one From header");
	if (m->overflow)
		VERDICT(MSG_ERROR, "too many Content-* headers");
	r = protected_content(top_header(m, "Content-Type"));
	if (r)
		VERDICT(MSG_PASS, r);
	e = snapshot_lookup(m->snap, m->from);
	if (e == NULL) {
		snprintf(why, sizeof(why), "no certificate mapped to %s",
		         m->from);
		VERDICT(MSG_NOCERT, why);
	}
	if (e->key == NULL) {
		snprintf(why, sizeof(why), "certificate of %s unusable: %s",
		         m->from, e->problem ? e->problem : "no key");
		VERDICT(e->key_fault ? MSG_ERROR : MSG_NOCERT, why);
	}
	if (e->hsm && !p11_key_ready(e->hsm, err, sizeof(err))) {
		snprintf(why, sizeof(why), "key of %s: %s", m->from, err);
		VERDICT(MSG_ERROR, why);
	}
	/* usage and address were checked when the snapshot was built */
	if (validity_check(e->not_before, e->not_after, time(NULL), err,
	                   sizeof(err)) != 0) {
		snprintf(why, sizeof(why), "certificate %s of %s: %s", e->serial,
		         m->from, err);
		VERDICT(MSG_NOCERT, why);
	}
	m->signer = e;
	m->body = spool_new((size_t)cfg->max_memory_body, cfg->temp_dir);
	m->scan = mime_scan_new(top_header(m, "Content-Type"),
	                        top_header(m, "Content-Transfer-Encoding"));
	if (m->body == NULL || m->scan == NULL)
		VERDICT(MSG_ERROR, "out of memory");
	VERDICT(MSG_SIGN, NULL);
#undef VERDICT
}

int msg_body(struct msg *m, const unsigned char *buf, size_t len, char *err,
             size_t errlen)
{
	if (m->body == NULL)
		return seterr(err, errlen, "body before a signing verdict");
	if (spool_write(m->body, buf, len, err, errlen) != 0)
		return -1;
	return mime_scan_feed(m->scan, buf, len, err, errlen);
}

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
		size_t take = OUT_CHUNK - o->len;
		if (take > n)
			take = n;
		memcpy(o->buf + o->len, p, take);
		o->len += take;
		p += take;
		n -= take;
		if (o->len == OUT_CHUNK && ob_flush(o) != 0)
			return -1;
	}
	return 0;
}

static int ob_puts(struct outbuf *o, const char *s)
{
	return ob_write(o, (const unsigned char *)s, strlen(s));
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

/* Run pass 2 of the MIME rewrite from the first body byte into wr. */
static int write_entity(struct msg *m, const struct mime_header *hdrs,
                        mime_write_fn wr, void *arg, char *err, size_t errlen)
{
	if (spool_rewind(m->body, err, errlen) != 0)
		return -1;
	return mime_rewrite(m->scan, hdrs, m->nch, spool_reader, m->body, wr,
	                    arg, err, errlen);
}

int msg_eom(struct msg *m, mime_write_fn out, void *outarg,
            const struct msg_edit **edits, size_t *nedits, char *err,
            size_t errlen)
{
	const struct signer_entry *e = m->signer;
	struct mime_header *hdrs = NULL;
	unsigned char dgst[EVP_MAX_MD_SIZE], rnd[16];
	unsigned int dlen = 0;
	unsigned char *der = NULL;
	size_t derlen = 0;
	EVP_MD_CTX *md = NULL;
	struct outbuf *ob = NULL;
	char boundary[64], ctype[256];
	int rc = -1;

	*edits = NULL;
	*nedits = 0;
	if (e == NULL || m->body == NULL)
		return seterr(err, errlen, "end of message without a signer");
	if (mime_scan_finish(m->scan, err, errlen) != 0)
		return -1;
	hdrs = calloc(m->nch + 1, sizeof(*hdrs));
	md = EVP_MD_CTX_new();
	ob = malloc(sizeof(*ob));
	if (hdrs == NULL || md == NULL || ob == NULL) {
		seterr(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < m->nch; i++) {
		hdrs[i].name = m->ch[i].name;
		hdrs[i].value = m->ch[i].value;
	}
	/* pass 2, first run: digest of the signed entity */
	if (!EVP_DigestInit_ex(md, m->snap->md, NULL)) {
		seterr_ssl(err, errlen, "digest init");
		goto out;
	}
	if (write_entity(m, hdrs, digest_sink, md, err, errlen) != 0)
		goto out;
	if (!EVP_DigestFinal_ex(md, dgst, &dlen)) {
		seterr_ssl(err, errlen, "digest final");
		goto out;
	}
	if (cms_sign_digest(e->cert, e->chain, e->key, m->snap->md, dgst, dlen,
	                    m->signing_time, &der, &derlen, err, errlen) != 0) {
		if (e->hsm && *p11_last_error())
			seterr(err, errlen, "%s", p11_last_error());
		goto out;
	}

	/* header edits: Content-* move inside, multipart/signed outside */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		seterr(err, errlen, "no randomness for the boundary");
		goto out;
	}
	strcpy(boundary, "=_smime_");
	for (size_t i = 0; i < sizeof(rnd); i++)
		sprintf(boundary + strlen(boundary), "%02x", rnd[i]);
	for (size_t i = m->nch; i-- > 0;)
		if (add_edit(m, EDIT_DELETE, m->ch[i].name, m->ch[i].index,
		             NULL) != 0)
			goto oom;
	if (!m->have_mime_version &&
	    add_edit(m, EDIT_ADD, "MIME-Version", 0, "1.0") != 0)
		goto oom;
	snprintf(ctype, sizeof(ctype),
	         "multipart/signed; protocol=\"application/pkcs7-signature\";"
	         " micalg=%s;\r\n\tboundary=\"%s\"",
	         cms_micalg(m->snap->md), boundary);
	if (add_edit(m, EDIT_ADD, "Content-Type", 0, ctype) != 0)
		goto oom;

	/* the new body */
	ob->out = out;
	ob->arg = outarg;
	ob->len = 0;
	if (ob_puts(ob, "This is an S/MIME signed message.\r\n\r\n--") ||
	    ob_puts(ob, boundary) || ob_puts(ob, "\r\n"))
		goto outfail;
	if (write_entity(m, hdrs, ob_write, ob, err, errlen) != 0)
		goto out;
	if (ob_puts(ob, "\r\n--") || ob_puts(ob, boundary) ||
	    ob_puts(ob, "\r\nContent-Type: application/pkcs7-signature;"
	                " name=\"smime.p7s\"\r\n"
	                "Content-Transfer-Encoding: base64\r\n"
	                "Content-Disposition: attachment;"
	                " filename=\"smime.p7s\"\r\n"
	                "Content-Description: S/MIME Cryptographic "
	                "Signature\r\n\r\n") ||
	    mime_base64_write(der, derlen, ob_write, ob) != 0 ||
	    ob_puts(ob, "\r\n--") || ob_puts(ob, boundary) ||
	    ob_puts(ob, "--\r\n") || ob_flush(ob) != 0)
		goto outfail;
	*edits = m->edits;
	*nedits = m->nedits;
	rc = 0;
	goto out;
oom:
	seterr(err, errlen, "out of memory");
	goto out;
outfail:
	seterr(err, errlen, "cannot write the new body to the MTA");
out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	free(ob);
	free(hdrs);
	return rc;
}

const char *msg_from(const struct msg *m)
{
	return m->from[0] ? m->from : NULL;
}

const char *msg_message_id(const struct msg *m)
{
	return m->message_id;
}

const char *msg_signer_serial(const struct msg *m)
{
	return m->signer ? m->signer->serial : NULL;
}

size_t msg_body_size(const struct msg *m)
{
	return m->body ? spool_size(m->body) : 0;
}

void msg_free(struct msg *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nch; i++) {
		free(m->ch[i].name);
		free(m->ch[i].value);
	}
	free(m->ch);
	for (size_t i = 0; i < m->nedits; i++) {
		free(m->edits[i].name);
		free(m->edits[i].value);
	}
	free(m->edits);
	free(m->from_value);
	free(m->message_id);
	spool_free(m->body);
	mime_scan_free(m->scan);
	free(m);
}
