/*
 * Unit tests: lib/inbound.c through inbound.h -- partner mail made with
 * openssl cms at test time (encrypted only, signed then encrypted,
 * AES-256-CBC and GCM, RSA-OAEP, to one or two internal mailboxes), fed
 * through inb_* in chunks; the new body, the inner signature still good
 * with openssl cms -verify, the header edits (the stamp, forged ones out,
 * Content-* replaced), the not-decrypted case, and bad input stamped
 * permerror and left alone; opaque signed-data (unwrapped or not, inside
 * encryption too), a revoked certificate's key, the Subject tag,
 * on_bad_signature = reject, a 3 MB message, plain mail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "db.h"
#include "fixture.h"
#include "inbound.h"
#include "snapshot.h"
#include "tap.h"

#define DOMAIN  "banjarkota.go.id"
#define AUTHSRV "mx." DOMAIN
#define PARTNER "mitra@jabarprov.go.id"

static time_t now;
static struct snapshot *snap;

/* What inb_eom wrote. */
struct buf {
	char *p;
	size_t n, max_chunk;
};

static int buf_write(void *arg, const unsigned char *p, size_t n)
{
	struct buf *b = arg;
	char *np = realloc(b->p, b->n + n + 1);

	if (np == NULL)
		return -1;
	memcpy(np + b->n, p, n);
	b->p = np;
	b->n += n;
	b->p[b->n] = '\0';
	if (n > b->max_chunk)
		b->max_chunk = n;
	return 0;
}

/* A certificate name@dom from ca with an RSA key in DIR/name.{crt,key},
 * mapped in db when db is not NULL. */
static long long person(struct db *db, X509 *ca, EVP_PKEY *cakey,
                        const char *name, const char *dom, long serial)
{
	char addr[128], ext[512], f[64], err[256];
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	X509 *x;
	long long id = 0;

	snprintf(addr, sizeof(addr), "%s@%s", name, dom);
	snprintf(ext, sizeof(ext),
	         "keyUsage:critical,digitalSignature,keyEncipherment|"
	         "extendedKeyUsage:emailProtection|subjectAltName:email:%s",
	         addr);
	x = fixture_cert_make(k, name, ca, cakey, serial, now, -86400,
	                      365 * 86400L, ext);
	snprintf(f, sizeof(f), "%s.crt", name);
	fixture_pem_write(fixture_path(f), x, NULL);
	snprintf(f, sizeof(f), "%s.key", name);
	fixture_key_write(fixture_path(f), k);
	if (db && (id = fixture_db_signer(db, x, NULL, fixture_path(f), addr,
	                                  err, sizeof(err))) < 0)
		printf("# %s: %s\n", addr, err);
	X509_free(x);
	EVP_PKEY_free(k);
	return id;
}

/* A snapshot of the configuration file name with the lines extra. */
static char dbpath[512]; /* the store: fixture_db("db") */

static struct snapshot *build(const char *name, const char *extra)
{
	char text[2048], err[512];
	struct snapshot *sn = NULL;

	snprintf(text, sizeof(text),
	         "database = \"%s\";\ntemp_dir = \"%s\";\nca_file = \"%s\";\n"
	         "domains = [ \"" DOMAIN "\" ];\nauthserv_id = \"" AUTHSRV
	         "\";\n%s",
	         dbpath, fixture_path(""), fixture_path("ca.pem"), extra);
	fixture_write(fixture_path(name), text, 0600);
	if (snapshot_build(fixture_path(name), 0, &sn, err, sizeof(err), NULL,
	                   0) != 0) {
		printf("# snapshot: %s\n", err);
		exit(1);
	}
	return sn;
}

static void setup(void)
{
	char err[512];
	EVP_PKEY *cakey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *ca = fixture_cert_make(cakey, "Inbound CA", NULL, NULL, 1, now,
	                             -86400, 3650 * 86400L,
	                             "basicConstraints:critical,CA:TRUE|"
	                             "keyUsage:critical,keyCertSign,cRLSign");
	struct db *db;

	fixture_pem_write(fixture_path("ca.pem"), ca, NULL);
	snprintf(dbpath, sizeof(dbpath), "%s", fixture_db("db"));
	if (db_open(dbpath, DB_CREATE, &db, err, sizeof(err))) {
		printf("# %s\n", err);
		exit(1);
	}
	person(db, ca, cakey, "andi", DOMAIN, 0x1A2B);
	person(db, ca, cakey, "budi", DOMAIN, 0x1A2C);
	if (db_revoke_id(db, person(db, ca, cakey, "citra", DOMAIN, 0x1A2D),
	                 "keyCompromise", now, "test", err, sizeof(err)) != 1)
		printf("# revoke: %s\n", err);
	person(NULL, ca, cakey, "mitra", "jabarprov.go.id", 0x1005);
	db_close(db);
	snap = build("smime.conf", "");
	X509_free(ca);
	EVP_PKEY_free(cakey);
}

