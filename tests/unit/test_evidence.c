/*
 * Unit tests: lib/evidence*.c -- the check of a disputed message: a
 * multipart/signed message (CRLF and LF), opaque signed-data, the body
 * altered, a broken structure, unsigned and encrypted mail, revocation
 * after and before the signing time (CRL entries and the certificates
 * table), no database, the audit row of the Message-ID (db_audit_find)
 * and a chain broken before it, the header and reason helpers.  The PKI
 * is smime_verify_fixture.h's.
 */
#include "db.h"
#include "db_int.h"
#include "evidence.h"
#include "evidence_int.h"
#include "smime_verify_fixture.h"

#include <openssl/pem.h>

static X509 *good;
static time_t st; /* the signing time of the messages */

static char *b64(const unsigned char *p, size_t n)
{
	BIO *f = BIO_new(BIO_f_base64()), *m = BIO_new(BIO_s_mem());
	char *data, *s;
	long len;

	BIO_push(f, m);
	BIO_write(f, p, (int)n);
	BIO_flush(f);
	len = BIO_get_mem_data(m, &data);
	s = strndup(data, (size_t)len);
	BIO_free_all(f);
	return s;
}

/* A multipart/signed message around content signed at t, Message-ID mid;
 * lf: LF line ends throughout. */
static char *signed_msg(const char *mid, time_t t, int lf)
{
	size_t len;
	unsigned char *sig = sign_at(good, key, t, 1, &len);
	char *s64 = sig ? b64(sig, len) : NULL, *m = NULL, *w;
	size_t n;

	if (s64 == NULL ||
	    asprintf(&m,
	             "From: Mitra <" FROM ">\r\nMessage-ID: %s\r\n"
	             "Subject: Balasan\r\n MULTILINE\r\n"
	             "Content-Type: multipart/signed; "
	             "protocol=\"application/pkcs7-signature\"; "
	             "micalg=sha-256; boundary=\"b0\"\r\n\r\n"
	             "preamble\r\n--b0\r\n%s\r\n--b0\r\n"
	             "Content-Type: application/pkcs7-signature; "
	             "name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n"
	             "\r\n%s\r\n--b0--\r\n",
	             mid, content, s64) < 0)
		m = NULL;
	free(sig);
	free(s64);
	if (m && lf) { /* drop every CR */
		for (n = 0, w = m; m[n]; n++)
			if (m[n] != '\r')
				*w++ = m[n];
		*w = '\0';
	}
	return m;
}

static int check(const struct evidence_opts *o, const char *msg,
                 struct evidence *e)
{
	char err[256];

	return evidence_check(o, (const unsigned char *)msg, strlen(msg), e,
	                      err, sizeof(err));
}

static struct db *db_new(const char *name)
{
	struct db *db = NULL;
	char err[256];

	if (db_open(fixture_db(name), DB_CREATE, &db, err, sizeof(err)))
		printf("# %s: %s\n", name, err);
	return db;
}

static void test_good(struct evidence_opts *o)
{
	struct evidence e;
	char *m = signed_msg("<e1@jabarprov.go.id>", st, 0);

	ok(m && check(o, m, &e) == 0, "good: checked");
	ok(e.status == EVIDENCE_VALID && e.signature_ok, "good: valid (%s)",
	   e.reason_en);
	is_str(e.shape, "multipart/signed", "good: shape");
	is_str(e.message_id, "<e1@jabarprov.go.id>", "good: Message-ID");
	is_str(e.subject, "Balasan MULTILINE", "good: Subject unfolded");
	ok(e.signing_time == st, "good: the signing time is signingTime");
	is_str(e.time_source, "signingTime", "good: its source");
	ok(e.chain && e.chain[0] && e.chain[1] && !e.chain[2],
	   "good: a chain of two");
	ok(!e.revoked && e.today.result == SMIME_PASS, "good: not revoked");
	ok(strncmp(e.verdict, "SAH / VALID: pesan <e1@", 23) == 0,
	   "good: the verdict (%.40s)", e.verdict);
	ok(strstr(e.verdict, "/ message <e1@jabarprov.go.id> was signed by") !=
	           NULL,
	   "good: ... in English too");
	evidence_clear(&e);
	ok(e.message_id == NULL && e.then.signer == NULL, "clear zeroes");
	evidence_clear(NULL);
	free(m);

	m = signed_msg("<e1@jabarprov.go.id>", st, 1);
	ok(m && check(o, m, &e) == 0 && e.status == EVIDENCE_VALID,
	   "LF line ends: canonicalized to CRLF, valid (%s)", e.reason_en);
	evidence_clear(&e);
	free(m);
}

