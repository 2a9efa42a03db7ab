/*
 * Unit tests: lib/smime_verify.c -- incoming S/MIME signatures to RFC 7281
 * verdicts, multipart/signed (detached) mostly: good, tampered, unknown
 * CA, wrong From, revoked, expired, usage, malformed, other encoders
 * (streamed BER, PKCS#7, gpgsm).  Opaque signed-data is in
 * test_smime_verify_opaque.c; the shared PKI in smime_verify_fixture.h.
 */
#include "db.h"
#include "spool.h"
#include "smime_verify_fixture.h"

static void test_good(void)
{
	struct smime_verdict v;
	struct cert_info ci;
	size_t len;
	unsigned char *sig = osign("cms", "good", "", &len);
	char *root = cert_name_text(X509_get_subject_name(ca));

	ok(vdet(content, sig, len, &v) == 0, "good: a verdict is reached");
	ok(is(&v, SMIME_PASS, "signature verified, chain to "),
	   "good: pass, signature verified");
	ok(strstr(v.reason, root) != NULL, "good: the reason names the root %s",
	   root);
	is_str(v.identifier, FROM, "good: identifier is the signer's address");
	is_str(v.serial, "1005", "good: serial in hex");
	ok(v.signer && cert_info_get(v.signer, &ci) == 0, "good: signer kept");
	is_str(v.issuer, ci.issuer, "good: issuer as cert_name_text gives it");
	ok(v.certs && sk_X509_num(v.certs) == 1,
	   "good: the signature's certificates are handed out");
	ok(v.signing_time >= now - 60 && v.signing_time <= time(NULL) + 60,
	   "good: signingTime read (%ld)", (long)v.signing_time);
	ok(!v.opaque, "good: detached");
	cert_info_clear(&ci);
	smime_verdict_clear(&v);
	ok(v.signer == NULL && v.identifier == NULL,
	   "verdict_clear frees and zeroes");
	smime_verdict_clear(NULL);

	opts.from = "MITRA@JabarProv.go.id";
	vdet(content, sig, len, &v);
	ok(is(&v, SMIME_PASS, "verified"), "From compared case-insensitively");
	is_str(v.identifier, FROM, "... identifier lower-case");
	smime_verdict_clear(&v);
	opts.from = FROM;
	free(sig);
	free(root);

	case_signer("rsa", SMIME_PASS, "signature verified", "RSA signer");
	case_signer("noeku", SMIME_PASS, "signature verified",
	            "no EKU at all (RFC 5280: any use)");
}

/* Content through a read callback from a spool that spilled to disk. */
static ssize_t spool_rd(void *arg, void *buf, size_t len)
{
	return spool_read(arg, buf, len);
}

static ssize_t bad_rd(void *arg, void *buf, size_t len)
{
	return -1;
}

static void test_callback(void)
{
	struct spool *s = spool_new(16, fixture_path(""));
	struct smime_verdict v;
	char err[256];
	size_t len;
	unsigned char *sig = osign("cms", "good", "", &len);

	spool_write(s, content, strlen(content), err, sizeof(err));
	spool_rewind(s, err, sizeof(err));
	ok(spool_on_disk(s), "the content spool spilled to disk");
	smime_verify_detached_fn(&opts, spool_rd, s, sig, len, &v);
	ok(is(&v, SMIME_PASS, "signature verified"),
	   "content read through a callback from a spool: pass");
	smime_verdict_clear(&v);
	smime_verify_detached_fn(&opts, bad_rd, NULL, sig, len, &v);
	ok(is(&v, SMIME_TEMPERROR, "cannot read the content"),
	   "a failing read callback: temperror");
	smime_verdict_clear(&v);
	spool_free(s);
	free(sig);
}

static void test_fail(void)
{
	struct smime_verdict v;
	size_t len;
	unsigned char *sig = osign("cms", "good", "", &len);
	char *bad = strdup(content);

	bad[strlen(bad) - 5] ^= 1;
	vdet(bad, sig, len, &v);
	ok(is(&v, SMIME_FAIL, "body altered after signing"),
	   "tampered body: fail");
	is_str(v.serial, "1005", "tampered body: the signer is still named");
	smime_verdict_clear(&v);
	vcheck("", sig, len, SMIME_FAIL, "body altered after signing",
	       "empty content under a good signature: fail");

	opts.from = "andi@banjarkota.go.id";
	vdet(content, sig, len, &v);
	ok(is(&v, SMIME_FAIL,
	      "signer certificate is for " FROM
	      ", not the From address andi@banjarkota.go.id"),
	   "signer is not the From address: fail");
	is_str(v.identifier, FROM,
	       "... the identifier is the certificate's address");
	smime_verdict_clear(&v);
	opts.from = NULL;
	vcheck(content, sig, len, SMIME_NEUTRAL, "no single From address",
	       "no From address: neutral");
	opts.from = FROM;
	free(sig);
	free(bad);

	case_signer("unknown", SMIME_FAIL,
	            "issuer not trusted: CN=Other Root,O=Test Partner",
	            "unknown CA");
	case_signer("server", SMIME_FAIL,
	            "extended key usage lacks emailProtection",
	            "EKU serverAuth only");
	case_signer("encrypt", SMIME_FAIL, "key usage does not allow signing",
	            "keyUsage keyEncipherment only");
	case_signer("lain", SMIME_FAIL,
	            "is for lain@jabarprov.go.id, not the From address",
	            "another partner's certificate");

	sig = osign("cms", "good", "-nocerts", &len);
	vcheck(content, sig, len, SMIME_FAIL,
	       "signer certificate is not in the signature",
	       "signature without the signer certificate: fail");
	free(sig);
}