/* The file at path with every line end CRLF, NUL-terminated. */
static char *slurp_crlf(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *out = NULL;
	size_t n = 0, cap = 0;
	int c, prev = 0;

	if (f == NULL)
		return NULL;
	while ((c = getc(f)) != EOF) {
		if (n + 3 > cap &&
		    (out = realloc(out, cap = cap * 2 + 4096)) == NULL)
			break;
		if (c == '\n' && prev != '\r')
			out[n++] = '\r';
		out[n++] = (char)c;
		prev = c;
	}
	fclose(f);
	if (out)
		out[n] = '\0';
	*len = n;
	return out;
}

struct run {
	struct inb *inb;
	enum inb_verdict verdict;
	int rc;
	const struct msg_edit *edits;
	size_t nedits;
	const struct inb_result *res;
	struct buf out;
	char err[512];
};

/* Feed the message file path (its header fields, then its body in chunks
 * of chunk octets) after the extra header fields, to rcpts. */
static const char *run_subject = "Rapat koordinasi";

static void run_msg(struct run *r, const char *path, const char *const *rcpts,
                    size_t chunk)
{
	const char *extra[][2] = {
		{ "From", "Mitra <" PARTNER ">" },
		{ "Subject", run_subject },
		{ "Authentication-Results", AUTHSRV "; smime=pass (forged)" },
		{ "Authentication-Results", "other.example; spf=pass" },
		{ "Authentication-Results", " " AUTHSRV "; dkim=pass" }
	};
	size_t len = 0, i = 0;
	char *m = slurp_crlf(path, &len);

	memset(r, 0, sizeof(*r));
	r->inb = inb_new(snap);
	for (; *rcpts; rcpts++)
		inb_rcpt(r->inb, *rcpts);
	for (size_t k = 0; k < sizeof(extra) / sizeof(extra[0]); k++)
		inb_header(r->inb, extra[k][0], extra[k][1]);
	while (m && i < len && !(m[i] == '\r' && m[i + 1] == '\n')) {
		size_t s = i, c;
		char name[128], *val;
		while (i < len &&
		       !(m[i] == '\n' && m[i + 1] != ' ' && m[i + 1] != '\t'))
			i++;
		for (c = s; c < i && m[c] != ':'; c++)
			;
		snprintf(name, sizeof(name), "%.*s", (int)(c - s), m + s);
		c += c + 1 < i && m[c + 1] == ' ' ? 2 : 1;
		val = strndup(m + c, i - 1 - c); /* without the CR */
		inb_header(r->inb, name, val);
		free(val);
		i++;
	}
	i += 2;
	r->verdict = inb_eoh(r->inb, 0, NULL);
	for (; r->verdict == INB_PROCESS && i < len; i += chunk)
		inb_body(r->inb, (unsigned char *)m + i,
		         len - i < chunk ? len - i : chunk, r->err,
		         sizeof(r->err));
	if (r->verdict == INB_PROCESS)
		r->rc = inb_eom(r->inb, buf_write, &r->out, &r->edits,
		                &r->nedits, &r->res, r->err, sizeof(r->err));
	free(m);
}

static void run_free(struct run *r)
{
	inb_free(r->inb);
	free(r->out.p);
}

/* The value of the edit op name (the n-th, 1-based), or NULL. */
static const char *edit(const struct run *r, enum msg_edit_op op,
                        const char *name, int n)
{
	for (size_t i = 0; i < r->nedits; i++)
		if (r->edits[i].op == op &&
		    strcasecmp(r->edits[i].name, name) == 0 && --n == 0)
			return r->edits[i].value ? r->edits[i].value : "";
	return NULL;
}

/* The value of the first added A-R, unfolded, in a static buffer. */
static const char *stamp_of(const struct run *r)
{
	static char one[2048];
	const char *v = edit(r, EDIT_ADD, "Authentication-Results", 1);
	size_t n = 0;

	for (; v && *v && n + 1 < sizeof(one); v++)
		if (*v != '\n')
			one[n++] = *v;
	one[n] = '\0';
	return one;
}

