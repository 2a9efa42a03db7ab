/*
 * Unit tests: lib/cms_dec*.c -- streaming decryption of EnvelopedData and
 * AuthEnvelopedData made by three independent encoders (`openssl cms
 * -encrypt` in every flavour it has, gpgsm --encrypt, NSS cmsutil -E), fed
 * in 1-, 7- and 65536-octet pieces; the recipient list; bounded memory on
 * a 40 MB message; other content types; wrong keys, a tampered tag,
 * truncation, absurd lengths and deep nesting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cms_dec.h"
#include "fixture.h"
#include "tap.h"

static X509 *leaf, *other, *ec, *stranger;
static EVP_PKEY *leaf_key, *other_key, *ec_key, *stranger_key;
static unsigned char plain_md[32];
static size_t plain_len;

struct res {
	int rc;        /* 0: finished */
	int recips_rc; /* try_key's result */
	int matched;
	enum cms_dec_type type;
	int nrecips;
	struct cms_dec_recip first; /* of the entry that matched, or entry 0 */
	char cipher[64];
	unsigned char md[32];
	size_t len;
	int read_before; /* cms_dec_read's result before finish */
	char err[512];
};

static void sha256_file(const char *path, unsigned char *md, size_t *len)
{
	FILE *f = fopen(path, "rb");
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned char buf[65536];
	size_t n;

	*len = 0;
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	while (f && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
		EVP_DigestUpdate(c, buf, n);
		*len += n;
	}
	EVP_DigestFinal_ex(c, md, NULL);
	EVP_MD_CTX_free(c);
	if (f)
		fclose(f);
}

/* Decrypt the file at path fed in pieces of step octets, with cert/key
 * (chosen when the RecipientInfos are read). */
static void dec(const char *path, size_t step, X509 *cert, EVP_PKEY *key,
                struct res *r)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = malloc(step > 65536 ? step : 65536);
	struct cms_dec *d =
	        cms_dec_new(1 << 20, fixture_path(""), r->err, sizeof(r->err));
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t n;
	ssize_t k;
	int fr = 0;

	memset(r, 0, sizeof(*r) - sizeof(r->err));
	r->rc = -1;
	r->recips_rc = -9;
	r->matched = -1;
	r->err[0] = '\0';
	while (d && f && (n = fread(buf, 1, step, f)) > 0) {
		fr = cms_dec_feed(d, buf, n, r->err, sizeof(r->err));
		if (fr == CMS_DEC_RECIPIENTS) {
			const struct cms_dec_recip *e;
			r->nrecips = cms_dec_recipient_count(d);
			snprintf(r->cipher, sizeof(r->cipher), "%s",
			         cms_dec_cipher(d) ? cms_dec_cipher(d) : "");
			r->recips_rc = cms_dec_try_key(d, cert, key, r->err,
			                               sizeof(r->err));
			r->matched = cms_dec_matched(d);
			e = cms_dec_recipient_get(d, r->matched >= 0
			                                     ? r->matched
			                                     : 0);
			if (e)
				r->first = *e;
			if (r->recips_rc != 1)
				break;
			r->read_before = (int)cms_dec_read(d, buf, 1);
		} else if (fr != CMS_DEC_MORE)
			break;
	}
	if (d && (fr == CMS_DEC_MORE ||
	          (fr == CMS_DEC_RECIPIENTS && r->recips_rc == 1)))
		r->rc = cms_dec_finish(d, r->err, sizeof(r->err));
	r->type = cms_dec_type(d);
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	while (r->rc == 0 && (k = cms_dec_read(d, buf, 65536)) > 0) {
		EVP_DigestUpdate(c, buf, (size_t)k);
		r->len += (size_t)k;
	}
	EVP_DigestFinal_ex(c, r->md, NULL);
	if (r->rc == 0 && r->len != cms_dec_plain_size(d))
		r->rc = -2;
	EVP_MD_CTX_free(c);
	cms_dec_free(d);
	free(buf);
	if (f)
		fclose(f);
}

static int same_plain(const struct res *r)
{
	return r->rc == 0 && r->len == plain_len &&
	       memcmp(r->md, plain_md, 32) == 0;
}