static void test_chain(void)
{
	struct smime_verdict v;
	X509 *old, *x;
	size_t len;
	unsigned char *sig;
	char flags[512];

	case_signer("viaint", SMIME_FAIL,
	            "issuer not trusted: CN=BSrE Test Issuing",
	            "intermediate missing from signature and bundle");
	snprintf(flags, sizeof(flags), "-certfile '%s'",
	         fixture_path("inter.pem"));
	sig = osign("cms", "viaint", flags, &len);
	vdet(content, sig, len, &v);
	ok(is(&v, SMIME_PASS, "chain to CN=BSrE Test Root"),
	   "intermediate carried in the signature: pass, chain to the root");
	ok(sk_X509_num(v.certs) == 2, "... both certificates handed out");
	smime_verdict_clear(&v);
	opts.ca_file = fixture_path("missing.pem");
	vcheck(content, sig, len, SMIME_TEMPERROR, "trust bundle unreadable",
	       "ca_file missing: temperror");
	opts.ca_file = NULL;
	vcheck(content, sig, len, SMIME_TEMPERROR, "no trust bundle",
	       "no ca_file: temperror");
	opts.ca_file = ca_path;
	free(sig);
	/* an intermediate that expired while the leaf it issued is valid */
	old = fixture_cert_make(int_key, "BSrE Old Issuing", ca, ca_key, 3, now,
	                        -900 * DAY, -10 * DAY,
	                        "basicConstraints:critical,CA:TRUE");
	x = fixture_cert_make(key, "Mitra", old, int_key, 0x3001, now, -DAY,
	                      365 * DAY, leaf_exts(FROM, EKU_OK));
	save("viaold", x, key);
	fixture_pem_write(fixture_path("old.pem"), old, NULL);
	snprintf(flags, sizeof(flags), "-certfile '%s'",
	         fixture_path("old.pem"));
	sig = osign("cms", "viaold", flags, &len);
	vcheck(content, sig, len, SMIME_FAIL,
	       "issuer certificate CN=BSrE Old Issuing,O=Test Partner expired "
	       "20",
	       "expired intermediate: fail, naming it");
	free(sig);
	X509_free(old);
	X509_free(x);
}

static void test_revoked(void)
{
	struct db *db = NULL;
	char err[256], *iss = cert_name_text(X509_get_subject_name(ca));
	char flags[512], dbp[512];
	size_t len;
	unsigned char *sig = osign("cms", "good", "", &len);

	snprintf(dbp, sizeof(dbp), "%s", fixture_db("smime.db"));
	ok(db_open(dbp, DB_CREATE, &db, err, sizeof(err)) == 0,
	   "temp database");
	opts.db = db;
	vcheck(content, sig, len, SMIME_PASS, "verified",
	       "not in revoked_serials: pass");
	/* a row without a revocation date (0), then the CRL entry's date */
	ok(db_serial_revoke_add(db, iss, "1005", "keyCompromise", 0, err,
	                        sizeof(err)) == 0,
	   "revoked_serials row for serial 1005");
	vcheck(content, sig, len, SMIME_FAIL,
	       "certificate revoked (serial 1005 of ", "revoked signer: fail");
	fixture_db_exec(dbp, "UPDATE revoked_serials SET revoked_at ="
	                     " 1772440200 WHERE serial = '1005'");
	vcheck(content, sig, len, SMIME_FAIL,
	       "certificate revoked 2026-03-02 (serial 1005 of ",
	       "revoked signer: fail, with the day of its CRL entry");
	free(sig);

	/* an intermediate listed by the root's CRL */
	snprintf(flags, sizeof(flags), "-certfile '%s'",
	         fixture_path("inter.pem"));
	sig = osign("cms", "viaint", flags, &len);
	vcheck(content, sig, len, SMIME_PASS, "verified",
	       "intermediate not revoked: pass");
	db_serial_revoke_add(db, iss, "02", NULL, now - DAY, err, sizeof(err));
	vcheck(content, sig, len, SMIME_FAIL,
	       "issuer certificate CN=BSrE Test Issuing",
	       "revoked intermediate: fail");
	{
		time_t t = now - DAY;
		struct tm tm;
		char want[64];
		gmtime_r(&t, &tm);
		strftime(want, sizeof(want), "revoked %Y-%m-%d (serial 02 ",
		         &tm);
		vcheck(content, sig, len, SMIME_FAIL, want,
		       "... revoked since yesterday, its CRL entry says");
	}

	/* the table gone: the lookup fails, which is temporary */
	fixture_db_exec(dbp, "DROP TABLE revoked_serials");
	vcheck(content, sig, len, SMIME_TEMPERROR,
	       "revocation list unavailable", "database error: temperror");
	opts.db = NULL;
	db_close(db);
	free(sig);
	free(iss);
}

