/*
 * Unit tests: the message flow (lib/message.c) with a real database, a real
 * key and OpenSSL verifying the result in-process: policy verdicts, header
 * edits, the multipart/signed body, and the signature over the entity.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "certstore.h"
#include "db.h"
#include "fixture.h"
#include "message.h"
#include "snapshot.h"
#include "tap.h"
#include "util.h"

#define DATA "tests/data/unit"
#define ME   "unit@banjarkota.go.id"

static char dir[] = "/tmp/smime-test-msg.XXXXXX";
static char conf[600];

struct outbuf {
	char *data;
	size_t len;
	size_t max_chunk;
	int calls;
};

static int collect(void *arg, const unsigned char *buf, size_t len)
{
	struct outbuf *o = arg;

	o->data = realloc(o->data, o->len + len + 1);
	memcpy(o->data + o->len, buf, len);
	o->len += len;
	o->data[o->len] = '\0';
	if (len > o->max_chunk)
		o->max_chunk = len;
	o->calls++;
	return 0;
}

static void setup(void)
{
	struct db *db;
	struct db_cert dc;
	struct cert_info ci;
	STACK_OF(X509) *sk;
	char err[1024], keypath[600];
	FILE *f;

	if (mkdtemp(dir) == NULL)
		exit(1);
	fixture_sh("cp " DATA "/leaf.key.pem %s/ && chmod 600 %s/leaf.key.pem",
	           dir, dir);
	snprintf(conf, sizeof(conf), "%s/smime.conf", dir);
	/* the store: dir/db, or PostgreSQL under SMIME_TEST_DB_URI */
	if (fixture_db_pg())
		snprintf(keypath, sizeof(keypath), "%s", fixture_db("message"));
	else
		snprintf(keypath, sizeof(keypath), "%s/db", dir);
	f = fopen(conf, "w");
	fprintf(f,
	        "database = \"%s\";\ntemp_dir = \"%s\";\n"
	        "domains = [ \"banjarkota.go.id\" ];\nmax_memory_body = "
	        "4096;\n",
	        keypath, dir);
	fclose(f);
	if (db_open(keypath, DB_CREATE, &db, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	cert_read_file(DATA "/leaf.crt.pem", &sk, err, sizeof(err));
	cert_info_get(sk_X509_value(sk, 0), &ci);
	db_cert_from_info(&dc, &ci);
	dc.kind = "individual";
	dc.mailbox = ME;
	dc.key_backend = "pem";
	snprintf(keypath, sizeof(keypath), "%s/leaf.key.pem", dir);
	dc.key_location = keypath;
	dc.cert_pem = cert_to_pem(sk_X509_value(sk, 0));
	dc.chain_pem = "";
	if (db_cert_add(db, &dc, err, sizeof(err)) != 0 ||
	    db_map(db, ME, dc.id, "individual", "test", err, sizeof(err)) !=
	            0) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	free(dc.cert_pem);
	cert_info_clear(&ci);
	sk_X509_pop_free(sk, X509_free);
	db_close(db);
}

/* Feed a message ("Name: value" lines, folded ones too, blank line, body)
 * through msg. */
static enum msg_verdict feed(struct snapshot *s, const char *text, int outbound,
                             struct msg **out, const char **reason)
{
	struct msg *m = msg_new(s);
	const char *p = text, *body;
	char err[256];
	enum msg_verdict v;

	msg_set_signing_time(m, 1767225600); /* fixed: 2026-01-01 */
	body = strstr(text, "\n\n");
	body = body ? body + 2 : text + strlen(text);
	while (p < body - 1) {
		const char *nl = strchr(p, '\n');
		const char *colon = memchr(p, ':', (size_t)(nl - p));
		while (nl[1] == ' ' || nl[1] == '\t') /* a folded field */
			nl = strchr(nl + 1, '\n');
		char *name = strndup(p, (size_t)(colon - p));
		char *value = strndup(colon + 2, (size_t)(nl - colon - 2));
		msg_header(m, name, value, err, sizeof(err));
		free(name);
		free(value);
		p = nl + 1;
	}
	v = msg_eoh(m, outbound, reason);
	if (v == MSG_SIGN) {
		/* body as the MTA sends it: CRLF */
		for (const char *q = body; *q; q++) {
			if (*q == '\n')
				msg_body(m, (const unsigned char *)"\r", 1, err,
				         sizeof(err));
			msg_body(m, (const unsigned char *)q, 1, err,
			         sizeof(err));
		}
	}
	*out = m;
	return v;
}

/* Verify a multipart/signed body: returns 1 when the detached signature
 * over the first part verifies against the unit root. */
static int verify_body(const char *body, const char *boundary, char *entity_out,
                       size_t entity_len)
{
	char delim[128];
	const char *start, *end, *sig, *sigend;
	BIO *content, *b64, *sigbio;
	CMS_ContentInfo *cms;
	X509_STORE *store = X509_STORE_new();
	int ok;

	snprintf(delim, sizeof(delim), "--%s\r\n", boundary);
	start = strstr(body, delim);
	if (!start)
		return 0;
	start += strlen(delim);
	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", boundary);
	end = strstr(start, delim);
	if (!end)
		return 0;
	if (entity_out)
		snprintf(entity_out, entity_len, "%.*s", (int)(end - start),
		         start);
	sig = strstr(end + strlen(delim), "\r\n\r\n");
	if (!sig)
		return 0;
	sig += 4;
	snprintf(delim, sizeof(delim), "\r\n--%s--", boundary);
	sigend = strstr(sig, delim);
	if (!sigend)
		return 0;
	content = BIO_new_mem_buf(start, (int)(end - start));
	sigbio = BIO_new_mem_buf(sig, (int)(sigend - sig));
	b64 = BIO_new(BIO_f_base64());
	sigbio = BIO_push(b64, sigbio);
	cms = d2i_CMS_bio(sigbio, NULL);
	X509_STORE_load_file(store, DATA "/ca.crt.pem");
	ok = cms &&
	     CMS_verify(cms, NULL, store, content, NULL, CMS_BINARY) == 1;
	if (!ok)
		ERR_print_errors_fp(stderr);
	CMS_ContentInfo_free(cms);
	BIO_free_all(sigbio);
	BIO_free(content);
	X509_STORE_free(store);
	return ok;
}

static const char *edit_value(struct msg *m, const struct msg_edit *e, size_t n,
                              const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].op == EDIT_ADD && strcmp(e[i].name, name) == 0)
			return e[i].value;
	return NULL;
}

