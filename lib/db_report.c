/* db_report -- the queries behind "smimectl report" (see db.h): the schema
 * stays in lib/, admin/report.c only formats the rows. */
#include "db_int.h"
#include "util.h"

#include <stdio.h>

/* Counts of certificates per group (kind or unit) for the year [?1, ?2),
 * active as of ?3. */
#define CERT_COUNTS(g)                                          \
	"(SELECT count(*) FROM certificates c WHERE " g         \
	" AND c.status = 'active' AND c.not_after >= ?3),"      \
	" (SELECT count(*) FROM certificates c WHERE " g        \
	" AND c.not_before >= ?1 AND c.not_before < ?2),"       \
	" (SELECT count(*) FROM renewals r JOIN certificates c" \
	"  ON c.id = r.completed_cert_id WHERE " g              \
	" AND r.completed_at >= ?1 AND r.completed_at < ?2),"   \
	" (SELECT count(*) FROM certificates c WHERE " g        \
	" AND c.revoked_at >= ?1 AND c.revoked_at < ?2),"       \
	" (SELECT count(*) FROM certificates c WHERE " g        \
	" AND c.not_after >= ?1 AND c.not_after < min(?2, ?3))"

/* Audit rows a counted as signed, encrypted, unsigned and failed. */
#define MESSAGE_COUNTS                                                   \
	"count(CASE WHEN a.action = 'signed' THEN 1 END),"               \
	" count(CASE WHEN a.action = 'encrypted' THEN 1 END),"           \
	" count(CASE WHEN a.action = 'unsigned' THEN 1 END),"            \
	" count(CASE WHEN a.action IN ('tempfailed', 'rejected') THEN 1" \
	" END)"

/* Inbound audit rows a (issue 13) counted by action, each row once. */
#define INBOUND_COUNTS                                                         \
	"count(DISTINCT CASE WHEN a.action = 'decrypted' THEN a.id END),"      \
	" count(DISTINCT CASE WHEN a.action = 'not-decrypted' THEN a.id END)," \
	" count(DISTINCT CASE WHEN a.action = 'verified' THEN a.id END),"      \
	" count(DISTINCT CASE WHEN a.action = 'verify-failed' THEN a.id END)"
#define INBOUND_ACTIONS                                           \
	"a.action IN ('decrypted', 'not-decrypted', 'verified', " \
	"'verify-failed')"

/* Every month of the year, each with the counts of the audit rows a of
 * that month. */
#define BY_MONTH(counts)                                                   \
	"WITH RECURSIVE m(k) AS (SELECT 1 UNION ALL"                       \
	" SELECT k + 1 FROM m WHERE k < 12)"                               \
	" SELECT printf('%02d', m.k), " counts " FROM m LEFT JOIN audit a" \
	" ON strftime('%m', a.at, 'unixepoch') = printf('%02d', m.k)"      \
	" AND " AUDIT_IN_YEAR " GROUP BY m.k ORDER BY m.k"

/* The audit rows of the year; ?3 is bound for every query alike. */
#define AUDIT_IN_YEAR "a.at >= ?1 AND a.at < ?2 AND ?3 IS NOT NULL"

/* One query per table, in enum db_report_table order. */
static const char *const report_sql[DB_REPORT_TABLES] = {
	[DB_REPORT_CERTS_BY_KIND] = "SELECT k.kind, " CERT_COUNTS(
	        "c.kind = k.kind") " FROM (SELECT 'individual' AS kind"
	                           " UNION ALL SELECT 'role'"
	                           " UNION ALL SELECT 'system') k",
	[DB_REPORT_CERTS_BY_UNIT] = "SELECT u.unit, " CERT_COUNTS(
	        "coalesce(c.unit, '-') = u.unit") " FROM (SELECT "
	                                          "DISTINCT "
	                                          "coalesce(unit, '-')"
	                                          " AS unit FROM "
	                                          "certificates) u"
	                                          " ORDER BY u.unit",
	/* every month, with or without mail */
	[DB_REPORT_MESSAGES_BY_MONTH] = BY_MONTH(MESSAGE_COUNTS),
	/* the unit of the sender's newest certificate */
	[DB_REPORT_MESSAGES_BY_UNIT] =
	        "SELECT coalesce(c.unit, '-'), " MESSAGE_COUNTS
	        " FROM audit a LEFT JOIN certificates c ON c.id ="
	        " (SELECT max(id) FROM certificates"
	        "  WHERE mailbox = a.from_addr)"
	        " WHERE NOT " INBOUND_ACTIONS " AND " AUDIT_IN_YEAR
	        " GROUP BY 1 ORDER BY 1",
	[DB_REPORT_UNSIGNED_REASONS] =
	        "SELECT result, count(*) FROM audit a"
	        " WHERE action = 'unsigned' AND " AUDIT_IN_YEAR
	        " GROUP BY result ORDER BY 2 DESC, 1",
	[DB_REPORT_UNSIGNED_MAILBOXES] =
	        "SELECT from_addr, count(*) FROM audit a"
	        " WHERE action = 'unsigned' AND from_addr IS NOT NULL"
	        " AND " AUDIT_IN_YEAR " GROUP BY from_addr ORDER BY 2 DESC, 1",
	[DB_REPORT_LATE_RENEWALS] =
	        "SELECT r.mailbox, datetime(c.not_after, 'unixepoch'),"
	        " datetime(r.completed_at, 'unixepoch'),"
	        " (r.completed_at - c.not_after) / 86400"
	        " FROM renewals r JOIN certificates c ON c.id = r.old_cert_id"
	        " WHERE r.completed_at >= ?1 AND r.completed_at < ?2"
	        " AND r.completed_at > c.not_after AND ?3 IS NOT NULL"
	        " ORDER BY 1",
	[DB_REPORT_INBOUND_BY_MONTH] = BY_MONTH(INBOUND_COUNTS),
	/* the units of the recipients' newest certificates */
	[DB_REPORT_INBOUND_BY_UNIT] =
	        "SELECT coalesce(c.unit, '-'), " INBOUND_COUNTS
	        " FROM audit a LEFT JOIN certificates c"
	        " ON instr(', ' || a.recipients || ', ',"
	        "  ', ' || c.mailbox || ', ') > 0"
	        " AND c.id = (SELECT max(id) FROM certificates"
	        "  WHERE mailbox = c.mailbox)"
	        " WHERE " INBOUND_ACTIONS " AND " AUDIT_IN_YEAR
	        " GROUP BY 1 ORDER BY 1",
};

#define REPORT_MAXCOLS 8

int db_report(struct db *db, enum db_report_table table, time_t start,
              time_t end, time_t now, db_row_fn fn, void *arg, char *err,
              size_t errlen)
{
	const char *cols[REPORT_MAXCOLS];
	struct db_q q;
	int n;

	if ((int)table < 0 || table >= DB_REPORT_TABLES)
		return seterr(err, errlen, "report: no table %d", (int)table);
	if (db_q_open(&q, db, report_sql[table],
	              DB_ARGS(DB_INT(start), DB_INT(end), DB_INT(now)), err,
	              errlen) != 0)
		return -1;
	n = db_q_ncols(&q);
	if (n > REPORT_MAXCOLS)
		n = REPORT_MAXCOLS;
	while (db_q_next(&q) > 0) {
		for (int i = 0; i < n; i++)
			cols[i] = db_q_text(&q, i);
		if (fn(arg, n, cols))
			break;
	}
	return db_q_close(&q);
}