static void test_expired(void)
{
	struct smime_verdict v;
	X509 *x = fixture_cert_make(key, "Mitra Lama", ca, ca_key, 0x1020, now,
	                            -400 * DAY, -30 * DAY,
	                            leaf_exts(FROM, EKU_OK));
	time_t na = asn1_time_to_time(X509_get0_notAfter(x));
	char want[64], day[16];
	size_t len;
	unsigned char *sig = sign_at(x, key, now - 100 * DAY, 1, &len);

	strftime(day, sizeof(day), "%Y-%m-%d", gmtime(&na));
	snprintf(want, sizeof(want), "certificate expired %s", day);
	vdet(content, sig, len, &v);
	ok(sig && is(&v, SMIME_FAIL, want),
	   "expired signer (signed while valid): fail, %s", want);
	ok(v.signing_time == now - 100 * DAY, "... signingTime as signed");
	smime_verdict_clear(&v);
	opts.now = now - 90 * DAY;
	vcheck(content, sig, len, SMIME_PASS, "verified",
	       "the same message judged at a time it was valid: pass");
	opts.now = now;
	free(sig);
	sig = sign_at(x, key, now - 10 * DAY, 1, &len);
	vcheck(content, sig, len, SMIME_FAIL,
	       "outside the certificate's validity",
	       "signed after the certificate expired: fail");
	free(sig);
	X509_free(x);
	x = fixture_cert_make(key, "Mitra Baru", ca, ca_key, 0x1021, now,
	                      10 * DAY, 400 * DAY, leaf_exts(FROM, EKU_OK));
	sig = sign_at(x, key, now + 20 * DAY, 1, &len);
	vcheck(content, sig, len, SMIME_FAIL, "not valid before",
	       "certificate not yet valid: fail");
	free(sig);
	X509_free(x);
}

static void test_malformed(void)
{
	static const unsigned char garbage[] =
	        "\x30\x82\x7f\xff\x06\x09garbage";
	size_t len;
	unsigned char *sig;

	vcheck(content, garbage, sizeof(garbage), SMIME_PERMERROR,
	       "does not parse", "garbage DER: permerror");
	vcheck(content, garbage, 0, SMIME_PERMERROR, "empty",
	       "empty signature part: permerror");
	vcheck(content, NULL, 0, SMIME_PERMERROR, "empty",
	       "no signature part: permerror");
	fixture_sh("openssl cms -encrypt -binary -in '%s' -outform DER "
	           "-out '%s' '%s'",
	           fixture_path("content"), fixture_path("env.der"),
	           fixture_path("rsa.crt"));
	sig = slurp(fixture_path("env.der"), &len);
	vcheck(content, sig, len, SMIME_PERMERROR, "not a signature",
	       "enveloped-data given as a signature: permerror");
	free(sig);
	sig = osign("cms", "good", "", &len);
	vcheck(content, sig, len / 2, SMIME_PERMERROR, "does not parse",
	       "truncated signature: permerror");
	free(sig);
}

/* Other encoders' shapes of the same signature. */
static void test_encoders(void)
{
	struct smime_verdict v;
	size_t len;
	unsigned char *sig = osign("cms", "good", "-stream", &len);

	ok(sig && len > 2 && sig[1] == 0x80,
	   "streamed signature is indefinite-length BER");
	vcheck(content, sig, len, SMIME_PASS, "verified",
	       "BER signature (streaming encoders, "
	       "x-pkcs7-signature senders): pass");
	free(sig);
	sig = osign("smime", "good", "", &len);
	vcheck(content, sig, len, SMIME_PASS, "verified",
	       "PKCS#7 signature of openssl smime: pass");
	free(sig);
	sig = osign("cms", "good", "-noattr", &len);
	vdet(content, sig, len, &v);
	ok(is(&v, SMIME_PASS, "verified"), "no signed attributes: pass");
	ok(v.signing_time == 0, "... and no signingTime");
	smime_verdict_clear(&v);
	vcheck("tampered\r\n", sig, len, SMIME_FAIL, "body altered",
	       "no signed attributes, tampered body: fail");
	free(sig);
}

