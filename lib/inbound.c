/*
 * inbound -- the inbound message context: envelope, headers, the verdict
 * at end of headers, and at end of message the order of the work
 * (inbound_body.c decrypts and verifies) and the stamp: the header edits
 * and the result for the audit row.
 */
#include "inbound.h"
#include "authres.h"
#include "inbound_int.h"
#include "policy.h"
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct inb *inb_new(const struct snapshot *s)
{
	struct inb *m = calloc(1, sizeof(*m));

	if (m)
		m->snap = s;
	return m;
}

int inb_rcpt(struct inb *m, const char *addr)
{
	const char *p = addr ? addr : "";
	char a[320], *copy, **grown;
	size_t n = 0;

	while (*p == ' ' || *p == '<')
		p++;
	for (; *p && *p != '>' && *p != ' ' && n + 1 < sizeof(a); p++)
		a[n++] = (char)tolower((unsigned char)*p);
	while (n > 0 && a[n - 1] == '.')
		n--;
	a[n] = '\0';
	if (a[0] == '\0')
		return 0;
	for (size_t i = 0; i < m->nrcpts; i++)
		if (strcmp(m->rcpts[i], a) == 0)
			return 0;
	/* a handful per message: grown one at a time */
	copy = strdup(a);
	if (copy == NULL ||
	    (grown = realloc(m->rcpts, (m->nrcpts + 1) * sizeof(*grown))) ==
	            NULL) {
		free(copy);
		return -1;
	}
	m->rcpts = grown;
	m->rcpts[m->nrcpts++] = copy;
	return 0;
}

/* Keep name: value as the next of list (index among same names). */
static int keep(struct inb_hdr *list, size_t *n, const char *name,
                const char *value, int index)
{
	struct inb_hdr *h;
	int idx = 1;

	if (*n >= INB_HEADERS_MAX)
		return 0; /* more are not ours to look at */
	for (size_t i = 0; i < *n; i++)
		if (strcasecmp(list[i].name, name) == 0)
			idx++;
	h = &list[*n];
	h->name = strdup(name);
	h->value = strdup(value ? value : "");
	h->index = index ? index : idx;
	if (h->name == NULL || h->value == NULL) {
		free(h->name);
		free(h->value);
		return -1;
	}
	(*n)++;
	return 0;
}

static int keep_once(char **slot, const char *value)
{
	if (*slot)
		return 0;
	*slot = strdup(value ? value : "");
	return *slot ? 0 : -1;
}

/* Note an Authentication-Results field; ours to delete when it claims
 * our authserv-id. */
static int forged_add(struct inb *m, const char *value)
{
	int *grown;

	m->nar_seen++;
	if (!authres_is_ours(value, m->snap->cfg->authserv_id))
		return 0;
	grown = realloc(m->forged, (m->nforged + 1) * sizeof(*grown));
	if (grown == NULL)
		return -1;
	m->forged = grown;
	m->forged[m->nforged++] = m->nar_seen;
	return 0;
}

int inb_header(struct inb *m, const char *name, const char *value)
{
	if (str_iprefix(name, "Content-")) {
		m->ch_overflow |= m->nch == INB_HEADERS_MAX;
		return keep(m->ch, &m->nch, name, value, 0);
	}
	if (strcasecmp(name, AUTHRES_FIELD) == 0)
		return forged_add(m, value);
	if (strcasecmp(name, "From") == 0)
		return keep_once(&m->from_value, value);
	if (strcasecmp(name, "Subject") == 0)
		return keep_once(&m->subject, value);
	if (strcasecmp(name, "Message-ID") == 0)
		return keep_once(&m->message_id, value);
	return 0;
}

const char *inb_top(const struct inb *m, const char *name)
{
	for (size_t i = 0; i < m->nch; i++)
		if (strcasecmp(m->ch[i].name, name) == 0)
			return m->ch[i].value;
	return NULL;
}

enum inb_verdict inb_eoh(struct inb *m, int outbound, const char **reason)
{
	const struct config *cfg = m->snap->cfg;
	struct inbound_plan p =
	        policy_inbound(cfg, outbound, m->rcpts, m->nrcpts);
	struct mime_ct c;
	char e[128];

