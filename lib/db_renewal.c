/* db_renewal -- pending renewals and the renewal alerts sent (see db.h). */
#include "db_int.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int db_alert_sent(struct db *db, long long cert_id, int threshold, char *err,
                  size_t errlen)
{
	return db_get_int(db,
	                  "SELECT 1 FROM alerts_sent WHERE cert_id = ?"
	                  " AND threshold = ?",
	                  DB_ARGS(DB_INT(cert_id), DB_INT(threshold)), NULL,
	                  err, errlen);
}

int db_alert_record(struct db *db, long long cert_id, int threshold, char *err,
                    size_t errlen)
{
	return db_run(db,
	              "INSERT INTO alerts_sent (cert_id, threshold,"
	              " sent_at) VALUES (?,?,?) ON CONFLICT DO NOTHING",
	              DB_ARGS(DB_INT(cert_id), DB_INT(threshold),
	                      DB_INT(time(NULL))),
	              err, errlen);
}

/* struct db_renewal and the columns of renewals it holds, in SELECT
 * order. */
/* clang-format off */
#define C(t, f) DB_COL(t, struct db_renewal, f)
static const struct db_col renewal_cols[] = {
	C(DB_COL_INT, id),
	C(DB_COL_TEXT, mailbox),
	C(DB_COL_TEXT, kind),
	C(DB_COL_TEXT, key_backend),
	C(DB_COL_TEXT, key_location),
	C(DB_COL_TEXT, secret_file),
	C(DB_COL_TEXT, pubkey_sha256),
};
#undef C
/* clang-format on */
#define NRENEWAL_COLS (sizeof(renewal_cols) / sizeof(renewal_cols[0]))

int db_renewal_add(struct db *db, struct db_renewal *r, const char *csr_pem,
                   long long old_cert_id, const char *actor, char *err,
                   size_t errlen)
{
	if (db_run(db,
	           "INSERT INTO renewals (mailbox, kind, old_cert_id,"
	           " key_backend, key_location, secret_file, pubkey_sha256,"
	           " csr_pem, actor, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
	           DB_ARGS(DB_TEXT(r->mailbox), DB_TEXT(r->kind),
	                   DB_ID(old_cert_id), DB_TEXT(r->key_backend),
	                   DB_TEXT(r->key_location), DB_TEXT(r->secret_file),
	                   DB_TEXT(r->pubkey_sha256), DB_TEXT(csr_pem),
	                   DB_TEXT(actor), DB_INT(time(NULL))),
	           err, errlen) != 0)
		return -1;
	r->id = db_last_id(db);
	return db_history_add(db, r->mailbox, old_cert_id, "renewal",
	                      "new key and CSR", actor, err, errlen);
}

int db_renewal_find(struct db *db, const char *pubkey_sha256,
                    struct db_renewal *out, char *err, size_t errlen)
{
	char cols[256], sql[512];
	struct db_q q;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(sql, sizeof(sql),
	         "SELECT %s FROM renewals WHERE pubkey_sha256 = ?"
	         " AND completed_cert_id IS NULL ORDER BY id DESC LIMIT 1",
	         db_cols_list(renewal_cols, NRENEWAL_COLS, "", cols,
	                      sizeof(cols)));
	if (db_q_open(&q, db, sql, DB_ARGS(DB_TEXT(pubkey_sha256)), err,
	              errlen) != 0)
		return -1;
	if ((rc = db_q_next(&q)) > 0)
		db_q_fill(&q, 0, renewal_cols, NRENEWAL_COLS, out, 1);
	if (db_q_close(&q) != 0)
		return -1;
	return rc;
}

int db_renewal_complete(struct db *db, long long id, long long cert_id,
                        char *err, size_t errlen)
{
	return db_run(db,
	              "UPDATE renewals SET completed_cert_id = ?,"
	              " completed_at = ? WHERE id = ?",
	              DB_ARGS(DB_INT(cert_id), DB_INT(time(NULL)), DB_INT(id)),
	              err, errlen);
}

void db_renewal_clear(struct db_renewal *r)
{
	db_cols_free(renewal_cols, NRENEWAL_COLS, r, sizeof(*r));
}
