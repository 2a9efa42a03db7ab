/* evidence -- the check of one disputed message (see evidence.h). */
#include "evidence.h"
#include "evidence_int.h"
#include "anchor.h"
#include "authres.h"
#include "certstore.h"
#include "mime.h"
#include "tsa.h"
#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/cms.h>
#include <openssl/err.h>

const char *evidence_status_name(enum evidence_status s)
{
	return s == EVIDENCE_VALID     ? "valid"
	       : s == EVIDENCE_INVALID ? "invalid"
	                               : "unchecked";
}

/* Free the n strings of v. */
static void strs_free(char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
}

/* Free the strings of the audit row a holds. */
static void audit_strs_free(struct evidence_audit *a)
{
	char *strs[] = { a->queue_id, a->action, a->cert_serial, a->result,
		         a->hash };

	strs_free(strs, sizeof(strs) / sizeof(strs[0]));
}

void evidence_clear(struct evidence *e)
{
	if (e == NULL)
		return;
	char *strs[] = { e->message_id,   e->from,  e->subject,   e->date,
		         e->revoked_what, e->stamp, e->hp_changed };

	strs_free(strs, sizeof(strs) / sizeof(strs[0]));
	for (char **c = e->chain; c && *c; c++)
		free(*c);
	free(e->chain);
	smime_verdict_clear(&e->then);
	smime_verdict_clear(&e->today);
	audit_strs_free(&e->audit);
	memset(e, 0, sizeof(*e));
}

/* Set the status and the reasons (English; Indonesian: the words of
 * ev_reason_id when id is NULL). */
static void judge(struct evidence *e, enum evidence_status s, const char *id,
                  const char *en)
{
	e->status = s;
	snprintf(e->reason_en, sizeof(e->reason_en), "%s", en);
	snprintf(e->reason_id, sizeof(e->reason_id), "%s",
	         id ? id : ev_reason_id(en));
}

void evidence_unreadable(struct evidence *e, const char *why)
{
	memset(e, 0, sizeof(*e));
	e->shape = "unreadable";
	judge(e, EVIDENCE_UNCHECKED, "berkas tidak dapat dibaca", why);
	ev_verdict_text(e);
}

/* The time the signature is judged at: the signingTime attribute.  (The
 * RFC 3161 token of issue 14 is to be preferred here once it exists.) */
/* ---- the signature, twice ------------------------------------------- */

struct ev_msg {
	struct ev_span content, body; /* multipart/signed: the first part */
	unsigned char *sig;           /* ... its signature's DER */
	size_t siglen;
	int opaque, b64;
};

/* The signature time-stamp token of the detached signature sig, checked
 * against ca_file over the SHA-256 of the signature value: fills
 * ts_present, ts_gen_time or ts_problem. */
static void timestamp_of(const unsigned char *sig, size_t len,
                         const char *ca_file, struct evidence *e)
{
	const unsigned char *p = sig, *tok;
	CMS_ContentInfo *cms =
	        sig ? d2i_CMS_ContentInfo(NULL, &p, (long)len) : NULL;
	STACK_OF(CMS_SignerInfo) *sis = cms ? CMS_get0_SignerInfos(cms) : NULL;
	CMS_SignerInfo *si = sis && sk_CMS_SignerInfo_num(sis) > 0
	                             ? sk_CMS_SignerInfo_value(sis, 0)
	                             : NULL;
	unsigned char d[TSA_DIGEST_LEN];
	size_t tl;
	char err[256];

	if (si && tsa_token_get(si, &tok, &tl, err, sizeof(err)) == 1) {
		e->ts_present = 1;
		tsa_token_signer(tok, tl, e->ts_tsa, sizeof(e->ts_tsa), err,
		                 sizeof(err));
		if (ca_file == NULL)
			snprintf(e->ts_problem, sizeof(e->ts_problem),
			         "not checked: no timestamp_ca_file");
		else if (tsa_signature_digest(si, d, err, sizeof(err)) != 0 ||
		         tsa_token_verify(tok, tl, d, sizeof(d), ca_file,
		                          &e->ts_gen_time, err,
		                          sizeof(err)) != 0) {
			e->ts_gen_time = 0;
			snprintf(e->ts_problem, sizeof(e->ts_problem), "%s",
			         err);
		}
	}
	CMS_ContentInfo_free(cms);
}