/* Copy len octets of p to m + at; returns the new end. */
static size_t put(char *m, size_t at, const void *p, size_t len)
{
	memcpy(m + at, p, len);
	return at + len;
}

/* A multipart/signed message whose signature part is binary DER (a
 * Content-Transfer-Encoding some clients write); *len its length. */
static char *binary_msg(size_t *len)
{
	static const char head[] =
	        "From: " FROM "\r\nContent-Type: multipart/signed; "
	        "protocol=\"application/pkcs7-signature\"; boundary=b1\r\n"
	        "\r\n--b1\r\n";
	static const char mid[] = "\r\n--b1\r\nContent-Type: application/"
	                          "pkcs7-signature\r\nContent-Transfer-"
	                          "Encoding: binary\r\n\r\n";
	static const char tail[] = "\r\n--b1--\r\n";
	size_t dl = 0, n;
	unsigned char *der = sign_at(good, key, st, 1, &dl);
	char *m = der ? malloc(sizeof(head) + sizeof(content) + sizeof(mid) +
	                       dl + sizeof(tail))
	              : NULL;

	*len = 0;
	if (m == NULL) {
		free(der);
		return NULL;
	}
	n = put(m, 0, head, sizeof(head) - 1);
	n = put(m, n, content, sizeof(content) - 1);
	n = put(m, n, mid, sizeof(mid) - 1);
	n = put(m, n, der, dl);
	n = put(m, n, tail, sizeof(tail) - 1);
	free(der);
	*len = n;
	return m;
}

static void test_bad(struct evidence_opts *o)
{
	struct evidence e;
	char *m = signed_msg("<e2@jabarprov.go.id>", st, 0), *p;

	p = m ? strstr(m, "nomor 7") : NULL;
	if (p)
		p[6] = '8';
	ok(p && check(o, m, &e) == 0 && e.status == EVIDENCE_INVALID,
	   "body altered: invalid");
	is_str(e.reason_en, "body altered after signing", "... named");
	is_str(e.reason_id, "isi pesan diubah setelah ditandatangani",
	       "... in Indonesian");
	ok(!e.signature_ok &&
	           strncmp(e.verdict, "TIDAK SAH / INVALID", 19) == 0,
	   "... TIDAK SAH / INVALID");
	evidence_clear(&e);
	free(m);

	m = signed_msg("<e3@jabarprov.go.id>", st, 0);
	p = m ? strstr(m, "--b0\r\nContent-Type: application") : NULL;
	if (p)
		memcpy(p, "--b0--", 6);
	ok(p && check(o, m, &e) == 0 && e.status == EVIDENCE_INVALID,
	   "one part only: invalid");
	is_str(e.reason_en, "multipart/signed has not two parts", "... named");
	evidence_clear(&e);
	free(m);

	check(o, "From: a@b\r\nSubject: x\r\n\r\nbody\r\n", &e);
	ok(e.status == EVIDENCE_UNCHECKED, "unsigned: could not check");
	is_str(e.shape, "unsigned", "... shape");
	ok(strncmp(e.verdict, "TIDAK DAPAT DIPERIKSA / COULD NOT CHECK", 39) ==
	           0,
	   "... the verdict");
	evidence_clear(&e);

	o->authserv_id = "mx.banjarkota.go.id";
	check(o,
	      "From: a@b\r\nAuthentication-Results: mx.example.org; "
	      "smime=fail\r\nAuthentication-Results: mx.banjarkota.go.id; "
	      "smime=pass\r\n (signature verified)\r\n\r\nbody\r\n",
	      &e);
	is_str(e.stamp, "mx.banjarkota.go.id; smime=pass (signature verified)",
	       "unwrapped on arrival: our stamp found, a foreign one skipped");
	ok(e.status == EVIDENCE_UNCHECKED &&
	           strstr(e.reason_en, "no signature left to check") != NULL,
	   "... could not check, says why");
	evidence_clear(&e);
	o->authserv_id = NULL;

	size_t bl;
	char err[256], *bm = binary_msg(&bl);
	ok(bm && bl > 500 &&
	           evidence_check(o, (unsigned char *)bm, bl, &e, err,
	                          sizeof(err)) == 0 &&
	           e.status == EVIDENCE_VALID,
	   "a binary signature part (%zu octets): valid (%s)", bl, e.reason_en);
	evidence_clear(&e);
	free(bm);

	evidence_unreadable(&e, "x.eml: No such file or directory");
	ok(e.status == EVIDENCE_UNCHECKED &&
	           strstr(e.verdict, "No such file") != NULL,
	   "unreadable: could not check, says why");
	evidence_clear(&e);
}