static void test_sign(struct snapshot *s, const char *label, const char *text,
                      const char *entity_expect)
{
	struct msg *m;
	const char *reason;
	const struct msg_edit *edits;
	size_t nedits;
	struct outbuf o = { 0 };
	char err[512], boundary[80], entity[65536];
	const char *ct, *b;
	enum msg_verdict v = feed(s, text, 1, &m, &reason);

	ok(v == MSG_SIGN, "%s: verdict sign (%s)", label, reason ? reason : "");
	if (v != MSG_SIGN) {
		msg_free(m);
		return;
	}
	ok(msg_eom(m, collect, &o, &edits, &nedits, err, sizeof(err)) == 0,
	   "%s: eom ok", label);
	ct = edit_value(m, edits, nedits, "Content-Type");
	ok(ct && strstr(ct, "multipart/signed") &&
	           strstr(ct, "protocol=\"application/pkcs7-signature\"") &&
	           strstr(ct, "micalg=sha-256"),
	   "%s: multipart/signed header with protocol and micalg", label);
	b = ct ? strstr(ct, "boundary=\"") : NULL;
	snprintf(boundary, sizeof(boundary), "%.*s",
	         b ? (int)strcspn(b + 10, "\"") : 0, b ? b + 10 : "");
	ok(o.max_chunk <= 65536, "%s: body written in chunks <= 64 KiB", label);
	ok(verify_body(o.data, boundary, entity, sizeof(entity)),
	   "%s: signature verifies over the entity", label);
	if (entity_expect)
		is_str(entity, entity_expect, "%s: signed entity", label);
	ok(strstr(o.data, "filename=\"smime.p7s\"") != NULL,
	   "%s: smime.p7s part", label);
	msg_free(m);
	free(o.data);
}

static void test_verdict(struct snapshot *s, const char *label,
                         const char *text, int outbound, enum msg_verdict want,
                         const char *why)
{
	struct msg *m;
	const char *reason = NULL;
	enum msg_verdict v = feed(s, text, outbound, &m, &reason);

	ok(v == want && (why == NULL || (reason && strstr(reason, why))),
	   "%s (verdict %d, reason: %s)", label, v, reason ? reason : "none");
	msg_free(m);
}

static int refuse(void *arg, const unsigned char *buf, size_t len)
{
	(void)arg;
	(void)buf;
	(void)len;
	return -1;
}

/* on_error = accept: msg_eom digests and signs before it sends anything
 * (two runs), and once a new body went out, an error is a tempfail. */