	if (reason)
		*reason = NULL;
	if (m->from_value == NULL ||
	    addr_from_header(m->from_value, m->from, sizeof(m->from), e,
	                     sizeof(e)) != 0)
		m->from[0] = '\0';
	if (!p.inbound) {
		if (reason)
			*reason = outbound ? "outbound"
			                   : "no internal envelope recipient";
		return INB_PASS;
	}
	if (!p.decrypt && !p.verify) {
		if (reason)
			*reason = "inbound_decrypt and inbound_verify are off";
		return INB_PASS;
	}
	m->verify = p.verify;
	mime_ct_parse(inb_top(m, "Content-Type"), &c);
	m->need_body = strcmp(c.type, "multipart") == 0 ||
	               (strcmp(c.type, "application") == 0 &&
	                strstr(c.subtype, "pkcs7-mime") != NULL);
	m->res.smime = "none";
	m->res.reason[0] = '\0';
	m->body = spool_new((size_t)cfg->max_memory_body, cfg->temp_dir);
	if (m->body == NULL) {
		if (reason)
			*reason = "out of memory";
		return INB_ERROR;
	}
	return INB_PROCESS;
}

int inb_body(struct inb *m, const unsigned char *buf, size_t len, char *err,
             size_t errlen)
{
	if (m->body == NULL)
		return seterr(err, errlen, "body before an inbound verdict");
	if (!m->need_body) /* only the stamp: the body is not looked at */
		return 0;
	return spool_write(m->body, buf, len, err, errlen);
}

void inb_permerror(struct inb *m, const char *why)
{
	smime_verdict_clear(&m->v);
	m->v.result = SMIME_PERMERROR;
	snprintf(m->v.reason, sizeof(m->v.reason), "%s", why);
	m->signed_seen = 1;
}

static int add_edit(struct inb *m, enum msg_edit_op op, const char *name,
                    int index, const char *value)
{
	struct msg_edit e = { op, strdup(name), index,
		              value ? strdup(value) : NULL };
	struct msg_edit *grown;

	if (e.name && (value == NULL || e.value) &&
	    (grown = realloc(m->edits, (m->nedits + 1) * sizeof(*grown)))) {
		m->edits = grown;
		m->edits[m->nedits++] = e;
		return 0;
	}
	free(e.name);
	free(e.value);
	return -1;
}

/* The audit action from what happened. */
static const char *action_of(const struct inb *m)
{
	enum smime_result r = m->signed_seen ? m->v.result : SMIME_NONE;

	if (m->res.decrypted)
		return "decrypted";
	if (m->note[0] && !m->res.decrypted)
		return "not-decrypted";
	if (r == SMIME_NONE)
		return NULL;
	if (r == SMIME_FAIL || r == SMIME_PERMERROR)
		return "verify-failed";
	return "verified";
}

/* A value from the MTA made fit for smfi_addheader, in place: a fold
 * stays "\n" + blank; any other CR or LF (hostile input) becomes a
 * space. */
static void value_clean(char *v)
{
	char *w = v;

	for (char *r = v; *r; r++) {
		if (*r == '\r' && r[1] == '\n')
			continue;
		if (*r == '\r' || (*r == '\n' && r[1] != ' ' && r[1] != '\t'))
			*w++ = ' ';
		else
			*w++ = *r;
	}
	*w = '\0';
}

/* The edits of the stamp: forged A-R out, new Content-*, ours in, Subject. */
static int stamp(struct inb *m)
{
	const struct config *cfg = m->snap->cfg;
	const struct smime_verdict *v = m->signed_seen ? &m->v : NULL;
	const char *tag;
	char *ar;
	int rc;

	for (size_t i = m->nforged; i-- > 0;)
		if (add_edit(m, EDIT_DELETE, AUTHRES_FIELD, m->forged[i],
		             NULL) != 0)
			return -1;
	if (m->newbody) {
		for (size_t i = m->nch; i-- > 0;)
			if (add_edit(m, EDIT_DELETE, m->ch[i].name,
			             m->ch[i].index, NULL) != 0)
				return -1;
		for (size_t i = 0; i < m->nnh; i++) {
			value_clean(m->nh[i].value); /* from the sender */
			if (add_edit(m, EDIT_ADD, m->nh[i].name, 0,
			             m->nh[i].value) != 0)
				return -1;
		}
	}
	ar = authres_format(cfg->authserv_id, v, m->from[0] ? m->from : NULL,
	                    m->note[0] ? m->note : NULL, "\n");
	if (ar == NULL)
		return -1;
	rc = add_edit(m, EDIT_ADD, AUTHRES_FIELD, 0, ar);
	free(ar);
	if (rc != 0)
		return -1;
	m->res.smime = smime_result_name(v ? v->result : SMIME_NONE);
	tag = policy_subject_tag(cfg, m->res.smime, m->res.decrypted);
	if (tag) {
		const char *s = m->subject ? m->subject : "";
		size_t n = strlen(tag) + strlen(s) + 2;
		char *ns = malloc(n);
		if (ns == NULL)
			return -1;
		while (*s == ' ' || *s == '\t')
			s++;
		snprintf(ns, n, "%s %s", tag, s);
		value_clean(ns);
		rc = (m->subject ? add_edit(m, EDIT_DELETE, "Subject", 1, NULL)
		                 : 0) ||
		     add_edit(m, EDIT_ADD, "Subject", 0, ns);
		free(ns);
		if (rc != 0)
			return -1;
	}
	return 0;
}