/* The time the signature is judged at: a time-stamp token's genTime when
 * one verified, else the signer's own signingTime claim. */
static time_t evidence_signing_time(const struct evidence_opts *o,
                                    const struct ev_msg *m, struct evidence *e,
                                    const struct smime_verdict *v)
{
	if (!m->opaque)
		timestamp_of(m->sig, m->siglen, o->timestamp_ca_file, e);
	if (e->ts_gen_time) {
		e->time_source = "timestamp";
		return e->ts_gen_time;
	}
	e->time_source = v->signing_time ? "signingTime" : NULL;
	return v->signing_time;
}

static int verify_once(const struct ev_msg *m,
                       const struct smime_verify_opts *so,
                       struct smime_verdict *v)
{
	struct ev_canon c = { m->content, 0, 0 };
	BIO *der;
	int rc;

	if (!m->opaque)
		return smime_verify_detached_fn(so, ev_canon_read, &c, m->sig,
		                                m->siglen, v);
	if ((der = ev_der_bio(m->body, m->b64)) == NULL)
		return -1;
	rc = smime_verify_opaque(so, der, NULL, v);
	BIO_free_all(der);
	return rc;
}

/* The chain of the signer at time t, subjects into e->chain; the
 * certificates in *out (leaf first).  0, or -1 when it does not build. */
static int chain_at(const struct evidence_opts *o, X509_STORE *store,
                    struct evidence *e, time_t t, STACK_OF(X509) **out)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc = -1, n;

	*out = NULL;
	if (ctx &&
	    X509_STORE_CTX_init(ctx, store, e->then.signer, e->then.certs)) {
		X509_STORE_CTX_set_time(ctx, 0, t ? t : o->now);
		if (X509_verify_cert(ctx) == 1)
			*out = X509_STORE_CTX_get1_chain(ctx);
	}
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	n = *out ? sk_X509_num(*out) : 0;
	if (n > 0 && (e->chain = calloc((size_t)n + 1, sizeof(char *)))) {
		for (int i = 0; i < n; i++)
			e->chain[i] = cert_name_text(
			        X509_get_subject_name(sk_X509_value(*out, i)));
		rc = 0;
	}
	return rc;
}

/* Note a revocation at when of the certificate subject, keeping the
 * earliest (a date unknown, 0, counts as the earliest). */
static void revoked_note(struct evidence *e, time_t when, const char *by,
                         const char *subject)
{
	if (e->revoked && (e->revoked_at == 0 || e->revoked_at <= when))
		return;
	e->revoked = 1;
	e->revoked_at = when;
	e->revoked_by = by;
	free(e->revoked_what);
	e->revoked_what = subject ? strdup(subject) : NULL;
}

/* The revocations of the chain's certificates (not the trust anchor):
 * the CRL entries, and the certificates table for the city's own.  0, or
 * -1 with err on a database error. */
static int revocations(const struct evidence_opts *o, struct evidence *e,
                       STACK_OF(X509) *chain, char *err, size_t errlen)
{
	int n = sk_X509_num(chain), rc = 0;

	for (int i = 0; rc == 0 && i < (n > 1 ? n - 1 : n); i++) {
		struct cert_info ci;
		struct db_cert dc;
		time_t when = 0;
		int r;

		if (cert_info_get(sk_X509_value(chain, i), &ci) != 0)
			return seterr(err, errlen, "out of memory");
		r = db_serial_revoked_at(o->db, ci.issuer, ci.serial, &when,
		                         err, errlen);
		if (r == 1)
			revoked_note(e, when, "crl", ci.subject);
		if (r >= 0 && i == 0 &&
		    (r = db_cert_find(o->db, ci.fingerprint, &dc, err,
		                      errlen)) == 1) {
			if (dc.status && strcmp(dc.status, "revoked") == 0)
				revoked_note(e, dc.revoked_at, "certificates",
				             ci.subject);
			db_cert_clear(&dc);
		}
		rc = r < 0 ? -1 : 0;
		cert_info_clear(&ci);
	}
	return rc;
}

