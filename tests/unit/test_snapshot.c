/*
 * Unit tests: lib/snapshot.c through snapshot.h only -- a snapshot built
 * from a configuration, a database and PEM keys in a temp dir; mailbox
 * lookup and what each unusable mailbox is told; the certificate to
 * encrypt to; reference counting and a reload that leaves the old
 * snapshot as it was; and builds that fail leave nothing behind (no
 * snapshot, no open file, no thread); the keys a mailbox may decrypt
 * with (active, superseded, expired, revoked), never offered for signing.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "db.h"
#include "fixture.h"
#include "recipient.h"
#include "snapshot.h"
#include "tap.h"

#define DOMAIN "banjarkota.go.id"
#define SIGN   "keyUsage:critical,digitalSignature,keyAgreement|"
#define EMAIL  "extendedKeyUsage:emailProtection|subjectAltName:email:"

static time_t now;
static EVP_PKEY *ca_key;
static X509 *ca;
static char conf[512], dbpath[512];

/* Entries of a /proc/self directory (open files, threads). */
static int proc_count(const char *what)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/self/%s", what);
	d = opendir(path);
	while (d && (e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/*
 * A certificate for name@DOMAIN from the test CA with extensions exts
 * (NULL: the usual signing ones), valid from now + from to now + to, its
 * key in DIR/name.key unless nokey; key_of (may be NULL) signs instead of
 * a new key, so the key file does not match.  Mapped in db.  Returns the
 * certificate id.
 */
static long long signer(struct db *db, const char *name, const char *exts,
                        long from, long to, int nokey, EVP_PKEY *key_of)
{
	char mailbox[128], keyfile[64], all[512], err[512];
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x;
	long long id;
	static long serial = 100;

	snprintf(mailbox, sizeof(mailbox), "%s@%s", name, DOMAIN);
	snprintf(all, sizeof(all), "%s%s", exts ? exts : SIGN EMAIL,
	         exts ? "" : mailbox);
	x = fixture_cert_make(k, name, ca, ca_key, serial++, now, from, to,
	                      all);
	snprintf(keyfile, sizeof(keyfile), "%s.key", name);
	if (!nokey)
		fixture_key_write(fixture_path(keyfile), key_of ? key_of : k);
	id = fixture_db_signer(db, x, NULL, fixture_path(keyfile), mailbox, err,
	                       sizeof(err));
	if (id < 0)
		printf("# signer %s: %s\n", name, err);
	X509_free(x);
	EVP_PKEY_free(k);
	return id;
}

/* The configuration file path: the database db, the temp dir, extra. */
static void write_conf_to(const char *path, const char *db, const char *extra)
{
	char text[2048];

	snprintf(text, sizeof(text),
	         "database = \"%s\";\ntemp_dir = \"%s\";\n"
	         "domains = [ \"" DOMAIN "\" ];\n%s",
	         db, fixture_path(""), extra);
	fixture_write(path, text, 0600);
}

static void write_conf(const char *extra)
{
	write_conf_to(conf, dbpath, extra);
}

/* 1 when snapshot_build of path fails and gives no snapshot. */
static int build_fails(const char *path, int strict, char *err, size_t len)
{
	struct snapshot *s = (struct snapshot *)1;
	int rc = snapshot_build(path, strict, &s, err, len, NULL, 0);

	if (rc == 0)
		snapshot_unref(s);
	return rc == -1 && s == NULL;
}

/* The problem of a mailbox's entry ("" when it has none, "(none)" when
 * there is no entry). */
static const char *problem(const struct snapshot *s, const char *name)
{
	char mailbox[128];
	const struct signer_entry *e;

	snprintf(mailbox, sizeof(mailbox), "%s@%s", name, DOMAIN);
	e = snapshot_lookup(s, mailbox);
	if (e == NULL)
		return "(none)";
	return e->problem ? e->problem : "";
}

/* Each line of warn as a "#" line. */
static void print_warnings(const char *warn)
{
	const char *p = warn;

	while (*p) {
		size_t n = strcspn(p, "\n");
		fputs("# warning: ", stdout);
		fwrite(p, 1, n, stdout);
		fputs("\n", stdout);
		p += n + (p[n] == '\n');
	}
}

static void setup(void)
{
	struct db *db;
	char err[512];
	EVP_PKEY *stray = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	snprintf(dbpath, sizeof(dbpath), "%s", fixture_db("db"));
	snprintf(conf, sizeof(conf), "%s", fixture_path("smime.conf"));
	write_conf("");
	if (db_open(dbpath, DB_CREATE, &db, err, sizeof(err)) != 0) {
		printf("# %s\n", err);
		exit(1);
	}
	signer(db, "andi", NULL, -86400, 365 * 86400L, 0, NULL);
	signer(db, "sekda", NULL, -86400, 365 * 86400L, 0, NULL);
	signer(db, "expired", NULL, -400 * 86400L, -30 * 86400L, 0, NULL);
	signer(db, "server",
	       "keyUsage:critical,digitalSignature|extendedKeyUsage:"
	       "serverAuth|subjectAltName:email:server@" DOMAIN,
	       -86400, 86400, 0, NULL);
	signer(db, "nokey", NULL, -86400, 86400, 1, NULL);
	signer(db, "wrongkey", NULL, -86400, 86400, 0, stray);
	if (db_revoke_id(db,
	                 signer(db, "revoked", NULL, -86400, 86400, 0, NULL),
	                 "keyCompromise", now, "test", err, sizeof(err)) != 1)
		printf("# revoke: %s\n", err);
	db_close(db);
	EVP_PKEY_free(stray);
}

static void test_build(void)
{
	struct snapshot *s = NULL;
	const struct signer_entry *e;
	char err[1024] = "", warn[4096] = "";
	X509 *x;
	const char *serial = NULL;

	ok(snapshot_build(conf, 0, &s, err, sizeof(err), warn, sizeof(warn)) ==
	                   0 &&
	           s != NULL,
	   "snapshot_build (%s)", err);
	if (s == NULL)
		exit(1);
	print_warnings(warn);
	ok(s->refs == 1 && s->cfg && s->md && s->audit,
	   "one reference, configuration, digest and audit log");
	ok(s->nentries == 7 && s->nusable == 3,
	   "seven mailboxes, three usable (%zu, %zu)", s->nentries, s->nusable);
	e = snapshot_lookup(s, "andi@" DOMAIN);
	ok(e && e->key && e->cert && e->problem == NULL && !e->key_fault &&
	           strcmp(e->status, "active") == 0,
	   "andi: certificate and key loaded, no problem");
	ok(e && X509_check_private_key(e->cert, e->key) == 1,
	   "... the key is the certificate's");
	ok(e && e->not_after - e->not_before == 366 * 86400L,
	   "... with its validity for the per-message check");
	ok(snapshot_lookup(s, "sekda@" DOMAIN) != NULL &&
	           snapshot_lookup(s, "andi@" DOMAIN) != NULL &&
	           snapshot_lookup(s, "wrongkey@" DOMAIN) != NULL,
	   "lookup finds each mailbox (the entries are sorted)");
	ok(snapshot_lookup(s, "nobody@" DOMAIN) == NULL &&
	           snapshot_lookup(NULL, "andi@" DOMAIN) == NULL,
	   "an unknown mailbox, a NULL snapshot: NULL");
	is_str(problem(s, "expired"), "",
	       "an expired certificate still loads (checked per message)");
	ok(strstr(warn, "expired@" DOMAIN ": certificate expired on") != NULL,
	   "... with a warning");
	ok(strstr(problem(s, "server"), "does not allow e-mail signing") &&
	           snapshot_lookup(s, "server@" DOMAIN)->key == NULL &&
	           !snapshot_lookup(s, "server@" DOMAIN)->key_fault,
	   "EKU serverAuth: unusable, no key kept, not a fault (%s)",
	   problem(s, "server"));
	ok(strstr(problem(s, "nokey"), "nokey.key") &&
	           snapshot_lookup(s, "nokey@" DOMAIN)->key_fault,
	   "a missing key file: a key fault naming it (%s)",
	   problem(s, "nokey"));
	ok(strstr(problem(s, "wrongkey"), "does not match") &&
	           snapshot_lookup(s, "wrongkey@" DOMAIN)->key == NULL,
	   "a key that is not the certificate's: refused (%s)",
	   problem(s, "wrongkey"));
	ok(strstr(problem(s, "revoked"), "is revoked") != NULL,
	   "a revoked certificate: unusable (%s)", problem(s, "revoked"));
	ok(strstr(warn, "nokey@") && strstr(warn, "wrongkey@") &&
	           strstr(warn, "server@") && strstr(warn, "revoked@") &&
	           !strstr(warn, "andi@"),
	   "each problem is in the warnings, the good mailboxes are not");

	/* the certificate to encrypt to */
	x = snapshot_encryption_cert(s, "andi@" DOMAIN, now, &serial);
	e = snapshot_lookup(s, "andi@" DOMAIN);
	ok(x && e && x == e->cert && serial && strcmp(serial, e->serial) == 0,
	   "an internal mailbox with keyEncipherment is its own recipient");
	ok(snapshot_encryption_cert(s, "andi@" DOMAIN, now + 400 * 86400L,
	                            NULL) == NULL,
	   "... but not after its certificate expired");
	ok(snapshot_encryption_cert(s, "mitra@jabarprov.go.id", now, NULL) ==
	           NULL,
	   "no certificate for a partner yet");
	{
		EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		X509 *h = fixture_cert_make(k, "mitra", ca, ca_key, 900, now,
		                            -3600, 86400, NULL);
		ok(snapshot_add_harvested(s, "Mitra@jabarprov.go.id", "0384",
		                          h) == 0,
		   "snapshot_add_harvested");
		x = snapshot_encryption_cert(s, "mitra@jabarprov.go.id", now,
		                             &serial);
		ok(x == h && strcmp(serial, "0384") == 0,
		   "... the harvested certificate is used at once");
		ok(snapshot_encryption_cert(s, "mitra@jabarprov.go.id",
		                            now + 2 * 86400L, NULL) == NULL,
		   "... inside its validity only");
		X509_free(h); /* the snapshot holds its own reference */
		EVP_PKEY_free(k);
	}
	ok(snapshot_encryption_cert(s, "mitra@jabarprov.go.id", now, NULL) !=
	           NULL,
	   "... and it stays while the snapshot lives");

	/* strict (-n): any problem fails the build, and nothing is made */
	ok(build_fails(conf, 1, err, sizeof(err)) &&
	           strstr(err, "5 mailboxes cannot sign"),
	   "strict: refused, no snapshot (%s)", err);
	snapshot_unref(s);
}

/* The partner certificates in the database (with encrypt rules). */
static void test_recipients(void)
{
	struct snapshot *s = NULL;
	struct db *db;
	struct db_recipient r;
	char err[1024] = "";
	const char *serial = NULL;
	int added = 0;
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	const char *exts = "keyUsage:keyAgreement|subjectAltName:email:"
	                   "mitra@jabarprov.go.id";
	X509 *older = fixture_cert_make(k, "mitra", ca, ca_key, 0x501, now,
	                                -10 * 86400L, 300 * 86400L, exts);
	X509 *newer = fixture_cert_make(k, "mitra", ca, ca_key, 0x502, now,
	                                -86400, 300 * 86400L, exts);
	X509 *x;

	db_open(dbpath, DB_READWRITE, &db, err, sizeof(err));
	recipient_from_cert(older, "mitra@jabarprov.go.id", "import", &r, err,
	                    sizeof(err));
	db_recipient_add(db, &r, "test", &added, err, sizeof(err));
	db_recipient_clear(&r);
	recipient_from_cert(newer, "mitra@jabarprov.go.id", "import", &r, err,
	                    sizeof(err));
	db_recipient_add(db, &r, "test", &added, err, sizeof(err));
	db_recipient_clear(&r);
	db_close(db);

	ok(snapshot_build(conf, 0, &s, err, sizeof(err), NULL, 0) == 0 &&
	           s->nrcpts == 0,
	   "without encrypt rules no recipient certificate is loaded");
	snapshot_unref(s);
	write_conf("encrypt = ( { recipients = [ \"jabarprov.go.id\" ]; "
	           "mode = \"opportunistic\"; } );\n");
	ok(snapshot_build(conf, 0, &s, err, sizeof(err), NULL, 0) == 0 &&
	           s->nrcpts == 2,
	   "with encrypt rules both recipient certificates load (%s)", err);
	x = s ? snapshot_encryption_cert(s, "mitra@jabarprov.go.id", now,
	                                 &serial)
	      : NULL;
	ok(x && X509_cmp(x, newer) == 0 && strcmp(serial, "0502") == 0,
	   "the newest one valid now is chosen (%s)", serial ? serial : "-");
	x = s ? snapshot_encryption_cert(s, "mitra@jabarprov.go.id",
	                                 now - 5 * 86400L, &serial)
	      : NULL;
	ok(x && X509_cmp(x, older) == 0,
	   "... and at a time before the newer one, the older one");
	snapshot_unref(s);
	write_conf("");
	X509_free(older);
	X509_free(newer);
	EVP_PKEY_free(k);
}

static void test_refs_and_reload(void)
{
	struct snapshot *a = NULL, *b = NULL;
	struct db *db;
	char err[1024] = "";
	long long id;

	snapshot_build(conf, 0, &a, err, sizeof(err), NULL, 0);
	if (a == NULL) {
		ok(0, "first snapshot (%s)", err);
		return;
	}
	ok(snapshot_ref(a) == a && a->refs == 2, "snapshot_ref: two");
	snapshot_unref(a);
	ok(a->refs == 1 && snapshot_lookup(a, "andi@" DOMAIN) != NULL,
	   "snapshot_unref: one, still usable");
	ok(snapshot_ref(NULL) == NULL, "snapshot_ref(NULL) is NULL");
	snapshot_unref(NULL);
	ok(1, "snapshot_unref(NULL) is fine");

	/* a new mailbox, andi unmapped: the reload sees it, a keeps its view */
	db_open(dbpath, DB_READWRITE, &db, err, sizeof(err));
	id = signer(db, "baru", NULL, -86400, 86400, 0, NULL);
	db_unmap(db, "andi@" DOMAIN, "test", err, sizeof(err));
	db_close(db);
	ok(id > 0 &&
	           snapshot_build(conf, 0, &b, err, sizeof(err), NULL, 0) ==
	                   0 &&
	           b != NULL,
	   "reload: a second snapshot (%s)", err);
	if (b == NULL)
		return;
	ok(b->generation > a->generation, "... a later generation");
	ok(snapshot_lookup(b, "baru@" DOMAIN) &&
	           !snapshot_lookup(b, "andi@" DOMAIN),
	   "... with the new mailbox and without the unmapped one");
	ok(snapshot_lookup(a, "andi@" DOMAIN) &&
	           snapshot_lookup(a, "andi@" DOMAIN)->key &&
	           !snapshot_lookup(a, "baru@" DOMAIN),
	   "the old snapshot is as it was (its key still loaded)");
	ok(a->audit == b->audit,
	   "both write through one audit queue for the same database");
	snapshot_unref(a);
	ok(snapshot_lookup(b, "baru@" DOMAIN)->key != NULL,
	   "the old one gone, the new one is untouched");
	snapshot_unref(b);
}

/* Failing builds: -1, *out NULL, and no file or thread left open. */
static void test_failures(void)
{
	struct snapshot *s = (struct snapshot *)1;
	char err[1024] = "", junk[512], bad[512];
	int fds, threads;

	/* one good build first, so that what stays for the process (the
	 * shared audit queue is freed with its last snapshot) is counted */
	snapshot_build(conf, 0, &s, err, sizeof(err), NULL, 0);
	snapshot_unref(s);
	fds = proc_count("fd");
	threads = proc_count("task");

	ok(build_fails(fixture_path("missing.conf"), 0, err, sizeof(err)) &&
	           strstr(err, "missing.conf"),
	   "a missing configuration: -1, no snapshot (%s)", err);

	snprintf(junk, sizeof(junk), "%s", fixture_path("junk.db"));
	fixture_write(junk, "this is not an SQLite database, not at all\n",
	              0600);
	snprintf(bad, sizeof(bad), "%s", fixture_path("bad.conf"));
	write_conf_to(bad, junk, "");
	ok(build_fails(bad, 0, err, sizeof(err)) &&
	           strstr(err, "bad.conf:1: database") &&
	           strstr(err, "junk.db"),
	   "a file that is no database: -1, naming the file:line (%s)", err);

	chmod(fixture_path("sekda.key"), 0644);
	ok(build_fails(conf, 0, err, sizeof(err)) && strstr(err, "sekda.key") &&
	           strstr(err, "readable by their owner only"),
	   "a key others can read fails the whole build (%s)", err);
	chmod(fixture_path("sekda.key"), 0600);

	ok(build_fails(conf, 1, err, sizeof(err)),
	   "strict with problems: -1, no snapshot");
	ok(proc_count("fd") == fds && proc_count("task") == threads,
	   "no file and no thread left by the failed builds (%d/%d fds, "
	   "%d/%d threads)",
	   proc_count("fd"), fds, proc_count("task"), threads);

	s = NULL;
	ok(snapshot_build(conf, 0, &s, err, sizeof(err), NULL, 0) == 0 && s,
	   "and the next build works (%s)", err);
	snapshot_unref(s);
}

/* A certificate of mailbox lama@ valid from now + from to now + to, its
 * key in DIR/tag.key unless nokey, mapped (superseding the one before). */
static X509 *lama_cert(struct db *db, const char *tag, long from, long to,
                       int nokey, long long *id)
{
	char keyfile[64], err[512];
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	static long serial = 0x700;
	X509 *x = fixture_cert_make(k, "lama", ca, ca_key, serial++, now, from,
	                            to, SIGN EMAIL "lama@" DOMAIN);

	snprintf(keyfile, sizeof(keyfile), "%s.key", tag);
	if (!nokey)
		fixture_key_write(fixture_path(keyfile), k);
	*id = fixture_db_signer(db, x, NULL, fixture_path(keyfile),
	                        "lama@" DOMAIN, err, sizeof(err));
	if (*id < 0)
		printf("# lama %s: %s\n", tag, err);
	EVP_PKEY_free(k);
	return x;
}

/* The keys a mailbox may decrypt with: every certificate it had, never
 * offered for signing. */
static void test_decrypt(void)
{
	struct snapshot *s = NULL;
	const struct decrypt_key *d = NULL;
	const struct signer_entry *e;
	struct db *db;
	char err[1024] = "", warn[4096] = "";
	long long ida, ide, idb, idc;
	X509 *a, *ex, *b, *c;
	size_t n;

	db_open(dbpath, DB_READWRITE, &db, err, sizeof(err));
	a = lama_cert(db, "lamaA", -800 * 86400L, -400 * 86400L, 0, &ida);
	ex = lama_cert(db, "lamaE", -500 * 86400L, -100 * 86400L, 1, &ide);
	b = lama_cert(db, "lamaB", -300 * 86400L, 65 * 86400L, 0, &idb);
	c = lama_cert(db, "lamaC", -86400, 365 * 86400L, 0, &idc);
	ok(db_revoke_id(db, idb, "superseded", now, "test", err, sizeof(err)) ==
	           1,
	   "lama@: four certificates, the third one revoked (%s)", err);
	db_close(db);

	ok(snapshot_build(conf, 0, &s, err, sizeof(err), warn, sizeof(warn)) ==
	                   0 &&
	           s,
	   "a key missing for an old certificate does not fail the build "
	   "(%s)",
	   err);
	if (s == NULL)
		exit(1);
	print_warnings(warn);
	n = snapshot_decrypt_keys(s, "lama@" DOMAIN, &d);
	ok(n == 4 && d, "snapshot_decrypt_keys: all four certificates (%zu)",
	   n);
	if (n != 4)
		exit(1);
	e = snapshot_lookup(s, "lama@" DOMAIN);
	ok(X509_cmp(d[0].cert, c) == 0 &&
	           strcmp(snapshot_decrypt_state(&d[0], now), "active") == 0 &&
	           e && d[0].key == e->key,
	   "newest first: the active one, sharing the signer's key");
	ok(X509_cmp(d[1].cert, b) == 0 &&
	           strcmp(snapshot_decrypt_state(&d[1], now), "revoked") == 0 &&
	           d[1].key && X509_check_private_key(b, d[1].key) == 1,
	   "the revoked one, with its key (%s)",
	   snapshot_decrypt_state(&d[1], now));
	ok(X509_cmp(d[2].cert, ex) == 0 && d[2].key == NULL && d[2].problem &&
	           strstr(d[2].problem, "lamaE.key"),
	   "one whose key file is gone: no key, the reason kept (%s)",
	   d[2].problem ? d[2].problem : "-");
	{
		char rep[4096];
		size_t nrep = snapshot_decrypt_report(s, rep, sizeof(rep));
		print_warnings(rep);
		ok(nrep == 3 &&
		           strstr(rep, "lama@" DOMAIN
		                       ": superseded certificate 0701 cannot "
		                       "decrypt: ") &&
		           strstr(rep, "lamaE.key") && strstr(rep, "nokey@") &&
		           strstr(rep, "wrongkey@") &&
		           snapshot_decrypt_report(s, NULL, 0) == 3 &&
		           snapshot_decrypt_report(NULL, rep, sizeof(rep)) == 0,
		   "snapshot_decrypt_report: the three keys that cannot "
		   "decrypt, with why (%zu)",
		   nrep);
		ok(!strstr(warn, "lama@") && !strstr(warn, "cannot decrypt"),
		   "... and the build's warnings (-n) do not have them");
	}
	ok(X509_cmp(d[3].cert, a) == 0 &&
	           strcmp(snapshot_decrypt_state(&d[3], now), "expired") == 0 &&
	           d[3].key && X509_check_private_key(a, d[3].key) == 1 &&
	           strcmp(d[3].status, "superseded") == 0,
	   "the expired, superseded one, with its key");
	ok(strcmp(snapshot_decrypt_state(&d[0], now + 400 * 86400L),
	          "expired") == 0 &&
	           strcmp(snapshot_decrypt_state(NULL, now), "none") == 0,
	   "state at a later time; NULL is none");

	/* signing still takes only the active certificate */
	ok(e && X509_cmp(e->cert, c) == 0 && e->key && e->problem == NULL,
	   "lama@ signs with its active certificate only");
	n = snapshot_decrypt_keys(s, "revoked@" DOMAIN, &d);
	e = snapshot_lookup(s, "revoked@" DOMAIN);
	ok(n == 1 && d[0].key &&
	           strcmp(snapshot_decrypt_state(&d[0], now), "revoked") == 0 &&
	           e && e->key == NULL && strstr(e->problem, "is revoked"),
	   "revoked@: decrypts with its key, the signer entry still refuses");
	n = snapshot_decrypt_keys(s, "expired@" DOMAIN, &d);
	e = snapshot_lookup(s, "expired@" DOMAIN);
	ok(n == 1 && d[0].key &&
	           strcmp(snapshot_decrypt_state(&d[0], now), "expired") == 0 &&
	           e && now > e->not_after,
	   "expired@: decrypts; signing is refused by its validity");
	ok(snapshot_decrypt_keys(s, "nobody@" DOMAIN, &d) == 0 && d == NULL &&
	           snapshot_decrypt_keys(NULL, "lama@" DOMAIN, &d) == 0,
	   "an unknown mailbox, a NULL snapshot: none");
	snapshot_unref(s);
	ok(build_fails(conf, 1, err, sizeof(err)) &&
	           strstr(err, "5 mailboxes cannot sign"),
	   "strict: the old key that is gone is not a signing problem (%s)",
	   err);
	X509_free(a);
	X509_free(ex);
	X509_free(b);
	X509_free(c);
}

int main(void)
{
	now = time(NULL);
	fixture_dir("snapshot");
	ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ca = fixture_cert_make(ca_key, "Snapshot CA", NULL, NULL, 1, now,
	                       -1000 * 86400L, 3650 * 86400L,
	                       "basicConstraints:critical,CA:true|"
	                       "keyUsage:critical,keyCertSign,cRLSign");
	setup();

	test_build();
	test_recipients();
	test_refs_and_reload();
	test_failures();
	test_decrypt();

	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return fixture_end(tap_done());
}