/* openssl cms -encrypt of the plaintext into DIR/name.der. */
static int enc(const char *name, const char *opts)
{
	return fixture_sh("openssl cms -encrypt -binary -in %s -outform DER "
	                  "-out %s %s 2>%s",
	                  fixture_path("plain"), fixture_path(name), opts,
	                  fixture_path("enc.err"));
}

/* DIR/name in one of 16 buffers used in turn (fixture_path has 8) */
static const char *p(const char *name)
{
	static char bufs[16][512];
	static int n;
	char *b = bufs[n++ % 16];

	snprintf(b, sizeof(bufs[0]), "%s", fixture_path(name));
	return b;
}

/* Every flavour in 1-, 7- and 64 KiB pieces and in one: decrypts to it. */
static void check_flavour(const char *what, const char *file, X509 *cert,
                          EVP_PKEY *key, enum cms_dec_type type,
                          const char *keyalg, int by_ski)
{
	static const size_t steps[] = { 1, 7, 65536, 1 << 20 };
	struct res r;
	size_t i;

	for (i = 0; i < 4; i++) {
		dec(file, steps[i], cert, key, &r);
		ok(same_plain(&r) && r.type == type && r.recips_rc == 1,
		   "%s, %zu-octet pieces: decrypts to the plaintext", what,
		   steps[i]);
		if (!same_plain(&r))
			printf("#   rc %d try %d len %zu: %s\n", r.rc,
			       r.recips_rc, r.len, r.err);
	}
	ok(r.read_before == -1, "%s: no plaintext before finish", what);
	is_str(r.first.keyalg, keyalg, "%s: key algorithm of the recipient",
	       what);
	ok(by_ski ? r.first.ski != NULL && r.first.issuer == NULL
	          : r.first.issuer != NULL && r.first.serial != NULL &&
	                    r.first.ski == NULL,
	   "%s: recipient named by %s", what,
	   by_ski ? "subjectKeyIdentifier" : "issuer and serial");
}

/* The openssl cms flavours: file, options (the recipient follows), EC
 * recipient, type, key algorithm, named by subjectKeyIdentifier, cipher. */
static const struct flavour {
	const char *file, *opts;
	int ec, auth;
	const char *keyalg;
	int ski;
	const char *cipher;
} flavours[] = {
	{ "o128.der", "-aes-128-cbc", 0, 0, "rsaEncryption", 0, "AES-128-CBC" },
	{ "o192s.der", "-stream -aes-192-cbc", 0, 0, "rsaEncryption", 0,
	  "AES-192-CBC" },
	{ "o256oaep.der",
	  "-aes-256-cbc -keyopt rsa_padding_mode:oaep -keyopt "
	  "rsa_oaep_md:sha256",
	  0, 0, "rsaesOaep", 0, "AES-256-CBC" },
	{ "o3des.der", "-stream -des3", 0, 0, "rsaEncryption", 0,
	  "DES-EDE3-CBC" },
	{ "ogcm.der", "-aes-256-gcm", 0, 1, "rsaEncryption", 0,
	  "AES-256-GCM" },
	{ "ogcm128s.der", "-stream -aes-128-gcm", 0, 1, "rsaEncryption", 0,
	  "AES-128-GCM" },
	{ "oec.der", "-stream -aes-256-cbc", 1, 0,
	  "dhSinglePass-stdDH-sha1kdf-scheme", 0, "AES-256-CBC" },
	{ "oecgcm.der", "-aes-256-gcm", 1, 1,
	  "dhSinglePass-stdDH-sha1kdf-scheme", 0, "AES-256-GCM" },
	{ "okeyid.der", "-keyid -aes-256-cbc", 0, 0, "rsaEncryption", 1,
	  "AES-256-CBC" },
};