static void test_error_modes(struct snapshot *s, const char *big)
{
	struct config *cfg = s->cfg;
	enum action saved = cfg->on_error;
	const struct msg_edit *edits;
	size_t nedits;
	struct outbuf o = { 0 };
	const char *reason, *note = NULL;
	char err[512];
	struct msg *m;

	cfg->on_error = ACTION_ACCEPT;
	test_sign(s, "on_error accept (digest run, then the send run)", big,
	          NULL);
	feed(s, big, 1, &m, &reason);
	ok(msg_error_action(m, ACTION_ACCEPT, &note) == ACTION_ACCEPT &&
	           note == NULL,
	   "on_error accept: before the end of the message it applies");
	ok(msg_eom(m, refuse, &o, &edits, &nedits, err, sizeof(err)) != 0,
	   "on_error accept: the MTA refusing the new body fails eom (%s)",
	   err);
	ok(msg_error_action(m, ACTION_ACCEPT, &note) == ACTION_TEMPFAIL &&
	           note && strstr(note, "already"),
	   "... and then accept becomes tempfail: %s", note ? note : "");
	msg_free(m);
	cfg->on_error = saved;
}

int main(void)
{
	static char extra_name[] = "x-test-id";
	static char *extra[] = { extra_name, NULL };
	struct snapshot *s;
	char err[4096], warn[4096];
	STACK_OF(X509) *sk;

	setup();
	ok(snapshot_build(conf, 1, &s, err, sizeof(err), warn, sizeof(warn)) ==
	           0,
	   "snapshot builds (%s)", err);
	ok(s->nentries == 1 && s->nusable == 1, "one usable mailbox");

	/* header protection (RFC 9788, the default): the root part carries
	 * copies of the protected fields and hp="clear" */
	test_sign(s, "plain",
	          "From: Unit <" ME ">\nTo: x@example.org\n"
	          "Subject: hi\nContent-Type: text/plain; charset=us-ascii\n\n"
	          "Hello\nWorld\n",
	          "Content-Type: text/plain; charset=us-ascii; hp=\"clear\"\r\n"
	          "From: Unit <" ME ">\r\nTo: x@example.org\r\n"
	          "Subject: hi\r\n\r\nHello\r\nWorld\r\n");
	test_sign(s, "no MIME headers",
	          "From: " ME "\nSubject: x\n\nline one\n",
	          "Content-Type: text/plain; charset=us-ascii; hp=\"clear\"\r\n"
	          "From: " ME "\r\nSubject: x\r\n\r\nline one\r\n");
	test_sign(s, "protected fields only, folding kept",
	          "From: " ME "\nReceived: from x by y\nX-Mailer: z\n"
	          "Subject: a\n\tb\nMessage-ID: <1@x>\nDate: Mon, 1 Dec 2026 "
	          "10:00:00 +0700\nReferences: <a@x>\n <b@x>\n"
	          "Content-Type: text/plain\n\nbody\n",
	          "Content-Type: text/plain; hp=\"clear\"\r\n"
	          "From: " ME "\r\nSubject: a\r\n\tb\r\n"
	          "Message-ID: <1@x>\r\nDate: Mon, 1 Dec 2026 10:00:00 "
	          "+0700\r\n"
	          "References: <a@x>\r\n <b@x>\r\n\r\nbody\r\n");
	test_sign(s, "a Content-Type with hp already: no header protection",
	          "From: " ME "\nSubject: x\n"
	          "Content-Type: text/plain; hp=\"cipher\"\n\nx\n",
	          "Content-Type: text/plain; hp=\"cipher\"\r\n\r\nx\r\n");
	s->cfg->protected_headers = extra;
	s->cfg->nprotected_headers = 1;
	test_sign(s, "protected_headers: x-test-id too",
	          "From: " ME "\nX-Test-Id: 7\nX-Other: 8\n\nx\n",
	          "Content-Type: text/plain; charset=us-ascii; hp=\"clear\"\r\n"
	          "From: " ME "\r\nX-Test-Id: 7\r\n\r\nx\r\n");
	s->cfg->protected_headers = NULL;
	s->cfg->nprotected_headers = 0;
	/* header_protection = false: the entity as before */
	s->cfg->header_protection = 0;
	test_sign(s, "plain, header_protection = false",
	          "From: Unit <" ME ">\nTo: x@example.org\n"
	          "Subject: hi\nContent-Type: text/plain; charset=us-ascii\n\n"
	          "Hello\nWorld\n",
	          "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
	          "Hello\r\nWorld\r\n");
	test_sign(s, "no MIME headers, header_protection = false",
	          "From: " ME "\nSubject: x\n\nline one\n", "\r\nline one\r\n");
	s->cfg->header_protection = 1;
	test_sign(s, "8bit",
	          "From: " ME "\nContent-Type: text/plain; charset=utf-8\n"
	          "Content-Transfer-Encoding: 8bit\n\nSelamat pagi, Bu "
	          "\xc3\x89lia\n",
	          NULL);
	{
		/* a body larger than max_memory_body spills to disk */
		size_t n = 300000;
		char *big = malloc(n + 200);
		strcpy(big, "From: " ME "\nContent-Type: text/plain\n\n");
		size_t at = strlen(big);
		for (size_t i = 0; i < n; i++)
			big[at + i] =
			        (i % 61 == 60) ? '\n' : (char)('a' + i % 26);
		big[at + n] = '\0';
		test_sign(s, "300 KB spilled body", big, NULL);
		test_error_modes(s, big);
		free(big);
	}

	test_verdict(s, "not outbound passes", "From: " ME "\n\nx\n", 0,
	             MSG_PASS, "not outbound");
	test_verdict(s, "foreign domain passes", "From: a@example.org\n\nx\n",
	             1, MSG_PASS, "not a signing domain");
	test_verdict(s, "already signed passes",
	             "From: " ME "\nContent-Type: multipart/signed; "
	             "protocol=\"application/pkcs7-signature\"; "
	             "boundary=x\n\nx\n",
	             1, MSG_PASS, "already S/MIME signed");
	test_verdict(s, "S/MIME encrypted passes",
	             "From: " ME "\nContent-Type: application/pkcs7-mime; "
	             "smime-type=enveloped-data\n\nx\n",
	             1, MSG_PASS, "S/MIME");
	test_verdict(s, "PGP/MIME signed passes",
	             "From: " ME "\nContent-Type: multipart/signed; "
	             "protocol=\"application/pgp-signature\"; "
	             "boundary=x\n\nx\n",
	             1, MSG_PASS, "PGP/MIME");
	test_verdict(s, "PGP/MIME encrypted passes",
	             "From: " ME "\nContent-Type: multipart/encrypted; "
	             "protocol=\"application/pgp-encrypted\"; "
	             "boundary=x\n\nx\n",
	             1, MSG_PASS, "PGP/MIME");
	test_verdict(s, "unmapped mailbox has no certificate",
	             "From: nobody@banjarkota.go.id\n\nx\n", 1, MSG_NOCERT,
	             "no certificate mapped to nobody@banjarkota.go.id");
	test_verdict(s, "no From passes", "Subject: x\n\nx\n", 1, MSG_PASS,
	             "no From");
	test_verdict(s, "two From headers pass",
	             "From: " ME "\nFrom: " ME "\n\nx\n", 1, MSG_PASS,
	             "more than one From");
	test_verdict(s, "group From is not one mailbox",
	             "From: a@banjarkota.go.id, b@banjarkota.go.id\n\nx\n", 1,
	             MSG_PASS, "more than one mailbox");
	test_verdict(s, "From with display name and comment",
	             "From: \"Andi, S.Kom\" (staf) "
	             "<UNIT@BanjarKota.go.id>\n\nx\n",
	             1, MSG_SIGN, NULL);

	/* certificate checks */
	cert_read_file(DATA "/server.crt.pem", &sk, err, sizeof(err));
	ok(cert_check_signing(sk_X509_value(sk, 0), ME, time(NULL), err,
	                      sizeof(err)) != 0 &&
	           strstr(err, "does not allow e-mail signing"),
	   "serverAuth-only certificate refused (%s)", err);
	sk_X509_pop_free(sk, X509_free);
	cert_read_file(DATA "/leaf.crt.pem", &sk, err, sizeof(err));
	ok(cert_check_signing(sk_X509_value(sk, 0), "other@banjarkota.go.id",
	                      time(NULL), err, sizeof(err)) != 0 &&
	           strstr(err, "does not carry"),
	   "certificate without the address refused (%s)", err);
	ok(cert_check_signing(sk_X509_value(sk, 0), ME,
	                      time(NULL) + 30L * 366 * 86400, err,
	                      sizeof(err)) != 0 &&
	           strstr(err, "expired"),
	   "expired certificate refused (%s)", err);
	ok(cert_check_signing(sk_X509_value(sk, 0), ME, 86400, err,
	                      sizeof(err)) != 0 &&
	           strstr(err, "not valid before"),
	   "not-yet-valid certificate refused (%s)", err);
	ok(cert_check_signing(sk_X509_value(sk, 0), "UNIT@banjarkota.go.id",
	                      time(NULL), err, sizeof(err)) == 0,
	   "address compared case-insensitively");
	sk_X509_pop_free(sk, X509_free);

	snapshot_unref(s);
	fixture_sh("rm -rf %s", dir);
	fixture_cleanup(); /* the PostgreSQL database, if any */
	return tap_done();
}