/* The status from the two verdicts and the revocations.  The signature
 * and the chain at signing time passed. */
static void weigh(const struct evidence_opts *o, struct evidence *e)
{
	/* times to the second (time_fmt), so that a revocation on the day
	 * of the signature is still ordered */
	char a[40], b[40], en[700], id[700];
	time_t st = e->signing_time;

	if (e->revoked &&
	    (e->revoked_at == 0 || st == 0 || e->revoked_at <= st)) {
		if (e->revoked_at == 0)
			snprintf(en, sizeof(en),
			         "certificate %s is revoked (date unknown): it "
			         "cannot be shown to have signed before",
			         e->revoked_what ? e->revoked_what : "");
		else if (st == 0)
			snprintf(en, sizeof(en),
			         "certificate revoked since %s and the "
			         "signature carries no signing time",
			         time_fmt(e->revoked_at, a, sizeof(a)));
		else
			snprintf(en, sizeof(en),
			         "certificate revoked on %s, before the "
			         "signature of %s",
			         time_fmt(e->revoked_at, a, sizeof(a)),
			         time_fmt(st, b, sizeof(b)));
		snprintf(id, sizeof(id),
		         "sertifikat sudah dicabut%s%s sebelum pesan "
		         "ditandatangani",
		         e->revoked_at ? " pada " : "",
		         e->revoked_at ? time_fmt(e->revoked_at, a, sizeof(a))
		                       : "");
		judge(e, EVIDENCE_INVALID, id, en);
		return;
	}
	if (e->revoked && e->today.result == SMIME_PASS) {
		/* revoked in the certificates table only (smimectl revoke),
		 * which smime_verify does not read */
		e->today.result = SMIME_FAIL;
		snprintf(e->today.reason, sizeof(e->today.reason),
		         "certificate revoked %s (smimectl revoke)",
		         time_fmt(e->revoked_at, a, sizeof(a)));
	}
	if (e->revoked) {
		snprintf(en, sizeof(en),
		         "valid at signing time %s, revoked since %s",
		         time_fmt(st, a, sizeof(a)),
		         time_fmt(e->revoked_at, b, sizeof(b)));
		snprintf(id, sizeof(id),
		         "sah pada saat penandatanganan %s, sertifikat dicabut "
		         "sejak %s",
		         time_fmt(st, a, sizeof(a)),
		         time_fmt(e->revoked_at, b, sizeof(b)));
		judge(e, EVIDENCE_VALID, id, en);
	} else if (e->today.result == SMIME_PASS || o->db == NULL) {
		judge(e, EVIDENCE_VALID, "", "");
	} else {
		/* expired since, or an issuer no longer valid: the signature
		 * stays good as of its time */
		snprintf(en, sizeof(en), "valid at signing time %s; today: %s",
		         st ? time_fmt(st, a, sizeof(a)) : "(not given)",
		         e->today.reason);
		snprintf(id, sizeof(id),
		         "sah pada saat penandatanganan %s; hari ini: %s",
		         st ? time_fmt(st, a, sizeof(a)) : "(tidak ada)",
		         ev_reason_id(e->today.reason));
		judge(e,
		      e->today.result == SMIME_TEMPERROR ? EVIDENCE_UNCHECKED
		                                         : EVIDENCE_VALID,
		      id, en);
	}
}

