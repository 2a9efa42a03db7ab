/* fixture -- shared pieces of the unit tests (see fixture.h). */
#include "fixture.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "certstore.h"
#include "db.h"
#include "db_int.h"

static char fx_dir[256];

static void fx_fail(const char *what, const char *arg)
{
	printf("# fixture: %s %s\n", what, arg ? arg : "");
	exit(1);
}

const char *fixture_dir(const char *name)
{
	snprintf(fx_dir, sizeof(fx_dir), "/tmp/smime-test-%s.XXXXXX", name);
	if (mkdtemp(fx_dir) == NULL)
		fx_fail("cannot make", fx_dir);
	return fx_dir;
}

const char *fixture_path(const char *name)
{
	static char buf[8][512];
	static unsigned next;
	char *p = buf[next++ % 8];

	snprintf(p, sizeof(buf[0]), "%s/%s", fx_dir, name);
	return p;
}

static char fx_dbs[32][64]; /* the PostgreSQL databases made */
static unsigned fx_ndbs;

/* Drop the PostgreSQL databases fixture_db made (WITH (FORCE): a thread's
 * kept connection may still be open). */
static void fx_drop_dbs(void)
{
	char sql[128], err[512];
	struct db *admin;

	if (fx_ndbs == 0 ||
	    db_open_raw(getenv("SMIME_TEST_DB_URI"), DB_READWRITE, &admin, err,
	                sizeof(err)) != 0)
		return;
	for (unsigned i = 0; i < fx_ndbs && i < 32; i++) {
		snprintf(sql, sizeof(sql),
		         "DROP DATABASE IF EXISTS %s WITH (FORCE)", fx_dbs[i]);
		if (db_exec_sql(admin, sql, err, sizeof(err)) != 0)
			printf("# fixture: %s\n", err);
	}
	db_close(admin);
	fx_ndbs = 0;
}

int fixture_cleanup(void)
{
	int rc = 0;

	if (fixture_db_pg())
		fx_drop_dbs();

	if (fx_dir[0] != '\0' && fixture_sh("rm -rf '%s'", fx_dir) != 0)
		rc = -1;
	fx_dir[0] = '\0';
	return rc;
}

int fixture_end(int rc)
{
	fixture_cleanup();
	return rc;
}

int fixture_sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	fflush(stdout);
	rc = system(cmd);
	if (rc != 0)
		printf("# command failed (%d): %s\n", rc, cmd);
	return rc;
}

const char *fixture_sh_out(char *out, size_t outlen, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	FILE *p;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	out[0] = '\0';
	fflush(stdout);
	p = popen(cmd, "r");
	if (p == NULL || fgets(out, (int)outlen, p) == NULL)
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	if ((p == NULL || pclose(p) != 0) | (out[0] == '\0')) {
		printf("# command failed or printed nothing: %s\n", cmd);
		out[0] = '\0';
	}
	return out;
}

int fixture_write(const char *path, const char *text, int mode)
{
	FILE *f = fopen(path, "w");
	int rc;

	if (f == NULL)
		return -1;
	rc = fputs(text, f) < 0 ? -1 : 0;
	if (fclose(f) != 0 || chmod(path, (mode_t)mode) != 0)
		rc = -1;
	return rc;
}

static void *read_cert(FILE *f)
{
	return PEM_read_X509(f, NULL, NULL, NULL);
}

static void *read_key(FILE *f)
{
	return PEM_read_PrivateKey(f, NULL, NULL, NULL);
}

/* What rd reads from FIXTURE_DATA/name, or exit. */
static void *data_read(const char *name, void *(*rd)(FILE *))
{
	char path[512];
	void *v = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", FIXTURE_DATA, name);
	f = fopen(path, "r");
	if (f) {
		v = rd(f);
		fclose(f);
	}
	if (v == NULL)
		fx_fail("cannot read", path);
	return v;
}

X509 *fixture_data_cert(const char *name)
{
	return data_read(name, read_cert);
}

EVP_PKEY *fixture_data_key(const char *name)
{
	return data_read(name, read_key);
}