static void test_openssl(void)
{
	struct res r;
	char opts[1024];
	size_t i;

	for (i = 0; i < sizeof(flavours) / sizeof(flavours[0]); i++) {
		const struct flavour *v = &flavours[i];
		X509 *cert = v->ec ? ec : leaf;
		EVP_PKEY *key = v->ec ? ec_key : leaf_key;
		/* -keyopt applies to the -recip before it */
		const char *ko = strstr(v->opts, "-keyopt");
		snprintf(opts, sizeof(opts), "%.*s -recip %s %s",
		         ko ? (int)(ko - v->opts) : (int)strlen(v->opts),
		         v->opts, p(v->ec ? "ec.pem" : "leaf.pem"),
		         ko ? ko : "");
		ok(enc(v->file, opts) == 0, "openssl cms -encrypt %s", opts);
		check_flavour(v->opts, p(v->file), cert, key,
		              v->auth ? CMS_DEC_TYPE_AUTH_ENVELOPED
		                      : CMS_DEC_TYPE_ENVELOPED,
		              v->keyalg, v->ski);
		dec(p(v->file), 65536, cert, key, &r);
		is_str(r.cipher, v->cipher, "%s: cipher named", v->opts);
	}
}

/* Three recipients: each key finds its own entry. */
static void test_several(void)
{
	struct res r;
	char opts[1024];

	snprintf(opts, sizeof(opts),
	         "-aes-256-cbc -recip %s -recip %s -recip %s", p("other.pem"),
	         p("leaf.pem"), p("ec.pem"));
	ok(enc("multi.der", opts) == 0, "openssl: three recipients");
	dec(p("multi.der"), 7, other, other_key, &r);
	ok(same_plain(&r) && r.matched == 0 && r.nrecips == 3,
	   "three recipients: first key, entry 0 of 3");
	dec(p("multi.der"), 7, leaf, leaf_key, &r);
	ok(same_plain(&r) && r.matched == 1, "three recipients: entry 1");
	dec(p("multi.der"), 7, ec, ec_key, &r);
	ok(same_plain(&r) && r.matched == 2 && r.first.kind == CMS_DEC_RI_KARI,
	   "three recipients: the EC key is entry 2, a kari");
	dec(p("multi.der"), 65536, stranger, stranger_key, &r);
	ok(r.recips_rc == 0 && r.rc != 0 && r.len == 0,
	   "a certificate not named: not a recipient, nothing decrypted");
	printf("#   %s\n", r.err);
	dec(p("multi.der"), 65536, leaf, other_key, &r);
	ok(r.recips_rc == -1 && strstr(r.err, "does not belong") != NULL &&
	           r.len == 0,
	   "a key that is not the certificate's: refused");
}

/* cms_dec_names over a message to leaf and ec. */
static void test_names(void)
{
	FILE *f = fopen(p("multi.der"), "rb");
	unsigned char buf[65536];
	size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
	char err[256];
	struct cms_dec *d = cms_dec_new(4096, NULL, err, sizeof(err));
	int rc = cms_dec_feed(d, buf, n, err, sizeof(err));
	const struct cms_dec_recip *e = cms_dec_recipient_get(d, 1);

	if (f)
		fclose(f);
	ok(rc == CMS_DEC_RECIPIENTS, "whole message in one piece: recipients");
	ok(cms_dec_names(d, leaf) == 1 && cms_dec_names(d, ec) == 2 &&
	           cms_dec_names(d, stranger) == -1,
	   "cms_dec_names finds each certificate, not the stranger");
	ok(e && X509_NAME_cmp(e->issuer, X509_get_issuer_name(leaf)) == 0 &&
	           ASN1_INTEGER_cmp(e->serial, X509_get0_serialNumber(leaf)) ==
	                   0,
	   "entry 1 carries leaf's issuer and serial");
	ok(cms_dec_recipient_get(d, 3) == NULL &&
	           cms_dec_recipient_get(d, -1) == NULL,
	   "entries out of range: NULL");
	ok(cms_dec_feed(d, "x", 1, err, sizeof(err)) < 0,
	   "feeding before a key is chosen: refused");
	ok(cms_dec_finish(d, err, sizeof(err)) < 0 &&
	           cms_dec_read(d, buf, 1) == -1,
	   "finish without a key: fails, no plaintext");
	cms_dec_free(d);
	cms_dec_free(NULL);
}

