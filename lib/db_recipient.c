/* db_recipient -- recipient certificates and CRL entries (schema 4) (see
 * db.h). */
#include "db_int.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* struct db_recipient and the columns of recipient_certs: one table, in
 * SELECT order. */
/* clang-format off */
#define C(t, f) DB_COL(t, struct db_recipient, f)
static const struct db_col recipient_cols[] = {
	C(DB_COL_INT, id),
	C(DB_COL_TEXT, address),
	DB_CERT_IDENTITY_COLS(struct db_recipient),
	C(DB_COL_TEXT, status),
	C(DB_COL_TEXT, source),
	C(DB_COL_TEXT, cert_pem),
	C(DB_COL_TIME, created_at),
};
#undef C
/* clang-format on */
#define NRECIPIENT_COLS (sizeof(recipient_cols) / sizeof(recipient_cols[0]))

void db_recipient_clear(struct db_recipient *r)
{
	db_cols_free(recipient_cols, NRECIPIENT_COLS, r, sizeof(*r));
}

int db_recipient_add(struct db *db, const struct db_recipient *r,
                     const char *actor, int *added, char *err, size_t errlen)
{
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
	rc = db_run(db,
	            "INSERT INTO recipient_certs (address, subject, issuer,"
	            " serial, fingerprint, not_before, not_after, status,"
	            " source, cert_pem, created_at) VALUES"
	            " (?,?,?,upper(?),upper(?),?,?,'active',?,?,?)"
	            " ON CONFLICT (address, fingerprint) DO NOTHING",
	            DB_ARGS(DB_TEXT(address), DB_TEXT(r->subject),
	                    DB_TEXT(r->issuer), DB_TEXT(r->serial),
	                    DB_TEXT(r->fingerprint), DB_INT(r->not_before),
	                    DB_INT(r->not_after), DB_TEXT(r->source),
	                    DB_TEXT(r->cert_pem), DB_INT(time(NULL))),
	            err, errlen);
	if (rc == 0 && db_changes(db) > 0) {
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

int db_recipients(struct db *db, const char *address, int active_only,
                  db_recipient_fn fn, void *arg, char *err, size_t errlen)
{
	char cols[512], sql[1024];
	struct db_q q;

	snprintf(sql, sizeof(sql),
	         "SELECT %s FROM recipient_certs"
	         " WHERE (?1 IS NULL OR address = lower(?1))"
	         " AND (?2 = 0 OR status = 'active')"
	         " ORDER BY address, not_before DESC, id DESC",
	         db_cols_list(recipient_cols, NRECIPIENT_COLS, "", cols,
	                      sizeof(cols)));
	if (db_q_open(&q, db, sql,
	              DB_ARGS(DB_TEXT(address), DB_INT(active_only ? 1 : 0)),
	              err, errlen) != 0)
		return -1;
	while (db_q_next(&q) > 0) {
		struct db_recipient r;
		db_q_fill(&q, 0, recipient_cols, NRECIPIENT_COLS, &r, 0);
		if (fn(arg, &r))
			break;
	}
	return db_q_close(&q);
}

/* How spec matches, for db_recipient_remove: rows by id, rows by serial or
 * fingerprint that are another certificate than the id's, and distinct
 * certificates matched by serial or fingerprint.  Returns 0 or -1. */
static int recipient_match_counts(struct db *db, const char *spec, int *by_id,
                                  int *by_other, int *certs, char *err,
                                  size_t errlen)
{
	struct db_q q;
	int rc;

	if (db_q_open(&q, db,
	              "SELECT (SELECT count(*) FROM recipient_certs"
	              "        WHERE CAST(id AS TEXT) = ?1),"
	              " (SELECT count(*) FROM recipient_certs"
	              "  WHERE (serial = upper(?1) OR fingerprint = upper(?1))"
	              "  AND fingerprint NOT IN (SELECT fingerprint"
	              "   FROM recipient_certs WHERE CAST(id AS TEXT) = ?1)),"
	              " (SELECT count(DISTINCT fingerprint) FROM "
	              "recipient_certs"
	              "  WHERE serial = upper(?1) OR fingerprint = upper(?1))",
	              DB_ARGS(DB_TEXT(spec)), err, errlen) != 0)
		return -1;
	if ((rc = db_q_next(&q)) > 0) {
		*by_id = (int)db_q_int(&q, 0);
		*by_other = (int)db_q_int(&q, 1);
		*certs = (int)db_q_int(&q, 2);
	}
	if (db_q_close(&q) != 0)
		return -1;
	return rc > 0 ? 0 : seterr(err, errlen, "database: no counts");
}

/* The rows db_recipient_remove takes: ?1 the spec. */
#define REMOVE_BY_ADDRESS " FROM recipient_certs WHERE address = lower(?1)"
#define REMOVE_BY_CERT                                      \
	" FROM recipient_certs WHERE CAST(id AS TEXT) = ?1" \
	" OR serial = upper(?1) OR fingerprint = upper(?1)"

struct remove {
	const char *spec, *actor;
	int by_address, count;
};

/* History first, from the rows about to go, then the rows: two statements
 * whatever their number. */
static int remove_rows(struct db *db, void *arg, char *err, size_t errlen)
{
	struct remove *r = arg;
	char sql[512];

	snprintf(sql, sizeof(sql),
	         "INSERT INTO mailbox_history (address, cert_id, event,"
	         " detail, actor, at) SELECT address, NULL,"
	         " 'recipient-remove', serial, ?2, ?3%s ORDER BY id",
	         r->by_address ? REMOVE_BY_ADDRESS : REMOVE_BY_CERT);
	if (db_run(db, sql,
	           DB_ARGS(DB_TEXT(r->spec), DB_TEXT(r->actor),
	                   DB_INT(time(NULL))),
	           err, errlen) != 0)
		return -1;
	snprintf(sql, sizeof(sql), "DELETE%s",
	         r->by_address ? REMOVE_BY_ADDRESS : REMOVE_BY_CERT);
	if (db_run(db, sql, DB_ARGS(DB_TEXT(r->spec)), err, errlen) != 0)
		return -1;
	r->count = db_changes(db);
	return 0;
}

int db_recipient_remove(struct db *db, const char *spec, const char *actor,
                        int *count, char *err, size_t errlen)
{
	struct remove r = { spec, actor, spec && strchr(spec, '@') != NULL, 0 };

	*count = 0;
	if (spec == NULL || *spec == '\0')
		return seterr(err, errlen, "no recipient certificate named");
	if (!r.by_address) {
		int by_id = 0, by_other = 0, certs = 0;
		if (recipient_match_counts(db, spec, &by_id, &by_other, &certs,
		                           err, errlen) != 0)
			return -1;
		if (by_id > 0 && by_other > 0)
			return seterr(err, errlen,
			              "'%s' is ambiguous (the id of one "
			              "recipient certificate and the serial of "
			              "another): give the fingerprint",
			              spec);
		if (certs > 1)
			return seterr(err, errlen,
			              "serial '%s' is shared by %d recipient "
			              "certificates (of different issuers): "
			              "give "
			              "the fingerprint",
			              spec, certs);
	}
	if (db_atomic(db, remove_rows, &r, err, errlen) != 0)
		return -1;
	*count = r.count;
	return 0;
}

int db_serial_revoked(struct db *db, const char *issuer, const char *serial,
                      char *err, size_t errlen)
{
	return db_get_int(db,
	                  "SELECT 1 FROM revoked_serials"
	                  " WHERE issuer = ? AND serial = upper(?)",
	                  DB_ARGS(DB_TEXT(issuer), DB_TEXT(serial)), NULL, err,
	                  errlen);
}

int db_serial_revoke_add(struct db *db, const char *issuer, const char *serial,
                         const char *reason, time_t when, char *err,
                         size_t errlen)
{
	if (issuer == NULL || serial == NULL)
		return seterr(err, errlen,
		              "CRL entry without issuer or serial");
	return db_run(db,
	              "INSERT INTO revoked_serials (issuer, serial, reason,"
	              " revoked_at) VALUES (?,upper(?),?,?)"
	              " ON CONFLICT (issuer, serial) DO NOTHING",
	              DB_ARGS(DB_TEXT(issuer), DB_TEXT(serial), DB_TEXT(reason),
	                      DB_INT(when)),
	              err, errlen);
}