static void add_ext(X509 *x, X509V3_CTX *ctx, const char *spec)
{
	const char *colon = strchr(spec, ':');
	X509_EXTENSION *e;
	char name[64];

	if (colon == NULL)
		fx_fail("extension without ':'", spec);
	snprintf(name, sizeof(name), "%.*s", (int)(colon - spec), spec);
	e = X509V3_EXT_conf(NULL, ctx, name, colon + 1);
	if (e == NULL)
		fx_fail("bad extension", spec);
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
}

X509 *fixture_cert_make(EVP_PKEY *key, const char *cn, X509 *issuer,
                        EVP_PKEY *ikey, long serial, time_t now, long from,
                        long to, const char *exts)
{
	EVP_PKEY *signer = ikey ? ikey : key;
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	X509V3_CTX ctx;

	if (x == NULL || n == NULL)
		fx_fail("out of memory making", cn);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
	                           (const unsigned char *)"Test Partner", -1,
	                           -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	                           (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
	X509_NAME_free(n);
	X509_time_adj_ex(X509_getm_notBefore(x), 0, from, &now);
	X509_time_adj_ex(X509_getm_notAfter(x), 0, to, &now);
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	while (exts && *exts) {
		char spec[512];
		size_t n = strcspn(exts, "|");
		snprintf(spec, sizeof(spec), "%.*s", (int)n, exts);
		add_ext(x, &ctx, spec);
		exts += n + (exts[n] == '|');
	}
	/* Ed25519 signs without a separate digest */
	if (!X509_sign(x, signer,
	               EVP_PKEY_get_base_id(signer) == EVP_PKEY_ED25519
	                       ? NULL
	                       : EVP_sha256()))
		fx_fail("cannot sign", cn);
	return x;
}

int fixture_pem_write(const char *path, X509 *a, X509 *b)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (f == NULL)
		return -1;
	ok = PEM_write_X509(f, a) && (b == NULL || PEM_write_X509(f, b));
	return fclose(f) == 0 && ok ? 0 : -1;
}

int fixture_key_write(const char *path, EVP_PKEY *key)
{
	FILE *f;
	int ok;

	unlink(path);
	f = fopen(path, "w");
	if (f == NULL || fchmod(fileno(f), 0600) != 0) {
		if (f)
			fclose(f);
		return -1;
	}
	ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	return fclose(f) == 0 && ok ? 0 : -1;
}

long long fixture_db_signer(struct db *db, X509 *x, const char *chain_pem,
                            const char *key_path, const char *mailbox,
                            char *err, size_t errlen)
{
	struct cert_info ci;
	struct db_cert dc;
	long long id = -1;

	if (cert_info_get(x, &ci) != 0) {
		snprintf(err, errlen, "cert_info_get failed");
		return -1;
	}
	db_cert_from_info(&dc, &ci);
	dc.kind = "individual";
	dc.mailbox = (char *)mailbox;
	dc.key_backend = "pem";
	dc.key_location = (char *)key_path;
	dc.cert_pem = cert_to_pem(x);
	dc.chain_pem = (char *)(chain_pem ? chain_pem : "");
	if (dc.cert_pem != NULL && db_cert_add(db, &dc, err, errlen) == 0 &&
	    db_map(db, mailbox, dc.id, "individual", "test", err, errlen) == 0)
		id = dc.id;
	free(dc.cert_pem);
	cert_info_clear(&ci);
	return id;
}

/* ---- the database under test ------------------------------------------ */

int fixture_db_pg(void)
{
	const char *uri = getenv("SMIME_TEST_DB_URI");

	return uri != NULL && *uri != '\0';
}

/* base with its database name replaced by name, into out. */
static void uri_with_db(const char *base, const char *name, char *out,
                        size_t len)
{
	const char *auth = strstr(base, "://");
	const char *slash = auth ? strchr(auth + 3, '/') : NULL;
	const char *query = strchr(base, '?');

	if (slash == NULL || (query && slash > query)) {
		/* no database part: postgresql://host?... */
		size_t head = query ? (size_t)(query - base) : strlen(base);
		snprintf(out, len, "%.*s/%s%s", (int)head, base, name,
		         query ? query : "");
		return;
	}
	snprintf(out, len, "%.*s%s%s", (int)(slash + 1 - base), base, name,
	         query ? query : "");
}