/* 1 when the edits delete name index idx. */
static int deletes(const struct run *r, const char *name, int idx)
{
	for (size_t i = 0; i < r->nedits; i++)
		if (r->edits[i].op == EDIT_DELETE &&
		    strcasecmp(r->edits[i].name, name) == 0 &&
		    r->edits[i].index == idx)
			return 1;
	return 0;
}

/* The new entity (the added Content-* fields, the body) to path. */
static void write_entity(const struct run *r, const char *path)
{
	FILE *f = fopen(path, "wb");

	for (size_t i = 0; f && i < r->nedits; i++)
		if (r->edits[i].op == EDIT_ADD &&
		    strncasecmp(r->edits[i].name, "Content-", 8) == 0)
			fprintf(f, "%s: %s\r\n", r->edits[i].name,
			        r->edits[i].value);
	if (f) {
		fputs("\r\n", f);
		fwrite(r->out.p ? r->out.p : "", 1, r->out.n, f);
		fclose(f);
	}
}

/* Bare LF in the written body. */
static int bare_lf(const struct buf *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->p[i] == '\n' && (i == 0 || b->p[i - 1] != '\r'))
			return 1;
	return 0;
}

#define ANDI    "andi@" DOMAIN
#define BUDI    "budi@" DOMAIN
#define PLAIN   "Halo andi,\r\nbaris dua.\r\n"
#define CMS     "openssl cms"
#define DIRF(x) fixture_path(x)

static void make_mail(void)
{
	fixture_write(DIRF("plain.txt"),
	              "Content-Type: text/plain; charset=us-ascii\n\n"
	              "Halo andi,\nbaris dua.\n",
	              0600);
	fixture_sh(CMS " -encrypt -aes-256-cbc -in %s -out %s %s",
	           DIRF("plain.txt"), DIRF("enc.eml"), DIRF("andi.crt"));
	fixture_sh(CMS " -sign -in %s -signer %s -inkey %s -out %s",
	           DIRF("plain.txt"), DIRF("mitra.crt"), DIRF("mitra.key"),
	           DIRF("signed.eml"));
	fixture_sh(CMS " -encrypt -aes-256-gcm -in %s -out %s -recip %s "
	               "-keyopt rsa_padding_mode:oaep",
	           DIRF("signed.eml"), DIRF("sigenc.eml"), DIRF("andi.crt"));
	fixture_sh(CMS " -encrypt -aes-256-cbc -in %s -out %s %s %s",
	           DIRF("plain.txt"), DIRF("both.eml"), DIRF("andi.crt"),
	           DIRF("budi.crt"));
	fixture_sh(CMS " -encrypt -aes-128-cbc -in %s -out %s %s",
	           DIRF("plain.txt"), DIRF("citra.eml"), DIRF("citra.crt"));
	fixture_sh(CMS " -sign -nodetach -in %s -signer %s -inkey %s -out %s",
	           DIRF("plain.txt"), DIRF("mitra.crt"), DIRF("mitra.key"),
	           DIRF("opaque.eml"));
	fixture_sh(CMS " -encrypt -aes-256-gcm -in %s -out %s %s",
	           DIRF("opaque.eml"), DIRF("opqenc.eml"), DIRF("andi.crt"));
}

/* A revoked certificate's key still decrypts, and the stamp says so. */
static void test_revoked(void)
{
	const char *rc1[] = { "citra@" DOMAIN, NULL };
	struct run r;

	run_msg(&r, DIRF("citra.eml"), rc1, 100);
	ok(r.rc == 0 && r.res && r.res->decrypted && r.res->revoked_key &&
	           strstr(r.res->decrypted_by, "(revoked)") &&
	           strstr(stamp_of(&r), "revoked certificate 1A2D,"),
	   "revoked certificate: decrypts, noted (%s)",
	   r.res ? r.res->decrypted_by : r.err);
	{
		/* citra was revoked by the fixture moments ago (UTC; the
		 * day before counts too, for a run across midnight) */
		char want[64], prev[64], day[16];
		time_t t = time(NULL), y = t - 600;
		strftime(day, sizeof(day), "%Y-%m-%d", gmtime(&y));
		snprintf(prev, sizeof(prev), "certificate revoked %s", day);
		strftime(day, sizeof(day), "%Y-%m-%d", gmtime(&t));
		snprintf(want, sizeof(want), "certificate revoked %s", day);
		ok(strstr(stamp_of(&r), want) || strstr(stamp_of(&r), prev),
		   "... the stamp says when: %s", want);
	}
	ok(r.out.n == strlen(PLAIN) && memcmp(r.out.p, PLAIN, r.out.n) == 0,
	   "... to what was sent");
	run_free(&r);
}