static void test_gpgsm_nss(void)
{
	struct res r;
	const char *G = p("gnupg");

	/* gpgsm: the chain root trusted (as tests/lib/verify.sh does) */
	ok(fixture_sh("mkdir -m 700 %s && printf 'disable-crl-checks\\n"
	              "disable-policy-checks\\ndisable-ocsp\\ndisable-"
	              "dirmngr\\n'"
	              " >%s/gpgsm.conf && gpgsm --homedir %s --batch --no-tty "
	              "--import %s/ca.crt.pem %s/leaf.crt.pem 2>/dev/null && "
	              "echo \"$(openssl x509 -in %s/ca.crt.pem -noout "
	              "-fingerprint -sha1 | sed 's/^[^=]*=//; s/://g') S "
	              "relax\" >%s/trustlist.txt && LC_ALL=C gpgsm --homedir "
	              "%s "
	              "--batch --no-tty --cipher-algo AES256 -r "
	              "unit@banjarkota.go.id -o %s --encrypt %s 2>%s; rc=$?; "
	              "gpgconf --homedir %s --kill all; exit $rc",
	              G, G, G, FIXTURE_DATA, FIXTURE_DATA, FIXTURE_DATA, G, G,
	              p("gpgsm.der"), p("plain"), p("gpgsm.err"), G) == 0,
	   "gpgsm --encrypt made a message");
	check_flavour("gpgsm", p("gpgsm.der"), leaf, leaf_key,
	              CMS_DEC_TYPE_ENVELOPED, "rsaEncryption", 0);
	dec(p("gpgsm.der"), 65536, leaf, leaf_key, &r);
	is_str(r.cipher, "AES-256-CBC", "gpgsm: AES-256-CBC");

	ok(fixture_sh(
	           "mkdir %s && certutil -N -d sql:%s --empty-password && "
	           "certutil -A -d sql:%s -n ca -t C,C,C -i %s/ca.crt.pem && "
	           "certutil -A -d sql:%s -n leaf -t ,, -i %s/leaf.crt.pem && "
	           "cmsutil -E -d sql:%s -r unit@banjarkota.go.id -i %s -o %s",
	           p("nss"), p("nss"), p("nss"), FIXTURE_DATA, p("nss"),
	           FIXTURE_DATA, p("nss"), p("plain"), p("nss.der")) == 0,
	   "NSS cmsutil -E made a message");
	check_flavour("NSS cmsutil", p("nss.der"), leaf, leaf_key,
	              CMS_DEC_TYPE_ENVELOPED, "rsaEncryption", 0);
}

/* Write len octets to DIR/name. */
static int put(const char *name, const void *b, size_t len)
{
	FILE *f = fopen(p(name), "wb");
	int rc = f && fwrite(b, 1, len, f) == len ? 0 : -1;

	if (f && fclose(f) != 0)
		rc = -1;
	return rc;
}

static unsigned char *get(const char *name, size_t *len)
{
	FILE *f = fopen(p(name), "rb");
	unsigned char *b = malloc(1 << 20);

	*len = f && b ? fread(b, 1, 1 << 20, f) : 0;
	if (f)
		fclose(f);
	return b;
}

static void test_other_types(void)
{
	static const unsigned char compressed[] = {
		0x30, 0x80, 0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
		0x01, 0x09, 0x10, 0x01, 0x09, 0xa0, 0x80, 0x30, 0x80
	};
	struct res r;

	ok(fixture_sh("openssl cms -sign -binary -in %s -signer %s -inkey %s "
	              "-nodetach -outform DER -out %s",
	              p("plain"), p("leaf.pem"), p("leaf.key"),
	              p("signed.der")) == 0,
	   "openssl cms -sign made signed-data");
	dec(p("signed.der"), 7, leaf, leaf_key, &r);
	ok(r.type == CMS_DEC_TYPE_SIGNED && r.rc != 0 && r.len == 0,
	   "signed-data: reported as such, nothing decrypted");
	is_str(cms_dec_type_name(r.type), "signed-data", "signed-data: named");
	ok(put("comp.der", compressed, sizeof(compressed)) == 0,
	   "a compressed-data start written");
	dec(p("comp.der"), 1, leaf, leaf_key, &r);
	ok(r.type == CMS_DEC_TYPE_COMPRESSED && r.rc != 0,
	   "compressed-data: reported as such");
	ok(fixture_sh("openssl cms -data_create -binary -in %s -outform DER "
	              "-out %s",
	              p("plain"), p("data.der")) == 0,
	   "openssl cms -data_create made data");
	dec(p("data.der"), 65536, leaf, leaf_key, &r);
	ok(r.type == CMS_DEC_TYPE_DATA && r.rc != 0, "data: reported as such");
	put("garbage.der", "Content-Type: text/plain\r\n\r\nhi\r\n", 31);
	dec(p("garbage.der"), 7, leaf, leaf_key, &r);
	ok(r.type == CMS_DEC_TYPE_NOT_CMS && r.rc != 0, "text: not CMS (%s)",
	   r.err);
	put("empty.der", "", 0);
	dec(p("empty.der"), 7, leaf, leaf_key, &r);
	ok(r.type == CMS_DEC_TYPE_NOT_CMS && r.rc != 0 &&
	           strstr(r.err, "empty") != NULL,
	   "empty input: a clear error (%s)", r.err);
}

