/*
 * report -- smimectl report: the yearly monitoring and evaluation report
 * (Pasal 24) to the mayor and to BSrE, as CSV, JSON or one self-contained
 * HTML file with tables and inline SVG charts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "smimectl.h"

#define MAXCOLS 8

struct table {
	enum db_report_table which;
	const char *key;   /* JSON key / CSV section */
	const char *title; /* for people */
	const char *cols[MAXCOLS];
	int ncols;
	char ***rows;
	size_t nrows;
};

/* The report's tables, in the order they are written. */
static const struct table tables[] = {
	{ DB_REPORT_CERTS_BY_KIND,
	  "certificates_by_kind",
	  "Sertifikat menurut jenis",
	  { "kind", "active", "issued", "renewed", "revoked", "expired" },
	  6,
	  NULL,
	  0 },
	{ DB_REPORT_CERTS_BY_UNIT,
	  "certificates_by_unit",
	  "Sertifikat menurut Perangkat Daerah",
	  { "unit", "active", "issued", "renewed", "revoked", "expired" },
	  6,
	  NULL,
	  0 },
	{ DB_REPORT_MESSAGES_BY_MONTH,
	  "messages_by_month",
	  "Surat per bulan",
	  { "month", "signed", "encrypted", "unsigned", "failed" },
	  5,
	  NULL,
	  0 },
	{ DB_REPORT_MESSAGES_BY_UNIT,
	  "messages_by_unit",
	  "Surat menurut Perangkat Daerah",
	  { "unit", "signed", "encrypted", "unsigned", "failed" },
	  5,
	  NULL,
	  0 },
	{ DB_REPORT_UNSIGNED_REASONS,
	  "unsigned_reasons",
	  "Surat tanpa tanda tangan: alasan",
	  { "reason", "messages" },
	  2,
	  NULL,
	  0 },
	{ DB_REPORT_UNSIGNED_MAILBOXES,
	  "unsigned_mailboxes",
	  "Kotak surat yang mengirim surat dinas tanpa tanda tangan",
	  { "mailbox", "messages" },
	  2,
	  NULL,
	  0 },
	{ DB_REPORT_LATE_RENEWALS,
	  "late_renewals",
	  "Pembaruan yang terlambat",
	  { "mailbox", "expired", "renewed", "days_late" },
	  4,
	  NULL,
	  0 },
	{ DB_REPORT_INBOUND_BY_MONTH,
	  "inbound_by_month",
	  "Surat masuk per bulan",
	  { "month", "decrypted", "not_decrypted", "verified",
	    "verify_failed" },
	  5,
	  NULL,
	  0 },
	{ DB_REPORT_INBOUND_BY_UNIT,
	  "inbound_by_unit",
	  "Surat masuk menurut Perangkat Daerah penerima",
	  { "unit", "decrypted", "not_decrypted", "verified", "verify_failed" },
	  5,
	  NULL,
	  0 },
};
#define NTABLES (sizeof(tables) / sizeof(tables[0]))

static int table_row(void *arg, int n, const char *const *cells)
{
	struct table *t = arg;
	char **row, ***rows;

	if (n != t->ncols)
		die(EX_SOFTWARE, "report: %s has %d columns, not %d", t->key, n,
		    t->ncols);
	row = calloc((size_t)t->ncols, sizeof(char *));
	rows = realloc(t->rows, (t->nrows + 1) * sizeof(*rows));
	if (row == NULL || rows == NULL)
		die(EX_OSERR, "out of memory");
	for (int i = 0; i < t->ncols; i++)
		row[i] = strdup(cells[i] ? cells[i] : "");
	t->rows = rows;
	t->rows[t->nrows++] = row;
	return 0;
}

static void table_free(struct table *t)
{
	for (size_t r = 0; r < t->nrows; r++) {
		for (int c = 0; c < t->ncols; c++)
			free(t->rows[r][c]);
		free(t->rows[r]);
	}
	free(t->rows);
}

/* ---- output ---------------------------------------------------------- */