static void test_shapes(struct evidence_opts *o)
{
	STACK_OF(X509) *to = sk_X509_new_null();
	BIO *in = BIO_new_mem_buf(content, -1), *out = BIO_new(BIO_s_mem());
	CMS_ContentInfo *env;
	struct evidence e;
	unsigned char *der;
	size_t len;
	char *m = NULL, *s64, *data;
	long n;

	der = sign_at(good, key, st, 0, &len);
	s64 = der ? b64(der, len) : NULL;
	if (s64 && asprintf(&m,
	                    "From: " FROM "\r\nContent-Type: application/"
	                    "pkcs7-mime; smime-type=signed-data\r\n"
	                    "Content-Transfer-Encoding: base64\r\n\r\n%s",
	                    s64) < 0)
		m = NULL;
	ok(m && check(o, m, &e) == 0 && e.status == EVIDENCE_VALID,
	   "opaque signed-data: valid (%s)", e.reason_en);
	is_str(e.shape, "signed-data", "... shape");
	evidence_clear(&e);
	free(der);
	free(s64);
	free(m);

	/* encrypted to an RSA certificate */
	X509 *rc = fixture_cert_make(rsa_key, "Enc", ca, ca_key, 0x3001, now,
	                             -DAY, DAY, leaf_exts(FROM, NULL));
	sk_X509_push(to, rc);
	env = CMS_encrypt(to, in, EVP_aes_256_cbc(), CMS_BINARY);
	m = NULL;
	if (env && i2d_CMS_bio(out, env) &&
	    (n = BIO_get_mem_data(out, &data)) > 0 &&
	    (s64 = b64((unsigned char *)data, (size_t)n)) != NULL) {
		if (asprintf(&m,
		             "From: " FROM "\r\nContent-Type: application/"
		             "x-pkcs7-mime; name=smime.p7m\r\n"
		             "Content-Transfer-Encoding: base64\r\n\r\n%s",
		             s64) < 0)
			m = NULL;
		free(s64);
	}
	ok(m && check(o, m, &e) == 0 && e.status == EVIDENCE_UNCHECKED,
	   "encrypted (no smime-type): could not check");
	is_str(e.shape, "enveloped-data", "... read from the CMS type");
	evidence_clear(&e);
	free(m);
	CMS_ContentInfo_free(env);
	sk_X509_pop_free(to, X509_free);
	BIO_free(in);
	BIO_free(out);
}

static void test_revoked(struct evidence_opts *o)
{
	char *issuer = cert_name_text(X509_get_issuer_name(good)), err[256];
	char *m = signed_msg("<e4@jabarprov.go.id>", st, 0);
	struct db *before = db_new("before.db");
	struct evidence e;

	ok(db_serial_revoke_add(o->db, issuer, "1005", "keyCompromise",
	                        st + 600, err, sizeof(err)) == 0,
	   "a CRL entry 10 minutes after the signature");
	ok(m && check(o, m, &e) == 0 && e.status == EVIDENCE_VALID,
	   "revoked after signing: valid (%s)", e.reason_en);
	ok(e.revoked && e.revoked_at == st + 600 &&
	           strcmp(e.revoked_by, "crl") == 0,
	   "... revoked, since when, by the CRL");
	ok(strncmp(e.reason_en, "valid at signing time ", 22) == 0 &&
	           strstr(e.reason_en, ", revoked since ") != NULL,
	   "... valid at signing time, revoked since");
	ok(strstr(e.verdict, "SAH PADA SAAT PENANDATANGANAN / VALID AT "
	                     "SIGNING TIME") != NULL,
	   "... the verdict");
	ok(e.today.result == SMIME_FAIL, "... today it fails");
	evidence_clear(&e);

	o->db = before;
	ok(before && db_serial_revoke_add(before, issuer, "1005", NULL,
	                                  st - 600, err, sizeof(err)) == 0,
	   "a CRL entry 10 minutes before the signature");
	ok(check(o, m, &e) == 0 && e.status == EVIDENCE_INVALID,
	   "revoked before signing: invalid");
	ok(strstr(e.reason_en, "before the signature") != NULL,
	   "... named (%s)", e.reason_en);
	evidence_clear(&e);
	db_close(before);

	o->db = NULL;
	o->db_error = "no such file";
	ok(check(o, m, &e) == 0 && e.status == EVIDENCE_UNCHECKED &&
	           e.signature_ok,
	   "no database: could not check, the signature itself verified");
	is_str(e.reason_en, "revocation not checked: no such file", "... why");
	evidence_clear(&e);
	free(m);
	free(issuer);
}