static void test_hostile(void)
{
	size_t len, cut, bad = 0, i;
	unsigned char *b = get("ogcm.der", &len), *t;
	struct res r;
	char off[64], eoc[64];
	int depth;

	/* the tag is the last element of openssl's definite GCM output */
	b[len - 1] ^= 1;
	put("tag.der", b, len);
	dec(p("tag.der"), 65536, leaf, leaf_key, &r);
	ok(r.recips_rc == 1 && r.rc != 0 && r.len == 0 &&
	           strstr(r.err, "tag") != NULL,
	   "GCM tag flipped: fails, no plaintext (%s)", r.err);
	b[len - 1] ^= 1;
	b[len - 100] ^= 0x40;
	put("ct.der", b, len);
	dec(p("ct.der"), 7, leaf, leaf_key, &r);
	ok(r.rc != 0 && r.len == 0, "GCM ciphertext flipped: fails");
	b[len - 100] ^= 0x40;
	free(b);

	/* a damaged RSA key transport is not told apart at try_key (no
	 * padding oracle): the content then fails (GCM: its tag) */
	fixture_sh_out(off, sizeof(off),
	               "openssl asn1parse -inform DER -in %s | awk '/d=5 "
	               ".*l= 256 prim: OCTET STRING/{print $1+0; exit}'",
	               p("ogcm.der"));
	b = get("ogcm.der", &len);
	if (atol(off) > 0 && (size_t)atol(off) + 100 < len)
		b[atol(off) + 100] ^= 0x10;
	put("ktri.der", b, len);
	dec(p("ktri.der"), 65536, leaf, leaf_key, &r);
	ok(atol(off) > 0 && r.recips_rc == 1 && r.rc != 0 && r.len == 0,
	   "encrypted key damaged: try_key says 1, finish fails (%s)", r.err);
	free(b);

	/* every prefix of a small message (and of a streamed one) fails */
	for (depth = 0; depth < 2; depth++) {
		const char *name = depth ? "o192s.der" : "o128.der";
		b = get(name, &len);
		for (cut = 0; cut < len; cut += cut < 600 ? 1 : 97) {
			put("cut.der", b, cut);
			dec(p("cut.der"), cut < 600 ? 7 : 65536, leaf, leaf_key,
			    &r);
			if (r.rc == 0 || r.len != 0)
				bad++;
		}
		ok(bad == 0, "%s: no prefix decrypts", name);
		free(b);
	}

	/* absurd lengths: the outer SEQUENCE says 2^62 octets; a child longer
	 * than its parent */
	{
		static const unsigned char huge[] = {
			0x30, 0x88, 0x40, 0,    0,    0,    0,    0,    0,
			0,    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
			0x01, 0x07, 0x03, 0xa0, 0x88, 0x3f, 0,    0,    0,
			0,    0,    0,    0,    0x30, 0x80
		};
		static const unsigned char over[] = { 0x30, 0x05, 0x06, 0x09,
			                              0x2a, 0x86, 0x48 };
		put("huge.der", huge, sizeof(huge));
		dec(p("huge.der"), 1, leaf, leaf_key, &r);
		ok(r.rc != 0 && strstr(r.err, "truncated") != NULL,
		   "a length of 2^62: truncated, no allocation (%s)", r.err);
		put("over.der", over, sizeof(over));
		dec(p("over.der"), 65536, leaf, leaf_key, &r);
		ok(r.rc != 0 && strstr(r.err, "enclosing") != NULL,
		   "a child longer than its parent: malformed (%s)", r.err);
		/* a header longer than 16 octets (length octets of zeros):
		 * once asked for more input forever, and the feed spun as
		 * soon as its 64 KiB buffer was full */
		t = calloc(1, 70000);
		t[0] = 0x30;
		t[1] = 0x8f;
		put("longhdr.der", t, 70000);
		free(t);
		dec(p("longhdr.der"), 65536, leaf, leaf_key, &r);
		ok(r.rc != 0 && strstr(r.err, "bad header") != NULL,
		   "a 17-octet header: malformed, not more input (%s)", r.err);
	}

	/* RecipientInfos over CMS_DEC_HEADER_MAX: said at once when the length
	 * is definite, and when they keep coming in an indefinite SET */
	{
		static const unsigned char env[] = {
			0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
			0x0d, 0x01, 0x07, 0x03, 0xa0, 0x80, 0x30, 0x80, 0x02,
			0x01, 0x00, 0x31, 0x83, 0x20, 0x00, 0x00
		};
		size_t n = sizeof(env) + 2 * 600000;
		t = calloc(1, n);
		memcpy(t, env, sizeof(env));
		put("bigset.der", t, n);
		dec(p("bigset.der"), 65536, leaf, leaf_key, &r);
		ok(r.rc != 0 && strstr(r.err, "too large") != NULL,
		   "a 2 MiB RecipientInfos SET: refused (%s)", r.err);
		t[21] = 0x80; /* indefinite; 600000 empty OCTET STRINGs in it */
		for (i = 0; i < 600000; i++)
			t[22 + 2 * i] = 0x04;
		put("bigset.der", t, n);
		dec(p("bigset.der"), 65536, leaf, leaf_key, &r);
		ok(r.rc != 0 && strstr(r.err, "over") != NULL,
		   "RecipientInfos that never end: refused at 1 MiB (%s)",
		   r.err);
		free(t);
	}

	/* nested constructed OCTET STRINGs around the streamed content */
	fixture_sh_out(off, sizeof(off),
	               "openssl asn1parse -inform DER -in %s | awk "
	               "'/d=4 .*cont \\[ 0 \\]/{print $1+0; exit}'",
	               p("o192s.der"));
	fixture_sh_out(eoc, sizeof(eoc),
	               "openssl asn1parse -inform DER -in %s | awk "
	               "'/d=4 .*cont \\[ 0 \\]/{f=1} f && /d=5 .*EOC/{print "
	               "$1+0; exit}'",
	               p("o192s.der"));
	b = get("o192s.der", &len);
	t = malloc(len + 400);
	if (atol(off) <= 0 || atol(eoc) <= atol(off) + 2 ||
	    (size_t)atol(eoc) >= len) {
		printf("# cannot find the encrypted content in o192s.der\n");
		strcpy(off, "0");
		strcpy(eoc, "0");
	}
	for (depth = 20; depth <= 40; depth += 20) {
		if (atol(off) <= 0) {
			ok(0, "nested constructed strings, %d levels", depth);
			continue;
		}
		size_t o = (size_t)atol(off) + 2, e = (size_t)atol(eoc), n = 0;
		memcpy(t, b, o);
		n = o;
		for (i = 0; i < (size_t)depth; i++, n += 2)
			memcpy(t + n, "\x24\x80", 2);
		memcpy(t + n, b + o, e - o);
		n += e - o;
		for (i = 0; i < (size_t)depth; i++, n += 2)
			memcpy(t + n, "\0\0", 2);
		memcpy(t + n, b + e, len - e);
		n += len - e;
		put("deep.der", t, n);
		dec(p("deep.der"), 7, leaf, leaf_key, &r);
		if (depth == 20)
			ok(atol(off) > 0 && same_plain(&r),
			   "content in 20 nested constructed strings: "
			   "decrypts");
		else
			ok(r.rc != 0 && strstr(r.err, "deeper") != NULL,
			   "40 nested constructed strings: refused (%s)",
			   r.err);
	}
	free(t);
	/* trailing garbage after the ContentInfo */
	b = realloc(b, len + 1);
	b[len] = 0x30;
	put("trail.der", b, len + 1);
	dec(p("trail.der"), 65536, leaf, leaf_key, &r);
	ok(r.rc != 0 && r.len == 0, "data after the ContentInfo: refused");
	free(b);
}

