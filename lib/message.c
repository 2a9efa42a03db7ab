/* message -- one message through the signer (see message.h): the context,
 * the envelope and headers, the verdicts at end of headers (asking
 * policy.c) and the accessors.  End of message is
 * message_eom.c. */
#include "message.h"
#include "message_int.h"
#include "certstore.h"
#include "cms.h"
#include "db.h"
#include "hdrprot.h"
#include "p11.h"
#include "policy.h"
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
	    policy_encrypt_mode(cfg, a, m->envfrom[0] ? m->envfrom : NULL,
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
	if (array_grow(&m->rcpts, &m->caprcpts, m->nrcpts, sizeof(*m->rcpts)) !=
	    0)
		return -1;
	if ((m->rcpts[m->nrcpts] = strdup(a)) == NULL)
		return -1;
	m->nrcpts++;
	return 0;
}

/* Append a copy of name: value to the list *a of *n (capacity *cap);
 * value lives in the name's allocation. */
static int chdr_push(struct chdr **a, size_t *n, size_t *cap, const char *name,
                     const char *value, int index)
{
	struct chdr *h;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct chdr *na = realloc(*a, ncap * sizeof(*na));
		if (na == NULL)
			return -1;
		*a = na;
		*cap = ncap;
	}
	/* one allocation: the name, NUL, the value, NUL */
	h = &(*a)[*n];
	if (value == NULL)
		value = "";
	if ((h->name = malloc(strlen(name) + strlen(value) + 2)) == NULL)
		return -1;
	h->value = stpcpy(h->name, name) + 1;
	strcpy(h->value, value);
	h->index = index;
	(*n)++;
	return 0;
}

static void chdr_free(struct chdr *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i].name); /* the value with it */
	free(a);
}