/* The city's own certificate, revoked with smimectl revoke (the
 * certificates table), 5 minutes after the signature. */
static void test_revoked_own(struct evidence_opts *o)
{
	char err[256];
	struct db *db = db_new("own.db");
	long long id =
	        db ? fixture_db_signer(db, good, NULL, fixture_path("good.key"),
	                               FROM, err, sizeof(err))
	           : -1;
	char *m = signed_msg("<e5@jabarprov.go.id>", st, 0);
	struct evidence e;

	ok(id > 0 && db_revoke_id(db, id, "keyCompromise", st + 300, "test",
	                          err, sizeof(err)) == 1,
	   "the city's certificate revoked 5 minutes after");
	o->db = db;
	ok(m && check(o, m, &e) == 0 && e.status == EVIDENCE_VALID &&
	           e.revoked && e.revoked_at == st + 300,
	   "... valid at signing time (%s)", e.reason_en);
	is_str(e.revoked_by, "certificates", "... from the certificates table");
	ok(e.today.result == SMIME_FAIL &&
	           strstr(e.today.reason, "smimectl revoke") != NULL,
	   "... today: revoked (%s)", e.today.reason);
	evidence_clear(&e);
	free(m);
	db_close(db);
}

static int count_rows(void *arg, long long id, const struct audit_row *r,
                      const char *hash)
{
	(void)id;
	(void)r;
	(void)hash;
	return ++*(int *)arg >= 5;
}

static void test_audit(struct evidence_opts *o)
{
	struct audit_row r = { .at = st,
		               .queue_id = "Q1",
		               .message_id = "<e6@jabarprov.go.id>",
		               .from_addr = FROM,
		               .action = "verified",
		               .cert_serial = "1005",
		               .result = "pass" };
	struct audit_row other = r;
	struct db *db = db_new("audit.db");
	char err[256], *m = signed_msg("<e6@jabarprov.go.id>", st, 0);
	struct evidence e;
	int n = 0;

	other.cert_serial = "99";
	other.queue_id = "Q0";
	ok(db && db_audit_add(db, &other, err, sizeof(err)) == 0 &&
	           db_audit_add(db, &r, err, sizeof(err)) == 0 &&
	           db_audit_add(db, &other, err, sizeof(err)) == 0,
	   "three rows with the Message-ID, the second of the signer");
	ok(db_audit_find(db, "<e6@jabarprov.go.id>", count_rows, &n, err,
	                 sizeof(err)) == 0 &&
	           n == 3,
	   "db_audit_find: three rows (%d)", n);
	n = 0;
	db_audit_find(db, "<nosuch@x>", count_rows, &n, err, sizeof(err));
	ok(n == 0, "db_audit_find: none for another Message-ID");
	o->db = db;
	o->chain = NULL;
	ok(m && check(o, m, &e) == 0 && e.status == EVIDENCE_VALID,
	   "audit: valid");
	ok(e.audit.rows == 3 && e.audit.id == 2 && e.audit.chain == 1,
	   "... row 2 (the signer's serial), chain intact (%d %lld %d)",
	   e.audit.rows, e.audit.id, e.audit.chain);
	is_str(e.audit.queue_id, "Q1", "... its queue id");
	ok(e.audit.hash && strlen(e.audit.hash) == 64, "... its hash");
	evidence_clear(&e);

	/* a chain broken at row 1 (before the row), then at row 3 (after) */
	struct db_audit_check c = { .bad_id = 1, .problem = DB_AUDIT_CHANGED };
	o->chain = &c;
	o->chain_rc = 1;
	ok(check(o, m, &e) == 0 && e.status == EVIDENCE_INVALID &&
	           e.signature_ok && e.audit.chain == 0 &&
	           e.audit.broken_id == 1,
	   "chain broken before the row: invalid, the signature intact");
	ok(strstr(e.verdict, "audit log broken at row 1") != NULL,
	   "... the verdict names row 1");
	evidence_clear(&e);
	c.bad_id = 3;
	ok(check(o, m, &e) == 0 && e.status == EVIDENCE_VALID &&
	           e.audit.chain == 1,
	   "broken after the row: the chain up to it holds");
	evidence_clear(&e);

	/* schema 9: the chain up to the row is its node's; one given for
	 * another node, broken before the row, is not that chain */
	snprintf(c.node, sizeof(c.node), "mx2");
	c.bad_id = 1;
	ok(check(o, m, &e) == 0 && e.status == EVIDENCE_VALID &&
	           e.audit.chain == 1,
	   "another node's chain broken: the row's own chain holds");
	evidence_clear(&e);
	o->chain = NULL;
	ok(db &&
	           db_exec_sql(db, "UPDATE audit SET node = 'mx2' WHERE id = 2",
	                       err, sizeof(err)) == 0 &&
	           check(o, m, &e) == 0 && e.status == EVIDENCE_INVALID &&
	           e.audit.chain == 0 && e.audit.broken_id == 2,
	   "the row moved to node mx2's chain: broken at it (%lld)",
	   e.audit.broken_id);
	evidence_clear(&e);
	free(m);
	db_close(db);
}