/* Judge the signature of m into e. */
static int judge_signature(const struct evidence_opts *o,
                           const struct ev_msg *m, struct evidence *e,
                           char *err, size_t errlen)
{
	struct smime_verify_opts so = { o->ca_file, o->store, NULL, NULL, 0 };
	char from[320], dberr[300];
	STACK_OF(X509) *chain = NULL;
	X509_STORE *own = NULL;

	if (e->from && addr_from_header(e->from, from, sizeof(from), dberr,
	                                sizeof(dberr)) == 0)
		so.from = from;
	/* first at now only to learn the signing time, then at that time */
	so.now = o->now;
	if (verify_once(m, &so, &e->then) != 0)
		return seterr(err, errlen, "out of memory");
	e->signing_time = evidence_signing_time(o, m, e, &e->then);
	if (e->signing_time && e->signing_time != o->now) {
		smime_verdict_clear(&e->then);
		so.now = e->signing_time;
		if (verify_once(m, &so, &e->then) != 0)
			return seterr(err, errlen, "out of memory");
	}
	so.now = o->now;
	so.db = o->db;
	if (o->db && verify_once(m, &so, &e->today) != 0)
		return seterr(err, errlen, "out of memory");
	switch (e->then.result) {
	case SMIME_PASS:
		break;
	case SMIME_FAIL:
	case SMIME_PERMERROR:
		judge(e, EVIDENCE_INVALID, NULL, e->then.reason);
		return 0;
	default: /* neutral: no From to compare; temperror */
		judge(e, EVIDENCE_UNCHECKED, NULL, e->then.reason);
		return 0;
	}
	e->signature_ok = 1;
	if (o->db == NULL) {
		char en[400];
		snprintf(en, sizeof(en), "revocation not checked: %s",
		         o->db_error ? o->db_error : "no database");
		judge(e, EVIDENCE_UNCHECKED,
		      "status pencabutan tidak dapat diperiksa (basis data)",
		      en);
		return 0;
	}
	if (o->store == NULL &&
	    (own = smime_trust_load(o->ca_file, err, errlen)) == NULL)
		return -1;
	if (chain_at(o, o->store ? o->store : own, e, e->signing_time,
	             &chain) != 0) {
		X509_STORE_free(own);
		sk_X509_pop_free(chain, X509_free);
		return seterr(err, errlen,
		              "out of memory building the signer's chain");
	}
	X509_STORE_free(own);
	if (revocations(o, e, chain, dberr, sizeof(dberr)) != 0) {
		char en[400];
		snprintf(en, sizeof(en), "revocation not checked: %s", dberr);
		judge(e, EVIDENCE_UNCHECKED,
		      "status pencabutan tidak dapat diperiksa (basis data)",
		      en);
	} else
		weigh(o, e);
	sk_X509_pop_free(chain, X509_free);
	return 0;
}

/* ---- the audit row --------------------------------------------------- */

static int audit_row(void *arg, long long id, const struct audit_row *r,
                     const char *hash)
{
	struct evidence *e = arg;
	struct evidence_audit *a = &e->audit;
	int mine = r->cert_serial && e->then.serial &&
	           strcasecmp(r->cert_serial, e->then.serial) == 0;
	int had = a->rows > 0 && a->cert_serial && e->then.serial &&
	          strcasecmp(a->cert_serial, e->then.serial) == 0;

	a->rows++;
	if (had && !mine)
		return 0; /* keep the row of the signer */
	audit_strs_free(a);
	a->id = id;
	a->at = r->at;
	a->queue_id = r->queue_id ? strdup(r->queue_id) : NULL;
	a->action = r->action ? strdup(r->action) : NULL;
	a->cert_serial = r->cert_serial ? strdup(r->cert_serial) : NULL;
	a->result = r->result ? strdup(r->result) : NULL;
	a->hash = hash ? strdup(hash) : NULL;
	return 0;
}

/* The audit row of e->message_id and the chain up to it.  0, or -1 with
 * err on a database error. */
/* The first anchor over the row or a later one, and whether it holds:
 * trusted time for the row (smimectl audit anchor). */
