/* message -- one message through the signer (see message.h). */
#include "message.h"
#include "certstore.h"
#include "cms.h"
#include "db.h"
#include "p11.h"
#include "recipient.h"
#include "spool.h"
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define MAX_CONTENT_HEADERS 1000
#define OUT_CHUNK           65536

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
	char envfrom[320];
	char **rcpts; /* envelope recipients, lower-case, no duplicates */
	size_t nrcpts, caprcpts;
	STACK_OF(X509) *enc; /* encrypt to these (not owned), or NULL */
	char *enc_note;      /* why opportunistic encryption did not happen */
	int harvest;         /* MSG_HARVEST: spool only, no rewrite */
	int required;        /* a recipient's rule requires encryption */
	int body_sent;       /* part of a new body went to the MTA */
};

#define HARVEST_MAX (16u << 20) /* larger inbound mail is not inspected */

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

/* "<User@Example.org>" (with ESMTP decorations gone) to lower-case
 * user@example.org in out. */
static void envelope_addr(const char *in, char *out, size_t outlen)
{
	const char *p = in ? in : "";
	size_t n = 0;

	while (*p == ' ' || *p == '<')
		p++;
	for (; *p && *p != '>' && *p != ' ' && n + 1 < outlen; p++)
		out[n++] = (char)tolower((unsigned char)*p);
	while (n > 0 && out[n - 1] == '.') /* "user@example.go.id." */
		n--;
	out[n] = '\0';
}

void msg_envfrom(struct msg *m, const char *addr)
{
	envelope_addr(addr, m->envfrom, sizeof(m->envfrom));
}