/* Opaque signed-data, inside encryption too; unwrapped, tagged, and
 * on_bad_signature = reject, under a second configuration. */
static void test_opaque(void)
{
	const char *rc1[] = { ANDI, NULL };
	struct snapshot *plain = snap;
	struct run r;
	const char *subj;

	run_msg(&r, DIRF("opaque.eml"), rc1, 512);
	ok(r.rc == 0 && r.res && strcmp(r.res->smime, "pass") == 0 &&
	           !r.res->body_replaced && !r.res->reject,
	   "opaque signed-data: pass, left as it is (%s)",
	   r.res ? r.res->reason : r.err);
	run_free(&r);
	run_msg(&r, DIRF("opqenc.eml"), rc1, 512);
	ok(r.rc == 0 && r.res && r.res->decrypted &&
	           strcmp(r.res->smime, "pass") == 0 &&
	           strstr(edit(&r, EDIT_ADD, "Content-Type", 1), "signed-data"),
	   "opaque inside encryption: decrypted, pass, still opaque (%s)",
	   r.res ? r.res->reason : r.err);
	run_free(&r);
	snap = build("tag.conf", "inbound_unwrap_opaque = true;\n"
	                         "inbound_subject_tag = true;\n"
	                         "on_bad_signature = \"reject\";\n");
	run_msg(&r, DIRF("opaque.eml"), rc1, 512);
	subj = edit(&r, EDIT_ADD, "Subject", 1);
	ok(r.rc == 0 && r.res && r.res->body_replaced &&
	           r.out.n == strlen(PLAIN) &&
	           memcmp(r.out.p, PLAIN, r.out.n) == 0 &&
	           strstr(edit(&r, EDIT_ADD, "Content-Type", 1), "text/plain"),
	   "unwrapped: the content is the new body");
	ok(subj && strcmp(subj, "[Terverifikasi] Rapat koordinasi") == 0 &&
	           deletes(&r, "Subject", 1),
	   "Subject tagged: %s", subj ? subj : "(none)");
	run_free(&r);
	run_msg(&r, DIRF("opqenc.eml"), rc1, 512);
	ok(r.rc == 0 && r.res && r.res->decrypted && r.res->body_replaced &&
	           r.out.n == strlen(PLAIN) &&
	           strstr(edit(&r, EDIT_ADD, "Content-Type", 1), "text/plain"),
	   "decrypted and unwrapped");
	run_free(&r);
	fixture_sh("sed 's/baris dua/baris DUA/' %s > %s", DIRF("signed.eml"),
	           DIRF("bad.eml"));
	run_msg(&r, DIRF("bad.eml"), rc1, 512);
	subj = edit(&r, EDIT_ADD, "Subject", 1);
	ok(r.rc == 0 && r.res && r.res->reject && subj &&
	           strncmp(subj, "[Tanda tangan TIDAK SAH] ", 25) == 0,
	   "a bad signature: reject, and the fail tag (%s)", subj ? subj : "");
	run_free(&r);
	/* a hostile Subject: a bare CR and a bare LF must not reach
	 * smfi_addheader (found by fuzz_inbound) */
	run_subject = "Rapat\rkoordinasi\n lanjutan\nX: y";
	run_msg(&r, DIRF("bad.eml"), rc1, 512);
	run_subject = "Rapat koordinasi";
	subj = edit(&r, EDIT_ADD, "Subject", 1);
	ok(subj && strstr(subj, "] Rapat koordinasi\n lanjutan X: y") &&
	           !strchr(subj, '\r'),
	   "tagged Subject: a fold kept, a bare CR and LF made spaces (%s)",
	   subj ? subj : "(none)");
	run_free(&r);
	snapshot_unref(snap);
	snap = plain;
}

/* 3 MB through a 1 MiB memory spool: the same bytes back, in 64 KiB
 * chunks. */
static void test_large(void)
{
	const char *rc1[] = { ANDI, NULL };
	struct run r;
	size_t want = 0;
	char line[64];

	fixture_sh("(printf 'Content-Type: text/plain\\n\\n'; i=0; "
	           "while [ $i -lt 60000 ]; do echo \"baris $i dari surat "
	           "yang panjang sekali untuk uji\"; i=$((i+1)); done) > %s",
	           DIRF("big.txt"));
	fixture_sh(CMS " -encrypt -aes-256-gcm -in %s -out %s %s",
	           DIRF("big.txt"), DIRF("big.eml"), DIRF("andi.crt"));
	want = (size_t)atol(
	        fixture_sh_out(line, sizeof(line),
	                       "sed 1,2d %s | sed 's/$/\\r/' | wc -c",
	                       DIRF("big.txt")));
	run_msg(&r, DIRF("big.eml"), rc1, 65536);
	ok(r.rc == 0 && r.res && r.res->decrypted && want > 3000000 &&
	           r.out.n == want && r.out.max_chunk <= 65536 &&
	           !bare_lf(&r.out) &&
	           strstr(r.out.p, "baris 59999 dari") != NULL,
	   "3 MB: decrypted whole, CRLF, chunks of at most 64 KiB (%zu of "
	   "%zu, %zu)",
	   r.out.n, want, r.out.max_chunk);
	run_free(&r);
}