static int nearest_anchor(const struct evidence_opts *o, struct evidence *e,
                          const char *node, char *err, size_t errlen)
{
	struct db_audit_anchor *own = NULL;
	const struct db_audit_anchor *a = o->anchors;
	struct db_audit_check chk;
	const struct db_audit_check *c = o->chain;
	size_t n = o->nanchors;
	int rc = o->chain_rc;

	/* the anchors of the row's own chain (its node's, schema 9): not
	 * given for the run, or given for another node's, read them here */
	if (c == NULL || strcmp(c->node, node) != 0) {
		rc = db_audit_verify_node_anchors(o->db, node, 0, NULL, &chk,
		                                  &own, &n, err, errlen);
		if (rc < 0)
			return -1;
		a = own;
		c = &chk;
	}
	for (size_t i = 0; i < n; i++) {
		if (a[i].audit_id < e->audit.id)
			continue;
		e->audit.anchor_id = a[i].id;
		e->audit.anchor_row = a[i].audit_id;
		e->audit.anchor_time = a[i].gen_time;
		e->audit.anchor_ok =
		        anchor_check(&a[i], c, rc, o->timestamp_ca_file,
		                     e->audit.anchor_why,
		                     sizeof(e->audit.anchor_why)) == ANCHOR_OK;
		if (e->audit.anchor_ok)
			e->audit.anchor_why[0] = '\0';
		break;
	}
	db_audit_anchors_free(own, own ? n : 0);
	return 0;
}

static int audit_check(const struct evidence_opts *o, struct evidence *e,
                       char *err, size_t errlen)
{
	struct db_audit_check own;
	const struct db_audit_check *c = o->chain;
	char node[DB_NODE_MAX + 1];
	int rc = o->chain_rc;

	e->audit.chain = -1;
	if (o->db == NULL || e->message_id == NULL)
		return 0;
	if (db_audit_find(o->db, e->message_id, audit_row, e, err, errlen) != 0)
		return -1;
	if (e->audit.rows == 0)
		return 0;
	/* "the chain up to the row": the chain of the row's node */
	if (db_audit_node_of(o->db, e->audit.id, node, sizeof(node), err,
	                     errlen) < 0)
		return -1;
	if (c == NULL || strcmp(c->node, node) != 0) {
		rc = db_audit_verify_node(o->db, node, 0, NULL, &own, err,
		                          errlen);
		if (rc < 0)
			return -1;
		c = &own;
	}
	e->audit.chain = rc == 0 || c->bad_id > e->audit.id;
	e->audit.broken_id = rc == 0 ? 0 : c->bad_id;
	e->audit.prev_id = rc == 0 ? 0 : c->prev_id;
	e->audit.problem = rc == 0 ? DB_AUDIT_OK : c->problem;
	return nearest_anchor(o, e, node, err, errlen);
}

/* ---- the message ------------------------------------------------------ */

/* The shape of the message from its Content-Type: m filled for a signed
 * one.  0 when it can be verified, else 1 (e judged). */
static int message_shape(struct ev_span hdr, struct ev_span body,
                         struct ev_msg *m, struct evidence *e)
{
	char *ctv = ev_header(hdr, "Content-Type");
	char *cte = ev_header(hdr, "Content-Transfer-Encoding");
	struct ev_span sig;
	struct mime_ct ct;
	const char *why;
	int rc = 1;