static void csv_cell(const char *s)
{
	if (strpbrk(s, ",\"\n\r") == NULL) {
		fputs(s, stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		if (*s == '"')
			putchar('"');
		putchar(*s);
	}
	putchar('"');
}

static void out_csv(struct table *t, size_t n, int year)
{
	printf("# Laporan pemantauan dan evaluasi sertifikat elektronik %d\n",
	       year);
	for (size_t i = 0; i < n; i++) {
		printf("\n# %s\n", t[i].key);
		for (int c = 0; c < t[i].ncols; c++) {
			if (c)
				putchar(',');
			csv_cell(t[i].cols[c]);
		}
		putchar('\n');
		for (size_t r = 0; r < t[i].nrows; r++) {
			for (int c = 0; c < t[i].ncols; c++) {
				if (c)
					putchar(',');
				csv_cell(t[i].rows[r][c]);
			}
			putchar('\n');
		}
	}
}

static int numeric(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static void out_json(struct table *t, size_t n, int year)
{
	printf("{\"year\": %d", year);
	for (size_t i = 0; i < n; i++) {
		printf(",\n \"%s\": [", t[i].key);
		for (size_t r = 0; r < t[i].nrows; r++) {
			printf("%s\n  {", r ? "," : "");
			for (int c = 0; c < t[i].ncols; c++) {
				printf("%s\"%s\": ", c ? ", " : "",
				       t[i].cols[c]);
				if (c > 0 && numeric(t[i].rows[r][c]))
					fputs(t[i].rows[r][c], stdout);
				else
					json_str(t[i].rows[r][c]);
			}
			putchar('}');
		}
		printf("%s]", t[i].nrows ? "\n " : "");
	}
	printf("\n}\n");
}

static void html_text(const char *s)
{
	for (; *s; s++) {
		const char *e = *s == '<'   ? "&lt;"
		                : *s == '>' ? "&gt;"
		                : *s == '&' ? "&amp;"
		                : *s == '"' ? "&quot;"
		                            : NULL;
		if (e)
			fputs(e, stdout);
		else
			putchar(*s);
	}
}

/* Column names and months in words, for the people who read the HTML. */
static const char *label(const char *key)
{
	static const char *const map[][2] = {
		{ "kind", "Jenis" },
		{ "active", "Aktif" },
		{ "issued", "Diterbitkan" },
		{ "renewed", "Diperbarui" },
		{ "revoked", "Dicabut" },
		{ "expired", "Kedaluwarsa" },
		{ "unit", "Perangkat Daerah" },
		{ "month", "Bulan" },
		{ "signed", "Ditandatangani" },
		{ "encrypted", "Dienkripsi" },
		{ "unsigned", "Tanpa tanda tangan" },
		{ "failed", "Gagal" },
		{ "reason", "Alasan" },
		{ "messages", "Jumlah surat" },
		{ "mailbox", "Kotak surat" },
		{ "days_late", "Terlambat (hari)" },
		{ "decrypted", "Didekripsi" },
		{ "not_decrypted", "Tidak didekripsi" },
		{ "verified", "Tanda tangan sah" },
		{ "verify_failed", "Tanda tangan tidak sah" },
		{ "individual", "perorangan" },
		{ "role", "jabatan/organisasi" },
		{ "system", "sistem elektronik" },
		{ "01", "Januari" },
		{ "02", "Februari" },
		{ "03", "Maret" },
		{ "04", "April" },
		{ "05", "Mei" },
		{ "06", "Juni" },
		{ "07", "Juli" },
		{ "08", "Agustus" },
		{ "09", "September" },
		{ "10", "Oktober" },
		{ "11", "November" },
		{ "12", "Desember" },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(key, map[i][0]) == 0)
			return map[i][1];
	return key;
}

static void html_table(const struct table *t)
{
	printf("<h2>");
	html_text(t->title);
	printf("</h2>\n<table>\n<tr>");
	for (int c = 0; c < t->ncols; c++) {
		printf("<th>");
		html_text(label(t->cols[c]));
		printf("</th>");
	}
	printf("</tr>\n");
	if (t->nrows == 0)
		printf("<tr><td colspan=\"%d\" class=\"none\">tidak ada</td>"
		       "</tr>\n",
		       t->ncols);
	for (size_t r = 0; r < t->nrows; r++) {
		printf("<tr>");
		for (int c = 0; c < t->ncols; c++) {
			printf("<td%s>", c > 0 && numeric(t->rows[r][c])
			                         ? " class=\"n\""
			                         : "");
			html_text(c == 0 ? label(t->rows[r][c])
			                 : t->rows[r][c]);
			printf("</td>");
		}
		printf("</tr>\n");
	}
	printf("</table>\n");
}

/* Stacked bars per row of t: columns 1..ncols-1, one colour each. */
static void html_bars(const struct table *t, const char *title)
{
	static const char *colours[] = { "#2e7d32", "#1565c0", "#ef6c00",
		                         "#c62828" };
	long max = 1;
	const int w = 720, h = 240, left = 40, bottom = 30;
	int bw;

	for (size_t r = 0; r < t->nrows; r++) {
		long sum = 0;
		for (int c = 1; c < t->ncols; c++)
			sum += atol(t->rows[r][c]);
		if (sum > max)
			max = sum;
	}
	bw = t->nrows ? (w - left - 10) / (int)t->nrows : 10;
	printf("<h2>");
	html_text(title);
	printf("</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
	       "height=\"%d\" role=\"img\" aria-label=\"",
	       w, h + 30);
	html_text(title);
	printf("\">\n<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
	       "stroke=\"#555\"/>\n<text x=\"2\" y=\"14\" font-size=\"11\">%ld"
	       "</text>\n",
	       left, h - bottom, w, h - bottom, max);
	for (size_t r = 0; r < t->nrows; r++) {
		int x = left + (int)r * bw + 4, y = h - bottom;
		for (int c = 1; c < t->ncols; c++) {
			int bh = (int)(atol(t->rows[r][c]) * (h - bottom - 20) /
			               max);
			if (bh <= 0)
				continue;
			y -= bh;
			printf("<rect x=\"%d\" y=\"%d\" width=\"%d\" "
			       "height=\"%d\" "
			       "fill=\"%s\"><title>",
			       x, y, bw - 8, bh, colours[(c - 1) % 4]);
			html_text(label(t->cols[c]));
			printf(": %s</title></rect>\n", t->rows[r][c]);
		}
		printf("<text x=\"%d\" y=\"%d\" font-size=\"11\">", x,
		       h - bottom + 14);
		html_text(t->rows[r][0]); /* month numbers fit under the bars */
		printf("</text>\n");
	}
	for (int c = 1; c < t->ncols; c++) {
		printf("<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" "
		       "fill=\"%s\"/><text x=\"%d\" y=\"%d\" font-size=\"11\">",
		       left + (c - 1) * 140, h + 8, colours[(c - 1) % 4],
		       left + (c - 1) * 140 + 14, h + 17);
		html_text(label(t->cols[c]));
		printf("</text>\n");
	}
	printf("</svg>\n");
}

static void out_html(struct table *t, size_t n, int year, int months_idx)
{
	char now[40];

	time_fmt(time(NULL), now, sizeof(now));
	printf("<!DOCTYPE html>\n<html lang=\"id\">\n<head>\n<meta "
	       "charset=\"utf-8\">\n<title>Laporan Sertifikat Elektronik "
	       "%d</title>\n<style>\n"
	       "body { font-family: sans-serif; margin: 2em; color: #222; }\n"
	       "table { border-collapse: collapse; margin-bottom: 1.5em; }\n"
	       "th, td { border: 1px solid #bbb; padding: 4px 10px; }\n"
	       "th { background: #eef; } td.n { text-align: right; }\n"
	       "td.none { color: #888; font-style: italic; }\n"
	       "</style>\n</head>\n<body>\n"
	       "<h1>Laporan Pemantauan dan Evaluasi Sertifikat Elektronik "
	       "Tahun %d</h1>\n<p>Pemerintah Kota Banjar &mdash; laporan "
	       "kepada Wali Kota dan BSrE (Peraturan Wali Kota Banjar No. "
	       "2/2018, Pasal 24). Dibuat %s oleh smimectl.</p>\n",
	       year, year, now);
	html_bars(&t[months_idx], "Surat per bulan");
	for (size_t i = 0; i < n; i++)
		html_table(&t[i]);
	printf("</body>\n</html>\n");
}

int cmd_report(int argc, char **argv)
{
	const char *format = NULL;
	char err[512], *e;
	struct config *cfg;
	struct db *db;
	long year = 0;
	struct tm tm;
	time_t t0, t1, now = time(NULL);
	size_t n = NTABLES, months = 0;
	struct table t[NTABLES];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--year") == 0 && i + 1 < argc) {
			year = strtol(argv[++i], &e, 10);
			if (*e || year < 2000 || year > 9999)
				year = -1;
		} else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc)
			format = argv[++i];
		else
			year = -1;
	}
	if (year <= 0 || format == NULL ||
	    (strcmp(format, "csv") && strcmp(format, "json") &&
	     strcmp(format, "html")))
		die(EX_USAGE,
		    "usage: report --year YYYY --format csv|json|html");
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (int)year - 1900;
	tm.tm_mday = 1;
	t0 = timegm(&tm);
	tm.tm_year++;
	t1 = timegm(&tm);
	cfg = load_config();
	become_user(cfg);
	db = open_db(cfg, DB_READONLY);
	memcpy(t, tables, sizeof(t));
	for (size_t i = 0; i < n; i++) {
		if (db_report(db, t[i].which, t0, t1, now, table_row, &t[i],
		              err, sizeof(err)) != 0)
			die(EX_SOFTWARE, "report: %s", err);
		if (t[i].which == DB_REPORT_MESSAGES_BY_MONTH)
			months = i;
	}

	if (strcmp(format, "csv") == 0)
		out_csv(t, n, (int)year);
	else if (strcmp(format, "json") == 0)
		out_json(t, n, (int)year);
	else
		out_html(t, n, (int)year, months);
	for (size_t i = 0; i < n; i++)
		table_free(&t[i]);
	db_close(db);
	config_free(cfg);
	return EX_OK;
}
