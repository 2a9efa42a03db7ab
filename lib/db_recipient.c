/* db_recipient -- recipient certificates and CRL entries (schema 4) (see db.h). */
#include "db_int.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void db_recipient_clear(struct db_recipient *r)
{
	if (r == NULL)
		return;
	free(r->address);
	free(r->subject);
	free(r->issuer);
	free(r->serial);
	free(r->fingerprint);
	free(r->status);
	free(r->source);
	free(r->cert_pem);
	memset(r, 0, sizeof(*r));
}

int db_recipient_add(struct db *db, const struct db_recipient *r,
                     const char *actor, int *added, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	char *address;
	int rc;

	*added = 0;
	if (r->address == NULL || r->fingerprint == NULL || r->serial == NULL ||
	    r->cert_pem == NULL)
		return seterr(err, errlen,
		              "recipient certificate without address, serial, "
		              "fingerprint or PEM");
	if (r->source == NULL || (strcmp(r->source, "import") != 0 &&
	                          strcmp(r->source, "harvest") != 0))
		return seterr(err, errlen,
		              "recipient certificate source must be import or "
		              "harvest, not '%s'",
		              r->source ? r->source : "(none)");
	address = str_lower(strdup(r->address));
	if (address == NULL)
		return seterr(err, errlen, "out of memory");
	st = db_prep(db,
	             "INSERT INTO recipient_certs (address, subject, issuer, "
	             "serial,"
	             " fingerprint, not_before, not_after, status, source, "
	             "cert_pem,"
	             " created_at) VALUES "
	             "(?,?,?,upper(?),upper(?),?,?,'active',?,?,?)"
	             " ON CONFLICT (address, fingerprint) DO NOTHING",
	             err, errlen);
	if (st == NULL) {
		free(address);
		return -1;
	}
	db_bind_text(st, 1, address);
	db_bind_text(st, 2, r->subject);
	db_bind_text(st, 3, r->issuer);
	db_bind_text(st, 4, r->serial);
	db_bind_text(st, 5, r->fingerprint);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)r->not_before);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)r->not_after);
	db_bind_text(st, 8, r->source);
	db_bind_text(st, 9, r->cert_pem);
	sqlite3_bind_int64(st, 10, (sqlite3_int64)time(NULL));
	rc = db_step_done(db, st, err, errlen);
	if (rc == 0 && sqlite3_changes(db->h) > 0) {
		*added = 1;
		rc = db_history_add(db, address, 0,
		                    strcmp(r->source, "harvest") == 0
		                            ? "recipient-harvest"
		                            : "recipient-import",
		                    r->serial, actor, err, errlen);
	}
	free(address);
	return rc;
}

#define RECIPIENT_COLS                                                   \
	"id, address, subject, issuer, serial, fingerprint, not_before," \
	" not_after, status, source, cert_pem, created_at"