/* Content encrypted with bare LF line ends comes out with CRLF. */
static void test_lf(void)
{
	const char *rc1[] = { ANDI, NULL };
	struct run r;

	fixture_sh(CMS " -encrypt -binary -aes-256-cbc -in %s -out %s %s",
	           DIRF("plain.txt"), DIRF("lf.eml"), DIRF("andi.crt"));
	run_msg(&r, DIRF("lf.eml"), rc1, 10);
	ok(r.rc == 0 && r.res && r.res->decrypted && r.out.n == strlen(PLAIN) &&
	           memcmp(r.out.p, PLAIN, r.out.n) == 0,
	   "LF content (-binary): the new body has CRLF line ends");
	run_free(&r);
}

/* Plain mail: only the stamp; content without a MIME header. */
static void test_plain(void)
{
	const char *rc1[] = { ANDI, NULL };
	struct run r;

	run_msg(&r, DIRF("plain.txt"), rc1, 10);
	ok(r.rc == 0 && r.res && r.res->action == NULL &&
	           strcmp(r.res->smime, "none") == 0 && !r.res->body_replaced &&
	           deletes(&r, "Authentication-Results", 1) &&
	           strstr(stamp_of(&r), AUTHSRV "; smime=none"),
	   "plain mail: stamped smime=none, forged A-R out");
	run_free(&r);
	fixture_write(DIRF("raw.txt"), "Halo tanpa header\n", 0600);
	fixture_sh(CMS " -encrypt -aes-256-cbc -in %s -out %s %s",
	           DIRF("raw.txt"), DIRF("raw.eml"), DIRF("andi.crt"));
	run_msg(&r, DIRF("raw.eml"), rc1, 10);
	ok(r.rc == 0 && r.res && r.res->decrypted && r.out.n == 19 &&
	           memcmp(r.out.p, "Halo tanpa header\r\n", 19) == 0 &&
	           edit(&r, EDIT_ADD, "Content-Type", 1) == NULL &&
	           deletes(&r, "Content-Type", 1),
	   "content without a header: all of it is the body (text/plain)");
	run_free(&r);
}

/* x-pkcs7-mime without smime-type: the CMS content type decides. */
static void test_no_smime_type(void)
{
	const char *rc1[] = { ANDI, NULL };
	const char *sed = "sed 's/application\\/pkcs7-mime; *"
	                  "smime-type=[A-Za-z-]*;/application\\/x-pkcs7-mime;/'"
	                  " %s > %s";
	char line[256];
	struct run r;

	fixture_sh(sed, DIRF("enc.eml"), DIRF("nt.eml"));
	ok(strstr(fixture_sh_out(line, sizeof(line),
	                         "grep -i '^Content-Type' %s", DIRF("nt.eml")),
	          "x-pkcs7-mime; name") != NULL,
	   "made without smime-type: %s", line);
	run_msg(&r, DIRF("nt.eml"), rc1, 64);
	ok(r.rc == 0 && r.res && r.res->decrypted && r.out.n == strlen(PLAIN),
	   "enveloped-data without smime-type: decrypted");
	run_free(&r);
	fixture_sh(sed, DIRF("opaque.eml"), DIRF("nt.eml"));
	run_msg(&r, DIRF("nt.eml"), rc1, 64);
	ok(r.rc == 0 && r.res && !r.res->decrypted &&
	           strcmp(r.res->smime, "pass") == 0 && !r.res->body_replaced,
	   "signed-data without smime-type: verified as opaque (%s)",
	   r.res ? r.res->reason : r.err);
	run_free(&r);
}