/* gpgsm (GnuPG's own CMS code, libksba) signs with the RSA signer in a
 * throw-away GNUPGHOME; its detached signature must verify here too. */
static int gpgsm_sign(const char *gh)
{
	int rc =
	        fixture_sh("rm -rf '%s' && mkdir -m 0700 '%s' && cd '%s' && "
	                   "printf 'disable-crl-checks\ndisable-policy-checks\n"
	                   "disable-ocsp\ndisable-dirmngr\n' >gpgsm.conf && "
	                   "printf 'allow-loopback-pinentry\ns2k-count "
	                   "65536\n' "
	                   ">gpg-agent.conf && openssl pkcs12 -export -legacy "
	                   "-in ../rsa.crt -inkey ../rsa.key -passout "
	                   "pass:test -out rsa.p12 && echo \"$(openssl x509 "
	                   "-in "
	                   "../ca.pem -noout -fingerprint -sha1 | sed "
	                   "'s/^[^=]*=//') S relax\" >trustlist.txt",
	                   gh, gh, gh);

	rc = rc ? rc
	        : fixture_sh("cd '%s' && G='--homedir . --batch --no-tty "
	                     "--pinentry-mode loopback --passphrase-fd 0' && "
	                     "gpgsm $G --import ../ca.pem </dev/null 2>>log && "
	                     "echo test | gpgsm $G --import rsa.p12 2>>log && "
	                     "echo test | gpgsm $G --detach-sign --output "
	                     "sig.der ../content 2>>log && echo test | gpgsm "
	                     "$G --sign --output opq.der ../content 2>>log",
	                     gh);
	fixture_sh("gpgconf --homedir '%s' --kill all", gh);
	return rc;
}

static void test_gpgsm(void)
{
	struct smime_verdict v;
	char gh[512], *got;
	size_t len;
	unsigned char *sig = NULL;
	int rc;

	snprintf(gh, sizeof(gh), "%s", fixture_path("gnupg"));
	/* gpgsm 2.2.40's PKCS#12 reader fails on about 1 in 100 files that
	 * `openssl pkcs12 -export -legacy` writes ("data error at
	 * shrouded_key_bag.decrypted-text", then "decryption failed" for
	 * every charset: 3 of 300 measured).  It depends on the random salt
	 * and IV, not on the key (the same key exported again imports), so
	 * such a file is made again, up to 5 times. */
	for (int attempt = 0;; attempt++) {
		rc = gpgsm_sign(gh);
		if (rc == 0 || attempt == 4 ||
		    fixture_sh("grep -q 'shrouded_key_bag' '%s/log'", gh) != 0)
			break;
		printf("# gpgsm could not read this PKCS#12 file: made "
		       "again\n");
	}
	if (rc != 0)
		fixture_sh("sed 's/^/# /' '%s/log'", gh);
	if (rc == 0) {
		char path[600];
		snprintf(path, sizeof(path), "%s/sig.der", gh);
		sig = slurp(path, &len);
	}
	ok(sig != NULL, "gpgsm --detach-sign made a signature");
	vcheck(content, sig, len, SMIME_PASS, "signature verified",
	       "gpgsm's signature: pass");
	vcheck("Content-Type: text/plain\r\n\r\naltered\r\n", sig, len,
	       SMIME_FAIL, "body altered", "gpgsm's signature, altered: fail");
	free(sig);
	sig = NULL;
	if (rc == 0) {
		char path[600];
		snprintf(path, sizeof(path), "%s/opq.der", gh);
		sig = slurp(path, &len);
	}
	vopq(sig ? sig : (const unsigned char *)"", sig ? len : 0, &v, &got);
	ok(is(&v, SMIME_PASS, "signature verified"),
	   "gpgsm's opaque signed-data (BER): pass");
	is_str(got, content, "... its content handed out");
	smime_verdict_clear(&v);
	free(got);
	free(sig);
}

int main(void)
{
	setup();
	ok(strcmp(smime_result_name(SMIME_TEMPERROR), "temperror") == 0 &&
	           strcmp(smime_result_name(SMIME_NONE), "none") == 0 &&
	           strcmp(smime_result_name((enum smime_result)99), "none") ==
	                   0,
	   "result names are RFC 7281's");
	test_good();
	test_callback();
	test_fail();
	test_chain();
	test_revoked();
	test_expired();
	test_malformed();
	test_encoders();
	test_gpgsm();
	teardown();
	return fixture_end(tap_done());
}