static long maxrss_kb(void)
{
	struct rusage u;

	getrusage(RUSAGE_SELF, &u);
	return u.ru_maxrss;
}

/* 40 MB, definite CBC (one primitive of 40 MB) and streamed GCM: the peak
 * RSS grows far less than the message. */
static void test_big(void)
{
	unsigned char md[32];
	size_t len;
	struct res r;
	long before, after;
	char opts[512];

	ok(fixture_sh("head -c 41943040 /dev/urandom >%s", p("big")) == 0,
	   "40 MB of plaintext");
	sha256_file(p("big"), md, &len);
	snprintf(opts, sizeof(opts), "-aes-256-cbc -recip %s", p("leaf.pem"));
	ok(fixture_sh("openssl cms -encrypt -binary -in %s -outform DER -out "
	              "%s %s && openssl cms -encrypt -binary -stream -in %s "
	              "-outform DER -out %s -aes-256-gcm -recip %s",
	              p("big"), p("big.der"), opts, p("big"), p("bigs.der"),
	              p("leaf.pem")) == 0,
	   "40 MB encrypted twice");
	before = maxrss_kb();
	dec(p("big.der"), 65536, leaf, leaf_key, &r);
	ok(r.rc == 0 && r.len == len && memcmp(r.md, md, 32) == 0,
	   "40 MB aes-256-cbc: decrypts (%s)", r.err);
	dec(p("bigs.der"), 65536, leaf, leaf_key, &r);
	ok(r.rc == 0 && r.len == len && memcmp(r.md, md, 32) == 0,
	   "40 MB aes-256-gcm -stream: decrypts (%s)", r.err);
	after = maxrss_kb();
	printf("# peak RSS %ld KiB before, %ld KiB after\n", before, after);
	ok(after - before < 8 * 1024,
	   "decrypting 80 MB raised the peak RSS by %ld KiB (< 8 MiB)",
	   after - before);
	fixture_sh("rm -f %s %s %s", p("big"), p("big.der"), p("bigs.der"));
}