/* However many forged A-R fields come, every one is deleted, last first. */
static void test_many_forged(void)
{
	struct inb *inb = inb_new(snap);
	const struct msg_edit *e = NULL;
	const struct inb_result *res = NULL;
	struct buf out = { 0 };
	size_t ne = 0, ndel = 0;
	int order = 1;
	char err[256] = "";

	inb_rcpt(inb, ANDI);
	inb_header(inb, "Content-Type", "text/plain");
	for (int i = 0; i < 100; i++)
		inb_header(inb, "Authentication-Results",
		           i == 50 ? "other.example; none"
		                   : "MX.Banjarkota.go.id.; smime=pass");
	ok(inb_eoh(inb, 0, NULL) == INB_PROCESS &&
	           inb_body(inb, (const unsigned char *)"hi\r\n", 4, err,
	                    sizeof(err)) == 0 &&
	           inb_eom(inb, buf_write, &out, &e, &ne, &res, err,
	                   sizeof(err)) == 0,
	   "100 A-R fields (%s)", err);
	for (size_t i = 0; i < ne; i++)
		if (e[i].op == EDIT_DELETE) {
			order &= e[i].index ==
			         (ndel < 49 ? 100 - (int)ndel : 99 - (int)ndel);
			ndel++;
		}
	ok(ndel == 99 && order && out.n == 0,
	   "99 forged ones deleted, from the last, the other kept (%zu)", ndel);
	inb_free(inb);
	/* more Content-* fields than can be replaced: left alone */
	inb = inb_new(snap);
	inb_rcpt(inb, ANDI);
	for (int i = 0; i < 70; i++)
		inb_header(inb, "Content-Type",
		           "application/pkcs7-mime; smime-type=enveloped-data");
	inb_eoh(inb, 0, NULL);
	inb_body(inb, (const unsigned char *)"MIAGCSqG\r\n", 10, err,
	         sizeof(err));
	ok(inb_eom(inb, buf_write, &out, &e, &ne, &res, err, sizeof(err)) ==
	                   0 &&
	           strcmp(res->smime, "permerror") == 0 &&
	           !res->body_replaced && strstr(res->reason, "too many"),
	   "70 Content-Type fields: permerror, unchanged (%s)",
	   res ? res->reason : err);
	inb_free(inb);
	free(out.p);
}

/* Mail that is not inbound passes untouched. */
static void test_pass(void)
{
	struct inb *inb = inb_new(snap);
	const char *why = NULL;

	inb_rcpt(inb, "<" ANDI ">");
	ok(inb_eoh(inb, 1, &why) == INB_PASS && why,
	   "outbound mail passes (%s)", why ? why : "");
	inb_free(inb);
	inb = inb_new(snap);
	inb_rcpt(inb, "<x@partner.go.id>");
	ok(inb_eoh(inb, 0, &why) == INB_PASS,
	   "no internal recipient: pass (%s)", why ? why : "");
	inb_free(inb);
	inb_free(NULL);
}

static void test_encrypted(void)
{
	const char *rc1[] = { ANDI, NULL };
	struct run r;
	const char *ar;

	run_msg(&r, DIRF("enc.eml"), rc1, 1000);
	ok(r.verdict == INB_PROCESS && r.rc == 0 && r.res,
	   "encrypted to andi: processed (%s)", r.err);
	if (r.res == NULL)
		exit(1);
	ok(r.res->decrypted && r.res->body_replaced &&
	           strcmp(r.res->action, "decrypted") == 0 &&
	           strcmp(r.res->smime, "none") == 0,
	   "decrypted, not signed (%s, %s)", r.res->action, r.res->smime);
	ok(r.out.n == strlen(PLAIN) && memcmp(r.out.p, PLAIN, r.out.n) == 0,
	   "the new body is what was sent, CRLF");
	ok(strstr(r.res->decrypted_by, ANDI) &&
	           strstr(r.res->decrypted_by, "1A2B (active)"),
	   "decrypted by andi's certificate (%s)", r.res->decrypted_by);
	ok(strcasecmp(r.res->cipher, "AES-256-CBC") == 0, "cipher %s",
	   r.res->cipher);
	ok(deletes(&r, "Content-Type", 1) &&
	           deletes(&r, "Content-Transfer-Encoding", 1) &&
	           deletes(&r, "Content-Disposition", 1),
	   "the outer Content-* fields are deleted");
	ok(edit(&r, EDIT_ADD, "Content-Type", 1) &&
	           strstr(edit(&r, EDIT_ADD, "Content-Type", 1),
	                  "text/plain") &&
	           edit(&r, EDIT_ADD, "Content-Type", 2) == NULL,
	   "the inner Content-Type is added");
	ok(deletes(&r, "Authentication-Results", 1) &&
	           deletes(&r, "Authentication-Results", 3) &&
	           !deletes(&r, "Authentication-Results", 2),
	   "forged A-R of our authserv-id deleted, the other kept");
	ar = edit(&r, EDIT_ADD, "Authentication-Results", 1);
	ok(ar &&
	           strncmp(ar, AUTHSRV "; smime=none", strlen(AUTHSRV) + 12) ==
	                   0 &&
	           strstr(ar, "decrypted for " ANDI),
	   "stamp: %s", ar ? ar : "(none)");
	ok(edit(&r, EDIT_ADD, "Subject", 1) == NULL &&
	           edit(&r, EDIT_DELETE, "Subject", 1) == NULL,
	   "no Subject tag when it is off");
	run_free(&r);
}