int msg_header(struct msg *m, const char *name, const char *value, char *err,
               size_t errlen)
{
	const struct config *cfg = m->snap ? m->snap->cfg : NULL;

	if (cfg != NULL && cfg->header_protection &&
	    hdrprot_is_protected(name, cfg->protected_headers,
	                         cfg->nprotected_headers)) {
		/* a copy for the root part of the signed entity (RFC 9788) */
		if (m->nhp >= MAX_CONTENT_HEADERS)
			m->overflow = 1;
		else if (chdr_push(&m->hp, &m->nhp, &m->caphp, name, value,
		                   0) != 0)
			return seterr(err, errlen, "out of memory");
	}
	if (str_iprefix(name, "Content-")) {
		int idx = 1;
		if (m->nch >= MAX_CONTENT_HEADERS) {
			m->overflow = 1;
			return 0;
		}
		for (size_t i = 0; i < m->nch; i++)
			if (strcasecmp(m->ch[i].name, name) == 0)
				idx++;
		if (chdr_push(&m->ch, &m->nch, &m->capch, name, value, idx) !=
		    0)
			return seterr(err, errlen, "out of memory");
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
	if (!policy_signing_address(cfg, m->from)) {
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
	r = policy_protected_content(top_header(m, "Content-Type"));
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

/* Signed only, not encrypted, because of why: MSG_SIGN (MSG_ERROR when out
 * of memory). */
static enum msg_verdict enc_note_set(struct msg *m, const char *why,
                                     const char **reason)
{
	free(m->enc_note);
	if ((m->enc_note = strdup(why)) == NULL) {
		*reason = "out of memory";
		return MSG_ERROR;
	}
	return MSG_SIGN;
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
	const char *required = NULL, *internal = NULL;
	char missing[512] = "";
	int want = 0, line = 0, rline;
	time_t now = time(NULL);
	STACK_OF(X509) *certs;

	for (size_t i = 0; i < m->nrcpts; i++) {
		enum enc_mode mode =
		        policy_encrypt_mode(cfg, m->rcpts[i], from, &rline);
		if (mode != ENC_NEVER)
			want = 1;
		if (mode == ENC_REQUIRED && required == NULL) {
			required = m->rcpts[i];
			line = rline;
		}
		if (internal == NULL &&
		    policy_signing_address(cfg, m->rcpts[i]))
			internal = m->rcpts[i];
	}
	if (required)
		m->required = 1;
	if (!want || v == MSG_ERROR)
		return v;
	if (v != MSG_SIGN) {
		if (required == NULL ||
		    policy_client_encrypted(top_header(m, "Content-Type")))
			return v;
		snprintf(why, sizeof(why),
		         "encryption to %s is required (policy rule at %s:%d), "
		         "but this message cannot be signed and encrypted: %s",
		         required, cfg->path, line,
		         *reason ? *reason : "no signer");
		*reason = why;
		return MSG_REJECT;
	}
	if (internal) {
		/* one body for every recipient, and an internal mailbox could
		 * not read it encrypted: its key is on the gateway */
		if (required) {
			snprintf(why, sizeof(why),
			         "encryption to %s is required (policy rule at "
			         "%s:%d), but %s is an internal mailbox that "
			         "could not read an encrypted copy: send to it "
			         "in a separate message",
			         required, cfg->path, line, internal);
			*reason = why;
			return MSG_REJECT;
		}
		snprintf(why, sizeof(why),
		         "%s is an internal mailbox that could not read an "
		         "encrypted copy",
		         internal);
		return enc_note_set(m, why, reason);
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
	return enc_note_set(m, why, reason);
oom:
	sk_X509_free(certs);
	*reason = "out of memory";
	return MSG_ERROR;
}

enum msg_verdict msg_eoh(struct msg *m, int outbound, const char **reason)
{
	const struct config *cfg = m->snap->cfg;
	const char *r = NULL;
	enum msg_verdict v = sign_verdict(m, outbound, &r);

	if (outbound && cfg->nencrypt > 0) {
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
	if (spool_write(m->body, buf, len, err, errlen) != 0)
		return -1;
	return mime_scan_feed(m->scan, buf, len, err, errlen);
}

enum action msg_error_action(const struct msg *m, enum action configured,
                             const char **note)
{
	if (m == NULL) {
		if (note)
			*note = NULL;
		return configured;
	}
	if (m->ts_failed) {
		if (note)
			*note = "on_timestamp_failure = tempfail";
		return ACTION_TEMPFAIL;
	}
	return policy_error_action(configured, m->required, m->body_sent, note);
}

enum action msg_action(const struct msg *m, enum msg_verdict v,
                       const char **note)
{
	enum policy_case what = v == MSG_NOCERT   ? POLICY_NO_CERTIFICATE
	                        : v == MSG_REJECT ? POLICY_REFUSED
	                                          : POLICY_ERROR;

	if (what == POLICY_ERROR && m->ts_failed) {
		/* the TSA failed and the signature may not go without */
		if (note)
			*note = "on_timestamp_failure = tempfail";
		return ACTION_TEMPFAIL;
	}
	return policy_action(m->snap->cfg, what, m->required, m->body_sent,
	                     note);
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
	if (m->ts_time || m->ts_note[0]) {
		size_t rl = strlen(result), ll = strlen(logtext);
		char when[40];
		if (m->ts_time)
			time_fmt(m->ts_time, when, sizeof(when));
		snprintf(result + rl, resultlen - rl, "; %s%s",
		         m->ts_time ? "time-stamped " : "no time-stamp: ",
		         m->ts_time ? when : m->ts_note);
		snprintf(logtext + ll, sizeof(logtext) - ll, ", %s%s",
		         m->ts_time ? "time-stamped " : "no time-stamp: ",
		         m->ts_time ? when : m->ts_note);
	}
	return logtext;
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
	chdr_free(m->ch, m->nch);
	chdr_free(m->hp, m->nhp);
	for (size_t i = 0; i < m->nedits; i++) {
		free(m->edits[i].name);
		free(m->edits[i].value);
	}
	free(m->edits);
	free(m->from_value);
	free(m->message_id);
	strv_free(m->rcpts, m->nrcpts);
	sk_X509_free(m->enc);
	free(m->enc_note);
	spool_free(m->body);
	mime_scan_free(m->scan);
	free(m);
}