int msg_rcpt(struct msg *m, const char *addr, int outbound, const char **reason)
{
	static __thread char why[768];
	const struct config *cfg = m->snap->cfg;
	char a[320];
	int line;

	if (reason)
		*reason = NULL;
	envelope_addr(addr, a, sizeof(a));
	if (a[0] == '\0')
		return 0;
	for (size_t i = 0; i < m->nrcpts; i++)
		if (strcmp(m->rcpts[i], a) == 0)
			return 0;
	if (outbound && cfg->nencrypt > 0 &&
	    config_encrypt_mode(cfg, a, m->envfrom[0] ? m->envfrom : NULL,
	                        &line) == ENC_REQUIRED) {
		if (snapshot_encryption_cert(m->snap, a, time(NULL), NULL) ==
		    NULL) {
			snprintf(why, sizeof(why),
			         "encryption to %s is required (policy rule at "
			         "%s:%d), but no valid certificate of %s is "
			         "known",
			         a, cfg->path, line, a);
			if (reason)
				*reason = why;
			return 1;
		}
		m->required = 1;
	}
	if (m->nrcpts == m->caprcpts) {
		size_t ncap = m->caprcpts ? m->caprcpts * 2 : 8;
		char **n = realloc(m->rcpts, ncap * sizeof(*n));
		if (n == NULL)
			return -1;
		m->rcpts = n;
		m->caprcpts = ncap;
	}
	if ((m->rcpts[m->nrcpts] = strdup(a)) == NULL)
		return -1;
	m->nrcpts++;
	return 0;
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
			return strstr(ct.protocol, "pgp")
			               ? "PGP/MIME signed message"
			               : "already S/MIME signed";
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

/* The signing half of msg_eoh. */
static enum msg_verdict sign_verdict(struct msg *m, int outbound,
                                     const char **reason)
{
	static __thread char why[512];
	const struct config *cfg = m->snap->cfg;
	const struct signer_entry *e;
	const char *r;
	char err[512];

#define VERDICT(v, text)                  \
	do {                              \
		if (reason)               \
			*reason = (text); \
		return (v);               \
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
		snprintf(why, sizeof(why),
		         "From domain %s is not a signing domain",
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
		snprintf(why, sizeof(why), "certificate %s of %s: %s",
		         e->serial, m->from, err);
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

/* Content the client encrypted itself (S/MIME enveloped, PGP). */
static int already_encrypted(const char *ctype)
{
	struct mime_ct ct;

	if (ctype == NULL)
		return 0;
	mime_ct_parse(ctype, &ct);
	if (strcmp(ct.type, "multipart") == 0 &&
	    strcmp(ct.subtype, "encrypted") == 0)
		return 1;
	if (strcmp(ct.type, "application") == 0 &&
	    strcmp(ct.subtype, "pgp-encrypted") == 0)
		return 1;
	return strcmp(ct.type, "application") == 0 &&
	       (strcmp(ct.subtype, "pkcs7-mime") == 0 ||
	        strcmp(ct.subtype, "x-pkcs7-mime") == 0) &&
	       strcasestr(ct.smime_type, "enveloped") != NULL;
}

/* Append ", addr" (or "addr") to a list of at most len bytes. */
static void list_add(char *list, size_t len, const char *addr)
{
	size_t n = strlen(list);

	if (n + strlen(addr) + 8 >= len) {
		if (n + 5 < len && strstr(list, "...") == NULL)
			strcat(list, ", ...");
		return;
	}
	snprintf(list + n, len - n, "%s%s", n ? ", " : "", addr);
}

/*
 * The encryption half of msg_eoh (outbound mail only), given the signing
 * verdict v.  Sets m->enc when the message is to be encrypted.
 */
static enum msg_verdict encrypt_verdict(struct msg *m, enum msg_verdict v,
                                        const char **reason)
{
	static __thread char why[1024];
	const struct config *cfg = m->snap->cfg;
	const char *from = m->from[0] ? m->from : NULL;
	const char *required = NULL;
	char missing[512] = "";
	int want = 0, line = 0, rline;
	time_t now = time(NULL);
	STACK_OF(X509) *certs;

	for (size_t i = 0; i < m->nrcpts; i++) {
		enum enc_mode mode =
		        config_encrypt_mode(cfg, m->rcpts[i], from, &rline);
		if (mode != ENC_NEVER)
			want = 1;
		if (mode == ENC_REQUIRED && required == NULL) {
			required = m->rcpts[i];
			line = rline;
		}
	}
	if (required)
		m->required = 1;
	if (!want || v == MSG_ERROR)
		return v;
	if (v != MSG_SIGN) {
		if (required == NULL ||
		    already_encrypted(top_header(m, "Content-Type")))
			return v;
		snprintf(why, sizeof(why),
		         "encryption to %s is required (policy rule at %s:%d), "
		         "but this message cannot be signed and encrypted: %s",
		         required, cfg->path, line,
		         *reason ? *reason : "no signer");
		*reason = why;
		return MSG_REJECT;
	}
	certs = sk_X509_new_null();
	if (certs == NULL) {
		*reason = "out of memory";
		return MSG_ERROR;
	}
	for (size_t i = 0; i < m->nrcpts; i++) {
		X509 *x = snapshot_encryption_cert(m->snap, m->rcpts[i], now,
		                                   NULL);
		if (x == NULL)
			list_add(missing, sizeof(missing), m->rcpts[i]);
		else if (sk_X509_find(certs, x) < 0 && !sk_X509_push(certs, x))
			goto oom;
	}
	if (missing[0] == '\0' && !m->signer->can_encrypt)
		snprintf(missing, sizeof(missing),
		         "the sender (certificate %s does not allow "
		         "encryption)",
		         m->signer->serial);
	if (missing[0] == '\0') {
		/* the sender can read its own archive copy */
		if (sk_X509_find(certs, m->signer->cert) < 0 &&
		    !sk_X509_push(certs, m->signer->cert))
			goto oom;
		m->enc = certs;
		return MSG_SIGN;
	}
	sk_X509_free(certs);
	if (required) {
		snprintf(why, sizeof(why),
		         "encryption to %s is required (policy rule at %s:%d), "
		         "but no valid certificate is known for %s",
		         required, cfg->path, line, missing);
		*reason = why;
		return MSG_REJECT;
	}
	snprintf(why, sizeof(why), "no valid certificate for %s", missing);
	free(m->enc_note);
	if ((m->enc_note = strdup(why)) == NULL) {
		*reason = "out of memory";
		return MSG_ERROR;
	}
	return MSG_SIGN;
oom:
	sk_X509_free(certs);
	*reason = "out of memory";
	return MSG_ERROR;
}

/* Inbound mail worth harvesting: S/MIME signed, from outside. */
static int harvestable(const struct msg *m)
{
	struct mime_ct ct;
	const char *ctype = top_header(m, "Content-Type");

	if (ctype == NULL || m->from[0] == '\0')
		return 0;
	mime_ct_parse(ctype, &ct);
	if (strcmp(ct.type, "multipart") == 0 &&
	    strcmp(ct.subtype, "signed") == 0)
		return strstr(ct.protocol, "pkcs7-signature") != NULL;
	return strcmp(ct.type, "application") == 0 &&
	       (strcmp(ct.subtype, "pkcs7-mime") == 0 ||
	        strcmp(ct.subtype, "x-pkcs7-mime") == 0) &&
	       strcasestr(ct.smime_type, "signed-data") != NULL;
}

enum msg_verdict msg_eoh(struct msg *m, int outbound, const char **reason)
{
	const struct config *cfg = m->snap->cfg;
	const char *r = NULL;
	enum msg_verdict v = sign_verdict(m, outbound, &r);

	if (!outbound && v == MSG_PASS && cfg->harvest && !m->overflow &&
	    harvestable(m)) {
		m->harvest = 1;
		m->body =
		        spool_new((size_t)cfg->max_memory_body, cfg->temp_dir);
		if (m->body == NULL) {
			v = MSG_ERROR;
			r = "out of memory";
		} else {
			v = MSG_HARVEST;
		}
	} else if (outbound && cfg->nencrypt > 0) {
		v = encrypt_verdict(m, v, &r);
	}
	if (reason)
		*reason = r;
	return v;
}

int msg_body(struct msg *m, const unsigned char *buf, size_t len, char *err,
             size_t errlen)
{
	if (m->body == NULL)
		return seterr(err, errlen, "body before a signing verdict");
	if (m->harvest) {
		/* only the first HARVEST_MAX bytes matter: larger mail is
		 * let go without inspection */
		if (spool_size(m->body) > HARVEST_MAX)
			return 0;
		return spool_write(m->body, buf, len, err, errlen);
	}
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
	if (cms_sign_digest(e->cert, e->chain, e->key, m->snap->md, dgst, dlen,
	                    m->signing_time, der, derlen, err, errlen) != 0) {
		if (e->hsm && *p11_last_error())
			seterr(err, errlen, "%s", p11_last_error());
		return -1;
	}
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
static int write_signed_body(struct msg *m, const struct mime_header *hdrs,
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
static int write_encrypted(struct msg *m, const struct mime_header *hdrs,
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

int msg_eom(struct msg *m, mime_write_fn out, void *outarg,
            const struct msg_edit **edits, size_t *nedits, char *err,
            size_t errlen)
{
	const struct signer_entry *e = m->signer;
	struct mime_header *hdrs = NULL;
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
	if (e == NULL || m->body == NULL || m->harvest)
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
	free(hdrs);
	return rc;
}

/* The whole top-level entity (Content-* headers, blank line, body) in
 * memory, for OpenSSL's S/MIME parser. */
static BIO *entity_bio(struct msg *m, char *err, size_t errlen)
{
	BIO *b = BIO_new(BIO_s_mem());
	unsigned char buf[65536];
	ssize_t n;

	if (b == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	/* the end of the data is the end, not "try again": without this the
	 * base64 filter of an opaque-signed entity stops short */
	BIO_set_mem_eof_return(b, 0);
	for (size_t i = 0; i < m->nch; i++)
		if (BIO_printf(b, "%s: %s\r\n", m->ch[i].name,
		               m->ch[i].value) <= 0)
			goto oom;
	if (BIO_puts(b, "\r\n") <= 0 || spool_rewind(m->body, err, errlen))
		goto fail;
	while ((n = spool_read(m->body, buf, sizeof(buf))) > 0)
		if (BIO_write(b, buf, (int)n) != (int)n)
			goto oom;
	if (n < 0) {
		seterr(err, errlen, "cannot read the spooled body");
		goto fail;
	}
	return b;
oom:
	seterr(err, errlen, "out of memory");
fail:
	BIO_free(b);
	return NULL;
}

int msg_harvest(struct msg *m, msg_harvest_fn found, void *arg, char *why,
                size_t whylen)
{
	const struct config *cfg = m->snap->cfg;
	CMS_ContentInfo *cms = NULL;
	BIO *in = NULL, *cont = NULL;
	X509_STORE *store = NULL;
	STACK_OF(X509) *signers = NULL, *certs = NULL;
	struct db *db = NULL;
	time_t now = time(NULL);
	int stored = 0, rc = -1;
	char err[512];

	why[0] = '\0';
	if (!m->harvest || m->body == NULL)
		return seterr(why, whylen, "not a harvest message");
	if (spool_size(m->body) > HARVEST_MAX) {
		seterr(why, whylen, "larger than %u MiB, not inspected",
		       HARVEST_MAX >> 20);
		return 0;
	}
	if ((in = entity_bio(m, why, whylen)) == NULL)
		return -1;
	cms = SMIME_read_CMS(in, &cont);
	if (cms == NULL) {
		seterr_ssl(why, whylen, "S/MIME structure does not parse");
		rc = 0;
		goto out;
	}
	store = X509_STORE_new();
	if (store == NULL || X509_STORE_load_file(store, cfg->ca_file) != 1) {
		seterr_ssl(why, whylen, "cannot load ca_file");
		goto out;
	}
	if (CMS_verify(cms, NULL, store, cont, NULL, CMS_BINARY) != 1) {
		seterr_ssl(why, whylen,
		           "signature does not verify against ca_file");
		rc = 0;
		goto out;
	}
	signers = CMS_get0_signers(cms);
	certs = CMS_get1_certs(cms);
	for (int i = 0; signers && i < sk_X509_num(signers); i++) {
		X509 *x = sk_X509_value(signers, i), *known;
		char **addrs;
		if (!cert_has_email(x, m->from)) {
			seterr(why, whylen,
			       "signer certificate does not carry the From "
			       "address %s",
			       m->from);
			continue;
		}
		/* known already: no database work for every message */
		known = snapshot_encryption_cert(m->snap, m->from, now, NULL);
		if (known && X509_cmp(known, x) == 0) {
			seterr(why, whylen, "certificate already known");
			continue;
		}
		if (db == NULL && db_open(cfg->database, DB_READWRITE, &db, err,
		                          sizeof(err)) != 0) {
			seterr(why, whylen, "database: %s", err);
			goto out;
		}
		if (recipient_cert_check(db, x, certs, cfg->ca_file, now, err,
		                         sizeof(err)) != 0) {
			seterr(why, whylen, "signer certificate refused: %s",
			       err);
			continue;
		}
		addrs = cert_emails(x);
		if (addrs == NULL) {
			seterr(why, whylen, "out of memory");
			goto out;
		}
		for (char **a = addrs; *a; a++) {
			struct db_recipient r;
			int added = 0;
			if (recipient_from_cert(x, *a, "harvest", &r, err,
			                        sizeof(err)) != 0 ||
			    db_recipient_add(db, &r, "smime-milter", &added,
			                     err, sizeof(err)) != 0) {
				db_recipient_clear(&r);
				seterr(why, whylen, "cannot store: %s", err);
				cert_emails_free(addrs);
				goto out;
			}
			if (added) {
				stored++;
				if (found)
					found(arg, *a, r.serial, x);
			} else if (stored == 0) {
				seterr(why, whylen,
				       "certificate already known");
			}
			db_recipient_clear(&r);
		}
		cert_emails_free(addrs);
	}
	rc = stored;
out:
	db_close(db);
	sk_X509_free(signers);
	sk_X509_pop_free(certs, X509_free);
	X509_STORE_free(store);
	BIO_free(cont);
	BIO_free(in);
	CMS_ContentInfo_free(cms);
	return rc;
}

enum action msg_error_action(const struct msg *m, enum action configured,
                             const char **note)
{
	if (note)
		*note = NULL;
	if (configured != ACTION_ACCEPT || m == NULL)
		return configured;
	if (m->body_sent) {
		/* accepting now would deliver a half-replaced body */
		if (note)
			*note = "the new body was already being handed to the "
			        "MTA, so on_error = accept does not apply";
		return ACTION_TEMPFAIL;
	}
	if (!m->required)
		return configured;
	if (note)
		*note = "encryption is required for a recipient, so on_error = "
		        "accept does not apply";
	return ACTION_TEMPFAIL;
}

const char *msg_outcome(const struct msg *m, const char **action, char *result,
                        size_t resultlen)
{
	static __thread char logtext[700];

	*action = "signed";
	logtext[0] = '\0';
	snprintf(result, resultlen, "ok");
	if (m->enc) {
		*action = "encrypted";
		snprintf(result, resultlen, "encrypted (%s, %d certificates)",
		         m->snap->cfg->encrypt_cipher, sk_X509_num(m->enc));
		snprintf(logtext, sizeof(logtext), " and %s", result);
	} else if (m->enc_note) {
		snprintf(result, resultlen, "ok; not encrypted: %s",
		         m->enc_note);
		snprintf(logtext, sizeof(logtext),
		         ", not encrypted (opportunistic): %s", m->enc_note);
	}
	return logtext;
}

int msg_is_harvest(const struct msg *m)
{
	return m->harvest;
}

int msg_encrypt_count(const struct msg *m)
{
	return m->enc ? sk_X509_num(m->enc) : 0;
}

const char *msg_encrypt_note(const struct msg *m)
{
	return m->enc_note;
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
	for (size_t i = 0; i < m->nrcpts; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	sk_X509_free(m->enc);
	free(m->enc_note);
	spool_free(m->body);
	mime_scan_free(m->scan);
	free(m);
}