static void test_signed_encrypted(void)
{
	const char *rc1[] = { ANDI, NULL };
	struct run r;
	const char *ar;
	char line[256];

	run_msg(&r, DIRF("sigenc.eml"), rc1, 777);
	ok(r.rc == 0 && r.res && r.res->decrypted &&
	           strcmp(r.res->smime, "pass") == 0,
	   "signed then encrypted (GCM, OAEP): decrypted, pass (%s: %s)",
	   r.res ? r.res->smime : r.err, r.res ? r.res->reason : "");
	if (r.res == NULL)
		exit(1);
	ok(strcasestr(r.res->cipher, "GCM") != NULL, "cipher %s",
	   r.res->cipher);
	ok(r.res->signer_serial && strcmp(r.res->signer_serial, "1005") == 0 &&
	           r.res->signer_identifier &&
	           strcmp(r.res->signer_identifier, PARTNER) == 0,
	   "signer serial and identifier");
	ok(!bare_lf(&r.out) && r.out.max_chunk <= 65536,
	   "CRLF line ends, chunks of at most 64 KiB");
	write_entity(&r, DIRF("out.eml"));
	ok(fixture_sh(CMS " -verify -in %s -CAfile %s -out %s 2>/dev/null",
	              DIRF("out.eml"), DIRF("ca.pem"), DIRF("ver.txt")) == 0 &&
	           strstr(fixture_sh_out(line, sizeof(line), "grep -c Halo %s",
	                                 DIRF("ver.txt")),
	                  "1"),
	   "the inner signature still verifies with openssl cms -verify");
	ar = edit(&r, EDIT_ADD, "Authentication-Results", 1);
	ok(ar && strstr(ar, "smime=pass") &&
	           strstr(ar, "header.from=" PARTNER) &&
	           strstr(ar, "decrypted for"),
	   "stamp: %s", ar ? ar : "(none)");
	run_free(&r);
}

static void test_not_decrypted(void)
{
	const char *rc2[] = { ANDI, BUDI, NULL };
	const char *rcx[] = { ANDI, "x@partner.go.id", NULL };
	struct run r;

	run_msg(&r, DIRF("enc.eml"), rc2, 4096);
	ok(r.rc == 0 && r.res && !r.res->decrypted && !r.res->body_replaced &&
	           r.out.n == 0 && strcmp(r.res->action, "not-decrypted") == 0,
	   "budi not named: not decrypted, body unchanged");
	ok(r.res && strstr(r.res->reason, BUDI) &&
	           edit(&r, EDIT_ADD, "Content-Type", 1) == NULL &&
	           strstr(stamp_of(&r), "(not decrypted: " BUDI " is not a"),
	   "why: %s", r.res ? r.res->reason : r.err);
	run_free(&r);
	run_msg(&r, DIRF("both.eml"), rc2, 4096);
	ok(r.rc == 0 && r.res && r.res->decrypted && r.out.n == strlen(PLAIN),
	   "encrypted to both: decrypted");
	run_free(&r);
	run_msg(&r, DIRF("both.eml"), rcx, 4096);
	ok(r.rc == 0 && r.res && !r.res->decrypted &&
	           strstr(r.res->reason, "not an internal"),
	   "an outside recipient too: not decrypted (%s)",
	   r.res ? r.res->reason : r.err);
	run_free(&r);
}

static void test_signed(void)
{
	const char *rc1[] = { ANDI, NULL };
	struct run r;

	run_msg(&r, DIRF("signed.eml"), rc1, 300);
	ok(r.rc == 0 && r.res && strcmp(r.res->smime, "pass") == 0 &&
	           strcmp(r.res->action, "verified") == 0 &&
	           !r.res->body_replaced && r.out.n == 0,
	   "multipart/signed: verified, body unchanged (%s)",
	   r.res ? r.res->reason : r.err);
	run_free(&r);
	/* a changed body */
	fixture_sh("sed 's/baris dua/baris DUA/' %s > %s", DIRF("signed.eml"),
	           DIRF("bad.eml"));
	run_msg(&r, DIRF("bad.eml"), rc1, 300);
	ok(r.rc == 0 && r.res && strcmp(r.res->smime, "fail") == 0 &&
	           strcmp(r.res->action, "verify-failed") == 0,
	   "an altered body fails (%s)", r.res ? r.res->reason : r.err);
	run_free(&r);
}

