/* db_report -- the queries behind "smimectl report" (see db.h): the schema
 * stays in lib/, admin/report.c only formats the rows.  The SQL is common
 * to SQLite and PostgreSQL: months and dates are computed here, in UTC,
 * not by strftime. */
#include "db_int.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

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
	" AND c.not_after >= ?1"                                \
	" AND c.not_after < CASE WHEN ?2 < ?3 THEN ?2 ELSE ?3 END)"

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
 * that month: ?4 .. ?16 are the starts of the months (UTC) of the year of
 * ?1 and of the January after. */
#define BY_MONTH(counts)                                                    \
	"WITH m(k, lo, hi) AS (VALUES ('01', ?4, ?5), ('02', ?5, ?6),"      \
	" ('03', ?6, ?7), ('04', ?7, ?8), ('05', ?8, ?9), ('06', ?9, ?10)," \
	" ('07', ?10, ?11), ('08', ?11, ?12), ('09', ?12, ?13),"            \
	" ('10', ?13, ?14), ('11', ?14, ?15), ('12', ?15, ?16))"            \
	" SELECT m.k, " counts " FROM m LEFT JOIN audit a"                  \
	" ON a.at >= m.lo AND a.at < m.hi"                                  \
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
	        /* columns 1 and 2 are times, written out by db_report */
	"SELECT r.mailbox, c.not_after, r.completed_at,"
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
	        /* the mailbox is one of the recipients: removing it
	         * shortens the list (instr and strpos are each one
	         * engine's) */
	        " ON length(replace(', ' || a.recipients || ', ',"
	        "  ', ' || c.mailbox || ', ', '')) <"
	        "  length(', ' || a.recipients || ', ')"
	        " AND c.id = (SELECT max(id) FROM certificates"
	        "  WHERE mailbox = c.mailbox)"
	        " WHERE " INBOUND_ACTIONS " AND " AUDIT_IN_YEAR
	        " GROUP BY 1 ORDER BY 1",
};

#define REPORT_MAXCOLS 8
#define MONTH_ARGS     13 /* ?4 .. ?16 of BY_MONTH */

/* The columns of each table that hold a time, written "YYYY-MM-DD
 * HH:MM:SS" (UTC) for the caller: bit i for column i. */
static const unsigned report_times[DB_REPORT_TABLES] = {
	[DB_REPORT_LATE_RENEWALS] = 1u << 1 | 1u << 2,
};

/* The arguments of a query: the period, now, and for the tables by month
 * the month starts of the year of start. */
static int report_args(enum db_report_table table, time_t start, time_t end,
                       time_t now, struct db_val *args)
{
	struct tm tm;

	args[0] = DB_INT(start);
	args[1] = DB_INT(end);
	args[2] = DB_INT(now);
	if (table != DB_REPORT_MESSAGES_BY_MONTH &&
	    table != DB_REPORT_INBOUND_BY_MONTH)
		return 3;
	gmtime_r(&start, &tm);
	for (int i = 0; i < MONTH_ARGS; i++) {
		struct tm m = { .tm_year = tm.tm_year + (i == 12),
			        .tm_mon = i % 12,
			        .tm_mday = 1 };
		args[3 + i] = DB_INT((long long)timegm(&m));
	}
	return 3 + MONTH_ARGS;
}

/* Column i of the row, with a time column written out in buf. */
static const char *report_col(const struct db_q *q, int i, unsigned times,
                              char *buf, size_t len)
{
	time_t t;
	struct tm tm;

	if (!(times & 1u << i) || db_q_text(q, i) == NULL)
		return db_q_text(q, i);
	t = (time_t)db_q_int(q, i);
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}

int db_report(struct db *db, enum db_report_table table, time_t start,
              time_t end, time_t now, db_row_fn fn, void *arg, char *err,
              size_t errlen)
{
	const char *cols[REPORT_MAXCOLS];
	char when[REPORT_MAXCOLS][32];
	struct db_val args[3 + MONTH_ARGS];
	struct db_q q;
	int n, nargs;

	if ((int)table < 0 || table >= DB_REPORT_TABLES)
		return seterr(err, errlen, "report: no table %d", (int)table);
	nargs = report_args(table, start, end, now, args);
	if (db_q_open(&q, db, report_sql[table], args, nargs, err, errlen) != 0)
		return -1;
	n = db_q_ncols(&q);
	if (n > REPORT_MAXCOLS)
		n = REPORT_MAXCOLS;
	while (db_q_next(&q) > 0) {
		for (int i = 0; i < n; i++)
			cols[i] = report_col(&q, i, report_times[table],
			                     when[i], sizeof(when[i]));
		if (fn(arg, n, cols))
			break;
	}
	return db_q_close(&q);
}