static void test_helpers(void)
{
	const char *h = "Subject: a\r\n\tb \r\nsubject2: no\r\nFrom:x\r\n";
	struct ev_span hs = { (const unsigned char *)h, strlen(h) };
	char *v = ev_header(hs, "subject");

	is_str(v, "a\tb", "ev_header: unfolded, trimmed, any case");
	free(v);
	v = ev_header(hs, "From");
	is_str(v, "x", "ev_header: no space after the colon");
	free(v);
	ok(ev_header(hs, "Date") == NULL, "ev_header: absent is NULL");
	is_str(ev_reason_id("certificate expired 2020-01-01"),
	       "masa berlaku sertifikat sudah habis", "ev_reason_id: a prefix");
	is_str(ev_reason_id("something new"),
	       "tanda tangan tidak dapat diterima",
	       "ev_reason_id: the general words");
	is_str(evidence_status_name(EVIDENCE_INVALID), "invalid",
	       "status names");
	{
		/* delimiters on adjacent lines (found by fuzz_evidence: the
		 * signature part's length wrapped and ev_sig_der read far past
		 * the buffer) */
		const char *b = "--b\r\n--b\r\n--b--\r\n";
		struct ev_span bs = { (const unsigned char *)b, strlen(b) };
		struct ev_span c = { 0 }, sg = { 0 };
		const char *why = ev_signed_parts(bs, "b", &c, &sg);
		ok(why && strstr(why, "empty part") && sg.n == 0,
		   "ev_signed_parts: adjacent delimiters are empty parts (%s)",
		   why ? why : "accepted");
		b = "--b\r\nx\r\n--b\r\n--b--\r\n";
		bs.p = (const unsigned char *)b;
		bs.n = strlen(b);
		why = ev_signed_parts(bs, "b", &c, &sg);
		ok(why && strstr(why, "empty part") && sg.n == 0,
		   "ev_signed_parts: an empty signature part (%s)",
		   why ? why : "accepted");
	}
}

int main(void)
{
	struct evidence_opts o = { 0 };
	struct db *main_db;
	FILE *f;

	setup();
	f = fopen(fixture_path("good.crt"), "r");
	good = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	st = now - 3600;
	o.ca_file = ca_path;
	o.now = now;
	o.db = main_db = db_new("e.db");
	ok(good && o.db, "fixture: the signer and a database");
	test_good(&o);
	test_bad(&o);
	test_shapes(&o);
	test_revoked(&o);
	o.db_error = NULL;
	test_revoked_own(&o);
	test_audit(&o);
	test_helpers();
	X509_free(good);
	db_close(main_db);
	teardown();
	return fixture_end(tap_done());
}