int main(void)
{
	time_t now = time(NULL);
	FILE *f;
	size_t i;

	fixture_dir("cms_dec");
	leaf = fixture_data_cert("leaf.crt.pem");
	leaf_key = fixture_data_key("leaf.key.pem");
	other_key = EVP_RSA_gen(2048);
	stranger_key = EVP_RSA_gen(2048);
	ec_key = EVP_EC_gen("P-256");
	other = fixture_cert_make(other_key, "other", NULL, NULL, 2, now, -60,
	                          86400, "keyUsage:keyEncipherment");
	stranger = fixture_cert_make(stranger_key, "stranger", NULL, NULL, 3,
	                             now, -60, 86400, NULL);
	ec = fixture_cert_make(ec_key, "ec", NULL, NULL, 4, now, -60, 86400,
	                       "keyUsage:keyAgreement");
	if (fixture_pem_write(p("leaf.pem"), leaf, NULL) != 0 ||
	    fixture_key_write(p("leaf.key"), leaf_key) != 0 ||
	    fixture_pem_write(p("other.pem"), other, NULL) != 0 ||
	    fixture_pem_write(p("ec.pem"), ec, NULL) != 0) {
		printf("# cannot write the certificates\n");
		return 1;
	}
	/* a MIME entity of 100 KB, binary octets included */
	f = fopen(p("plain"), "wb");
	fputs("Content-Type: application/octet-stream\r\n\r\n", f);
	for (i = 0; i < 100000; i++)
		fputc((int)((i * 2654435761u) >> 13) & 0xff, f);
	fclose(f);
	sha256_file(p("plain"), plain_md, &plain_len);

	test_big();
	test_openssl();
	test_several();
	test_names();
	test_gpgsm_nss();
	test_other_types();
	test_hostile();

	X509_free(leaf);
	X509_free(other);
	X509_free(ec);
	X509_free(stranger);
	EVP_PKEY_free(leaf_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(ec_key);
	EVP_PKEY_free(stranger_key);
	return fixture_end(tap_done());
}