/* DIR/bad.eml to andi: smime=permerror, decrypted or left as it came. */
static void permerror_case(const char *what, int decrypted, const char *action)
{
	const char *rc1[] = { ANDI, NULL };
	struct run r;

	run_msg(&r, DIRF("bad.eml"), rc1, 500);
	ok(r.rc == 0 && r.res && strcmp(r.res->smime, "permerror") == 0 &&
	           r.res->decrypted == decrypted &&
	           r.res->body_replaced == decrypted &&
	           (r.out.n > 0) == decrypted &&
	           strcmp(r.res->action, action) == 0,
	   "%s: %s, permerror (%s)", what, action,
	   r.res ? r.res->reason : r.err);
	run_free(&r);
}

/* Damaged input: delivered unchanged, smime=permerror. */
static void test_bad(void)
{
	const char *rc1[] = { ANDI, NULL };
	static const char *cmd[][2] = {
		{ "head -c -200 %s > %s", "truncated base64" },
		{ "sed '/^$/,$ s/^[A-Za-z]/#/' %s > %s", "broken base64" },
		{ "(sed '/^$/q' %s; echo; echo AAAAAAAAAAAAAAAAAAAAAAAA) > %s",
		  "garbage DER" },
		{ "(sed '/^$/q' %s; echo; echo MIQ/////BgkqhkiG9w0BBwOg) > %s",
		  "absurd length" },
		{ "sed '/^$/q' %s > %s", "empty body" }
	};
	struct run r;

	for (size_t k = 0; k < sizeof(cmd) / sizeof(cmd[0]); k++) {
		fixture_sh(cmd[k][0], DIRF("enc.eml"), DIRF("bad.eml"));
		run_msg(&r, DIRF("bad.eml"), rc1, 500);
		ok(r.rc == 0 && r.res &&
		           strcmp(r.res->smime, "permerror") == 0 &&
		           !r.res->body_replaced && r.out.n == 0 &&
		           strstr(edit(&r, EDIT_ADD, "Authentication-Results",
		                       1),
		                  "smime=permerror"),
		   "%s: unchanged, permerror (%s)", cmd[k][1],
		   r.res ? r.res->reason : r.err);
		run_free(&r);
	}
	/* a broken signature inside: decrypted all the same */
	fixture_sh("grep -v -- '--$' %s > %s; " CMS " -encrypt -aes-256-cbc "
	           "-in %s -out %s %s",
	           DIRF("signed.eml"), DIRF("cut.eml"), DIRF("cut.eml"),
	           DIRF("bad.eml"), DIRF("andi.crt"));
	permerror_case("a cut signature inside", 1, "decrypted");
	/* the GCM tag (the last octets) changed: nothing is handed out */
	fixture_sh("(sed '/^$/q' %s; sed '1,/^$/d' %s | openssl base64 -d | "
	           "perl -0777 -pe 'substr($_, -3, 1) ^= \"\\x01\"' | "
	           "openssl base64) > %s",
	           DIRF("sigenc.eml"), DIRF("sigenc.eml"), DIRF("bad.eml"));
	permerror_case("GCM tag changed", 0, "not-decrypted");
	fixture_sh("(printf 'Content-Type: multipart/mixed; boundary=\"b1\"\\n"
	           "\\n--b1\\nContent-Type: text/plain\\n\\nhi\\n--b1\\n'; "
	           "sed 's/^MIME-Version.*//' %s; printf '\\n--b1--\\n') > %s",
	           DIRF("enc.eml"), DIRF("nested.eml"));
	run_msg(&r, DIRF("nested.eml"), rc1, 500);
	ok(r.rc == 0 && r.res && strcmp(r.res->smime, "permerror") == 0 &&
	           !r.res->body_replaced,
	   "an encrypted part nested in a multipart: permerror (%s)",
	   r.res ? r.res->reason : r.err);
	run_free(&r);
}

int main(void)
{
	now = time(NULL);
	fixture_dir("inbound");
	setup();
	make_mail();
	test_encrypted();
	test_signed_encrypted();
	test_not_decrypted();
	test_signed();
	test_bad();
	test_revoked();
	test_opaque();
	test_pass();
	test_large();
	test_lf();
	test_plain();
	test_no_smime_type();
	test_many_forged();
	snapshot_unref(snap);
	return fixture_end(tap_done());
}