static int is_p7m(const struct mime_ct *c)
{
	return strcmp(c->type, "application") == 0 &&
	       (strcmp(c->subtype, "pkcs7-mime") == 0 ||
	        strcmp(c->subtype, "x-pkcs7-mime") == 0);
}

static int is_signed(const struct mime_ct *c)
{
	return strcmp(c->type, "multipart") == 0 &&
	       strcmp(c->subtype, "signed") == 0;
}

static void hdrs_free(struct inb_hdr *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
}

static const char *new_header(const struct inb *m, const char *name)
{
	for (size_t i = 0; i < m->nnh; i++)
		if (strcasecmp(m->nh[i].name, name) == 0)
			return m->nh[i].value;
	return NULL;
}

/* Verify what was decrypted: multipart/signed, or opaque signed-data
 * whose content, when unwrapped, replaces the decrypted entity. */
static int verify_inner(struct inb *m, char *err, size_t errlen)
{
	struct inb_hdr keep[INB_HEADERS_MAX];
	size_t nkeep = m->nnh;
	struct spool *dec = m->newbody;
	struct mime_ct ic;
	enum mime_cte cte;
	int rc;

	mime_ct_parse(new_header(m, "Content-Type"), &ic);
	if (is_signed(&ic))
		return inb_verify_signed(m, &ic, m->newbody, err, errlen);
	if (!is_p7m(&ic) || strcasecmp(ic.smime_type, "signed-data") != 0)
		return 0;
	cte = mime_cte_parse(new_header(m, "Content-Transfer-Encoding"));
	memcpy(keep, m->nh, sizeof(keep));
	m->nnh = 0;
	m->newbody = NULL;
	if (spool_rewind(dec, err, errlen) != 0)
		rc = -1;
	else
		rc = inb_verify_opaque(m, dec, cte == MIME_CTE_BASE64,
		                       m->snap->cfg->inbound_unwrap_opaque, err,
		                       errlen);
	if (m->newbody) { /* unwrapped: the content replaces it */
		hdrs_free(keep, nkeep);
		spool_free(dec);
		return rc;
	}
	hdrs_free(m->nh, m->nnh);
	memcpy(m->nh, keep, sizeof(keep));
	m->nnh = nkeep;
	m->newbody = dec;
	return rc;
}

