/* db_renewal -- pending renewals and the renewal alerts sent (see db.h). */
#include "db_int.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int db_alert_sent(struct db *db, long long cert_id, int threshold, char *err,
                  size_t errlen)
{
	sqlite3_stmt *st = db_prep(db,
	                           "SELECT 1 FROM alerts_sent WHERE cert_id = ?"
	                           " AND threshold = ?",
	                           err, errlen);
	int rc;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, cert_id);
	sqlite3_bind_int(st, 2, threshold);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	return rc == SQLITE_ROW;
}

int db_alert_record(struct db *db, long long cert_id, int threshold, char *err,
                    size_t errlen)
{
	sqlite3_stmt *st = db_prep(db,
	                           "INSERT OR IGNORE INTO alerts_sent (cert_id,"
	                           " threshold, sent_at) VALUES (?,?,?)",
	                           err, errlen);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, cert_id);
	sqlite3_bind_int(st, 2, threshold);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
	return db_step_done(db, st, err, errlen);
}

void db_renewal_clear(struct db_renewal *r)
{
	free(r->mailbox);
	free(r->kind);
	free(r->key_backend);
	free(r->key_location);
	free(r->secret_file);
	free(r->pubkey_sha256);
	memset(r, 0, sizeof(*r));
}

int db_renewal_add(struct db *db, struct db_renewal *r, const char *csr_pem,
                   long long old_cert_id, const char *actor, char *err,
                   size_t errlen)
{
	sqlite3_stmt *st =
	        db_prep(db,
	                "INSERT INTO renewals (mailbox, kind, old_cert_id,"
	                " key_backend, key_location, secret_file,"
	                " pubkey_sha256, csr_pem, actor, created_at)"
	                " VALUES (?,?,?,?,?,?,?,?,?,?)",
	                err, errlen);

	if (st == NULL)
		return -1;
	db_bind_text(st, 1, r->mailbox);
	db_bind_text(st, 2, r->kind);
	if (old_cert_id > 0)
		sqlite3_bind_int64(st, 3, old_cert_id);
	else
		sqlite3_bind_null(st, 3);
	db_bind_text(st, 4, r->key_backend);
	db_bind_text(st, 5, r->key_location);
	db_bind_text(st, 6, r->secret_file);
	db_bind_text(st, 7, r->pubkey_sha256);
	db_bind_text(st, 8, csr_pem);
	db_bind_text(st, 9, actor);
	sqlite3_bind_int64(st, 10, (sqlite3_int64)time(NULL));
	if (db_step_done(db, st, err, errlen) != 0)
		return -1;
	r->id = sqlite3_last_insert_rowid(db->h);
	return db_history_add(db, r->mailbox, old_cert_id, "renewal",
	                      "new key and CSR", actor, err, errlen);
}

int db_renewal_find(struct db *db, const char *pubkey_sha256,
                    struct db_renewal *out, char *err, size_t errlen)
{
	sqlite3_stmt *st = db_prep(db,
	                           "SELECT id, mailbox, kind, key_backend,"
	                           " key_location, secret_file, pubkey_sha256"
	                           " FROM renewals WHERE pubkey_sha256 = ?"
	                           " AND completed_cert_id IS NULL"
	                           " ORDER BY id DESC LIMIT 1",
	                           err, errlen);
	int rc;

	memset(out, 0, sizeof(*out));
	if (st == NULL)
		return -1;
	db_bind_text(st, 1, pubkey_sha256);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->id = sqlite3_column_int64(st, 0);
		out->mailbox = db_col_dup(st, 1);
		out->kind = db_col_dup(st, 2);
		out->key_backend = db_col_dup(st, 3);
		out->key_location = db_col_dup(st, 4);
		out->secret_file = db_col_dup(st, 5);
		out->pubkey_sha256 = db_col_dup(st, 6);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	return rc == SQLITE_ROW;
}

int db_renewal_complete(struct db *db, long long id, long long cert_id,
                        char *err, size_t errlen)
{
	sqlite3_stmt *st = db_prep(db,
	                           "UPDATE renewals SET completed_cert_id = ?,"
	                           " completed_at = ? WHERE id = ?",
	                           err, errlen);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, cert_id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
	sqlite3_bind_int64(st, 3, id);
	return db_step_done(db, st, err, errlen);
}