const char *fixture_db(const char *name)
{
	static char buf[8][512];
	static unsigned next;
	const char *base = getenv("SMIME_TEST_DB_URI");
	char dbname[64], sql[160], err[512];
	char *p = buf[next++ % 8];
	struct db *admin;
	size_t n;

	if (!fixture_db_pg()) {
		snprintf(p, sizeof(buf[0]), "%s", fixture_path(name));
		unlink(p);
		return p;
	}
	/* one PostgreSQL database per name and test process, made afresh */
	n = (size_t)snprintf(dbname, sizeof(dbname), "t%ld_", (long)getpid());
	for (const char *s = name; *s && n + 1 < sizeof(dbname); s++)
		dbname[n++] =
		        (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')
		                ? *s
		        : (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a')
		                                   : '_';
	dbname[n] = '\0';
	if (db_open_raw(base, DB_READWRITE, &admin, err, sizeof(err)) != 0)
		fx_fail("cannot reach PostgreSQL:", err);
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", dbname);
	if (db_exec_sql(admin, sql, err, sizeof(err)) != 0)
		fx_fail("cannot drop", err);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
	if (db_exec_sql(admin, sql, err, sizeof(err)) != 0)
		fx_fail("cannot create", err);
	db_close(admin);
	if (fx_ndbs < 32)
		snprintf(fx_dbs[fx_ndbs++], sizeof(fx_dbs[0]), "%s", dbname);
	uri_with_db(base, dbname, p, sizeof(buf[0]));
	return p;
}

int fixture_db_exec(const char *target, const char *sql)
{
	char err[512];
	struct db *db;
	int rc = -1;

	if (db_open_raw(target, DB_READWRITE, &db, err, sizeof(err)) == 0) {
		/* rows the test inserted without an id after rows with one
		 * (db_audit_add names its ids): PostgreSQL's identity does not
		 * follow them by itself as SQLite's rowid does */
		if (db_is_pg(db))
			db_exec_sql(db,
			            "SELECT setval(pg_get_serial_sequence("
			            "'audit', 'id'), max(id)) FROM audit"
			            " HAVING max(id) IS NOT NULL",
			            err, sizeof(err));
		rc = db_exec_sql(db, sql, err, sizeof(err));
		db_close(db);
	}
	if (rc != 0)
		printf("# fixture_db_exec: %s: %s\n", sql, err);
	return rc;
}

long long fixture_db_int(const char *target, const char *sql)
{
	char err[512] = "no row";
	long long v = -1;
	struct db *db;
	int rc = -1;

	if (db_open_raw(target, DB_READONLY, &db, err, sizeof(err)) == 0) {
		rc = db_get_int(db, sql, NULL, 0, &v, err, sizeof(err));
		db_close(db);
	}
	if (rc != 1) {
		printf("# fixture_db_int: %s: %s\n", sql,
		       rc == 0 ? "no row" : err);
		v = -1;
	}
	return v;
}

char *fixture_db_text(const char *target, const char *sql)
{
	char err[512] = "";
	struct db_q q;
	struct db *db;
	char *v = NULL;

	if (db_open_raw(target, DB_READONLY, &db, err, sizeof(err)) != 0) {
		printf("# fixture_db_text: %s\n", err);
		return NULL;
	}
	if (db_q_open(&q, db, sql, NULL, 0, err, sizeof(err)) == 0) {
		if (db_q_next(&q) > 0)
			v = db_q_dup(&q, 0);
		db_q_close(&q);
	}
	db_close(db);
	return v;
}

int fixture_db_reset(const char *target)
{
	char p[600];

	if (!db_target_is_pg(target)) {
		snprintf(p, sizeof(p), "%s-wal", target);
		unlink(p);
		snprintf(p, sizeof(p), "%s-shm", target);
		unlink(p);
		return unlink(target) == 0 || errno == ENOENT ? 0 : -1;
	}
	return fixture_db_exec(target, "DROP SCHEMA public CASCADE; CREATE "
	                               "SCHEMA public");
}

int fixture_db_set_version(const char *target, int version)
{
	char err[512] = "";
	struct db *db;
	int rc = -1;

	if (db_open_raw(target, DB_READWRITE, &db, err, sizeof(err)) == 0) {
		rc = db_set_version(db, version, err, sizeof(err));
		db_close(db);
	}
	if (rc != 0)
		printf("# fixture_db_set_version: %s\n", err);
	return rc;
}