/* The work on the body, in order: decrypt, verify what is signed. */
static int work(struct inb *m, char *err, size_t errlen)
{
	const struct config *cfg = m->snap->cfg;
	struct mime_ct c;
	enum mime_cte cte =
	        mime_cte_parse(inb_top(m, "Content-Transfer-Encoding"));
	int r;

	mime_ct_parse(inb_top(m, "Content-Type"), &c);
	if (spool_rewind(m->body, err, errlen) != 0)
		return -1;
	if (m->ch_overflow) { /* they could not all be replaced */
		inb_permerror(m, "too many Content-* header fields");
		return 0;
	}
	if ((is_p7m(&c) || is_signed(&c)) && spool_size(m->body) == 0) {
		inb_permerror(m, "empty S/MIME body");
		return 0;
	}
	if (is_p7m(&c) && strcasecmp(c.smime_type, "signed-data") == 0)
		return m->verify ? inb_verify_opaque(m, m->body,
		                                     cte == MIME_CTE_BASE64,
		                                     cfg->inbound_unwrap_opaque,
		                                     err, errlen)
		                 : 0;
	if (is_p7m(&c) && cfg->inbound_decrypt &&
	    (c.smime_type[0] == '\0' ||
	     strcasecmp(c.smime_type, "enveloped-data") == 0 ||
	     strcasecmp(c.smime_type, "authEnveloped-data") == 0)) {
		r = inb_decrypt(m, cte, err, errlen);
		if (r < 0)
			return -1;
		if (r == 2 && m->verify) {
			if (spool_rewind(m->body, err, errlen) != 0)
				return -1;
			return inb_verify_opaque(m, m->body,
			                         cte == MIME_CTE_BASE64,
			                         cfg->inbound_unwrap_opaque,
			                         err, errlen);
		}
		if (r == 0 && m->verify)
			return verify_inner(m, err, errlen);
		return 0;
	}
	if (is_signed(&c))
		return m->verify
		               ? inb_verify_signed(m, &c, m->body, err, errlen)
		               : 0;
	if (strcmp(c.type, "multipart") == 0) {
		r = inb_nested_pkcs7(m->body);
		if (r < 0)
			return seterr(err, errlen,
			              "cannot read the spooled body");
		if (r == 1)
			inb_permerror(m,
			              "S/MIME part nested inside a multipart "
			              "is not processed");
	}
	return 0;
}

int inb_eom(struct inb *m, mime_write_fn out, void *outarg,
            const struct msg_edit **edits, size_t *nedits,
            const struct inb_result **result, char *err, size_t errlen)
{
	const struct config *cfg = m->snap->cfg;

	*edits = NULL;
	*nedits = 0;
	*result = NULL;
	if (m->body == NULL)
		return seterr(err, errlen, "end of message without a verdict");
	if (work(m, err, errlen) != 0)
		return -1;
	if (stamp(m) != 0)
		return seterr(err, errlen, "out of memory");
	if (m->signed_seen) {
		m->res.signer_serial = m->v.serial;
		m->res.signer_issuer = m->v.issuer;
		m->res.signer_identifier = m->v.identifier;
		if (m->v.reason[0])
			snprintf(m->res.reason, sizeof(m->res.reason), "%s",
			         m->v.reason);
		m->res.reject = policy_signature_action(cfg, m->res.smime) ==
		                ACTION_REJECT;
	} else if (m->note[0] && m->res.reason[0] == '\0') {
		snprintf(m->res.reason, sizeof(m->res.reason), "%s", m->note);
	}
	m->res.action = action_of(m);
	if (m->newbody && !m->res.reject) { /* a rejected one goes nowhere */
		m->res.body_replaced = 1;
		if (inb_write_body(m, out, outarg, err, errlen) != 0)
			return -1;
	}
	*edits = m->edits;
	*nedits = m->nedits;
	*result = &m->res;
	return 0;
}

const char *inb_recipients(struct inb *m)
{
	size_t n = 1;
	char *p;

	if (m->rcpt_list)
		return m->rcpt_list;
	for (size_t i = 0; i < m->nrcpts; i++)
		n += strlen(m->rcpts[i]) + 2;
	if ((p = m->rcpt_list = malloc(n)) == NULL)
		return NULL;
	*p = '\0';
	for (size_t i = 0; i < m->nrcpts; i++)
		p += sprintf(p, "%s%s", i ? ", " : "", m->rcpts[i]);
	return m->rcpt_list;
}

const char *inb_from(const struct inb *m)
{
	return m && m->from[0] ? m->from : NULL;
}

int inb_body_started(const struct inb *m)
{
	return m && m->res.body_replaced;
}

X509 *inb_signer(const struct inb *m, STACK_OF(X509) **certs)
{
	int pass = m && m->signed_seen && m->v.result == SMIME_PASS;

	if (certs)
		*certs = pass ? m->v.certs : NULL;
	return pass ? m->v.signer : NULL;
}

void inb_free(struct inb *m)
{
	if (m == NULL)
		return;
	strv_free(m->rcpts, m->nrcpts);
	free(m->rcpt_list);
	hdrs_free(m->ch, m->nch);
	free(m->forged);
	hdrs_free(m->nh, m->nnh);
	free(m->from_value);
	free(m->subject);
	free(m->message_id);
	spool_free(m->body);
	spool_free(m->newbody);
	smime_verdict_clear(&m->v);
	for (size_t i = 0; i < m->nedits; i++) {
		free(m->edits[i].name);
		free(m->edits[i].value);
	}
	free(m->edits);
	free(m);
}