	mime_ct_parse(ctv, &ct);
	m->b64 = mime_cte_parse(cte) == MIME_CTE_BASE64;
	m->body = body;
	if (strcmp(ct.type, "multipart") == 0 &&
	    strcmp(ct.subtype, "signed") == 0) {
		e->shape = "multipart/signed";
		why = ev_signed_parts(body, ct.boundary, &m->content, &sig);
		if (why == NULL)
			why = ev_sig_der(sig, &m->sig, &m->siglen);
		if (why)
			judge(e, EVIDENCE_INVALID, NULL, why);
		rc = why != NULL;
	} else if (strcmp(ct.type, "application") == 0 &&
	           (strcmp(ct.subtype, "pkcs7-mime") == 0 ||
	            strcmp(ct.subtype, "x-pkcs7-mime") == 0)) {
		if (ev_is_enveloped(body, m->b64)) {
			e->shape = "enveloped-data";
			judge(e, EVIDENCE_UNCHECKED,
			      "pesan terenkripsi: tanda tangan di dalamnya "
			      "tidak "
			      "dapat diperiksa",
			      "could not check: encrypted (the signature "
			      "inside "
			      "cannot be reached)");
		} else if (body.n > INT_MAX) { /* a memory BIO's limit */
			e->shape = "signed-data";
			judge(e, EVIDENCE_UNCHECKED, "pesan terlalu besar",
			      "could not check: the signed-data is over 2 GiB");
		} else {
			e->shape = "signed-data";
			m->opaque = 1;
			rc = 0;
		}
	} else if (e->stamp) {
		/* inbound_unwrap_opaque: the signature was taken off on
		 * arrival; the stamp and the audit row are what is left */
		char id[700], en[700];
		e->shape = "unsigned";
		snprintf(id, sizeof(id),
		         "tidak ada tanda tangan lagi untuk diperiksa (dibuka "
		         "oleh gateway saat diterima); cap gateway: %s",
		         e->stamp);
		snprintf(en, sizeof(en),
		         "no signature left to check (taken off on arrival); "
		         "the gateway's stamp: %s",
		         e->stamp);
		judge(e, EVIDENCE_UNCHECKED, id, en);
	} else {
		e->shape = "unsigned";
		judge(e, EVIDENCE_UNCHECKED, "pesan tidak bertanda tangan",
		      "not signed: no S/MIME signature found");
	}
	free(ctv);
	free(cte);
	return rc;
}

/* The first Authentication-Results field of our authserv_id in hdr. */
static char *stamp(const struct evidence_opts *o, struct ev_span hdr)
{
	char *v = NULL;

	for (int i = 0; o->authserv_id && i < 64; i++) {
		if ((v = ev_header_n(hdr, "Authentication-Results", i)) ==
		            NULL ||
		    authres_is_ours(v, o->authserv_id))
			return v;
		free(v);
	}
	return NULL;
}

int evidence_check(const struct evidence_opts *o, const unsigned char *msg,
                   size_t len, struct evidence *e, char *err, size_t errlen)
{
	struct ev_span all = { msg, len }, hdr, body;
	struct ev_msg m;
	char dberr[300];
	int rc = 0;

	memset(e, 0, sizeof(*e));
	memset(&m, 0, sizeof(m));
	e->audit.chain = -1;
	ev_split(all, &hdr, &body);
	e->message_id = ev_header(hdr, "Message-ID");
	e->from = ev_header(hdr, "From");
	e->subject = ev_header(hdr, "Subject");
	e->date = ev_header(hdr, "Date");
	e->stamp = stamp(o, hdr);
	if (message_shape(hdr, body, &m, e) == 0)
		rc = judge_signature(o, &m, e, err, errlen);
	/* protected headers (RFC 9788): the copies in the signed part
	 * against the outer header section, once the signature verified */
	if (rc == 0 && e->signature_ok && !m.opaque && m.content.p) {
		ev_hp_compare(m.content, hdr, e);
		if (e->hp_changed && e->status != EVIDENCE_INVALID) {
			char id[300];
			snprintf(id, sizeof(id),
			         "kepala surat %s diubah setelah "
			         "ditandatangani",
			         e->hp_changed);
			judge(e, EVIDENCE_INVALID, id, e->hp_detail);
		}
	}
	if (rc == 0 && audit_check(o, e, dberr, sizeof(dberr)) != 0 &&
	    e->status == EVIDENCE_VALID) {
		char en[400];
		snprintf(en, sizeof(en), "audit log not checked: %s", dberr);
		judge(e, EVIDENCE_UNCHECKED,
		      "log audit tidak dapat diperiksa (basis data)", en);
	}
	if (rc == 0 && e->audit.chain == 0 && e->status == EVIDENCE_VALID)
		e->status = EVIDENCE_INVALID; /* the record does not hold */
	free(m.sig);
	if (rc == 0)
		ev_verdict_text(e);
	return rc;
}