int db_recipients(struct db *db, const char *address, int active_only,
                  db_recipient_fn fn, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt *st =
	        db_prep(db,
	                "SELECT " RECIPIENT_COLS " FROM recipient_certs"
	                " WHERE (?1 IS NULL OR address = lower(?1))"
	                " AND (?2 = 0 OR status = 'active')"
	                " ORDER BY address, not_before DESC, id DESC",
	                err, errlen);
	int rc;

	if (st == NULL)
		return -1;
	db_bind_text(st, 1, address);
	sqlite3_bind_int(st, 2, active_only ? 1 : 0);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_recipient r;
		int stop;
		r.id = sqlite3_column_int64(st, 0);
		r.address = (char *)sqlite3_column_text(st, 1);
		r.subject = (char *)sqlite3_column_text(st, 2);
		r.issuer = (char *)sqlite3_column_text(st, 3);
		r.serial = (char *)sqlite3_column_text(st, 4);
		r.fingerprint = (char *)sqlite3_column_text(st, 5);
		r.not_before = (time_t)sqlite3_column_int64(st, 6);
		r.not_after = (time_t)sqlite3_column_int64(st, 7);
		r.status = (char *)sqlite3_column_text(st, 8);
		r.source = (char *)sqlite3_column_text(st, 9);
		r.cert_pem = (char *)sqlite3_column_text(st, 10);
		r.created_at = (time_t)sqlite3_column_int64(st, 11);
		stop = fn(arg, &r);
		if (stop)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		seterr(err, errlen, "database: %s", db_errmsg(db));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

/* How spec matches, for db_recipient_remove: rows by id, rows by serial or
 * fingerprint that are another certificate than the id's, and distinct
 * certificates matched by serial or fingerprint.  Returns 0 or -1. */
static int recipient_match_counts(struct db *db, const char *spec, int *by_id,
                                  int *by_other, int *certs, char *err,
                                  size_t errlen)
{
	sqlite3_stmt *st = db_prep(
	        db,
	        "SELECT (SELECT count(*) FROM recipient_certs"
	        "        WHERE CAST(id AS TEXT) = ?1),"
	        " (SELECT count(*) FROM recipient_certs"
	        "  WHERE (serial = upper(?1) OR fingerprint = upper(?1))"
	        "  AND fingerprint NOT IN (SELECT fingerprint FROM "
	        "recipient_certs"
	        "                          WHERE CAST(id AS TEXT) = ?1)),"
	        " (SELECT count(DISTINCT fingerprint) FROM recipient_certs"
	        "  WHERE serial = upper(?1) OR fingerprint = upper(?1))",
	        err, errlen);
	int rc;

	if (st == NULL)
		return -1;
	db_bind_text(st, 1, spec);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*by_id = sqlite3_column_int(st, 0);
		*by_other = sqlite3_column_int(st, 1);
		*certs = sqlite3_column_int(st, 2);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	return 0;
}

int db_recipient_remove(struct db *db, const char *spec, const char *actor,
                        int *count, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	struct gone {
		char *address, *serial;
	} *gone = NULL;
	int rc, n = 0, by_address = spec && strchr(spec, '@') != NULL;

	*count = 0;
	if (spec == NULL || *spec == '\0')
		return seterr(err, errlen, "no recipient certificate named");
	if (!by_address) {
		int by_id = 0, by_other = 0, certs = 0;
		if (recipient_match_counts(db, spec, &by_id, &by_other, &certs,
		                           err, errlen) != 0)
			return -1;
		if (by_id > 0 && by_other > 0)
			return seterr(err, errlen,
			              "'%s' is ambiguous (the id of one "
			              "recipient "
			              "certificate and the serial of another): "
			              "give "
			              "the fingerprint",
			              spec);
		if (certs > 1)
			return seterr(err, errlen,
			              "serial '%s' is shared by %d recipient "
			              "certificates (of different issuers): "
			              "give "
			              "the fingerprint",
			              spec, certs);
	}
	st = db_prep(db,
	             by_address
	                     ? "DELETE FROM recipient_certs WHERE address = "
	                       "lower(?1)"
	                       " RETURNING address, serial"
	                     : "DELETE FROM recipient_certs WHERE CAST(id AS "
	                       "TEXT) = ?1"
	                       " OR serial = upper(?1) OR fingerprint = "
	                       "upper(?1)"
	                       " RETURNING address, serial",
	             err, errlen);
	if (st == NULL)
		return -1;
	db_bind_text(st, 1, spec);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct gone *p = realloc(gone, (size_t)(n + 1) * sizeof(*gone));
		if (p == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
		gone = p;
		gone[n].address = db_col_dup(st, 0);
		gone[n].serial = db_col_dup(st, 1);
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		seterr(err, errlen, "database: %s",
		       rc == SQLITE_NOMEM ? "out of memory" : db_errmsg(db));
		rc = -1;
	} else
		rc = 0;
	for (int i = 0; i < n; i++) {
		if (rc == 0)
			rc = db_history_add(db, gone[i].address, 0,
			                    "recipient-remove", gone[i].serial,
			                    actor, err, errlen);
		free(gone[i].address);
		free(gone[i].serial);
	}
	free(gone);
	if (rc == 0)
		*count = n;
	return rc;
}

int db_serial_revoked(struct db *db, const char *issuer, const char *serial,
                      char *err, size_t errlen)
{
	sqlite3_stmt *st = db_prep(db,
	                           "SELECT 1 FROM revoked_serials"
	                           " WHERE issuer = ? AND serial = upper(?)",
	                           err, errlen);
	int rc;

	if (st == NULL)
		return -1;
	db_bind_text(st, 1, issuer);
	db_bind_text(st, 2, serial);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	return rc == SQLITE_ROW;
}

int db_serial_revoke_add(struct db *db, const char *issuer, const char *serial,
                         const char *reason, time_t when, char *err,
                         size_t errlen)
{
	sqlite3_stmt *st;

	if (issuer == NULL || serial == NULL)
		return seterr(err, errlen,
		              "CRL entry without issuer or serial");
	st = db_prep(db,
	             "INSERT INTO revoked_serials (issuer, serial, reason,"
	             " revoked_at) VALUES (?,upper(?),?,?)"
	             " ON CONFLICT (issuer, serial) DO NOTHING",
	             err, errlen);
	if (st == NULL)
		return -1;
	db_bind_text(st, 1, issuer);
	db_bind_text(st, 2, serial);
	db_bind_text(st, 3, reason);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)when);
	return db_step_done(db, st, err, errlen);
}
