/*
 * notify -- smimectl notify: renewal alerts mailed through the local MTA
 * to the contact of each certificate at the alert_days thresholds, once
 * each, and by one node at a time (a run-once job: job_begin).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "util.h"
#include "smimectl.h"

/* The alert as shipped (Indonesian); alert_template names a file that
 * replaces it.  Placeholders: {mailbox} {owner} {unit} {serial} {expiry}
 * {days} {contact}.  The first lines up to a blank line are headers. */
static const char default_template[] =
        "Subject: [Sertifikat Elektronik] Sertifikat {mailbox} berakhir dalam "
        "{days} hari\n"
        "\n"
        "Yth. {owner},\n"
        "\n"
        "Sertifikat elektronik untuk kotak surat {mailbox} ({unit})\n"
        "akan berakhir masa berlakunya pada {expiry}, yaitu dalam {days} "
        "hari.\n"
        "Nomor seri sertifikat: {serial}.\n"
        "\n"
        "Sesuai Peraturan Wali Kota Banjar Nomor 2 Tahun 2018 Pasal 14,\n"
        "pembaruan sertifikat menjadi kewajiban pemilik sertifikat. Silakan\n"
        "ajukan permohonan pembaruan kepada Operator Pendaftaran (OP)\n"
        "sebelum tanggal tersebut, agar surat elektronik dinas dari kotak "
        "surat\n"
        "ini tetap dapat ditandatangani secara elektronik.\n"
        "\n"
        "Pesan ini dikirim otomatis oleh smimectl.\n";

struct notify_state {
	struct config *cfg;
	struct db *db;
	char *template;
	time_t now;
	int dry_run;
	int sent, failed, skipped;
};

/* Append s to the growing buffer *out. */
static void sb_add(char **out, size_t *len, const char *s, size_t n)
{
	char *p = realloc(*out, *len + n + 1);

	if (p == NULL)
		die(EX_OSERR, "out of memory");
	memcpy(p + *len, s, n);
	*len += n;
	p[*len] = '\0';
	*out = p;
}

static char *expand(const char *tpl, const char *const *keys,
                    const char *const *vals, size_t n)
{
	char *out = NULL;
	size_t len = 0;
	const char *p = tpl;

	sb_add(&out, &len, "", 0);
	while (*p) {
		size_t i;
		if (*p == '{') {
			for (i = 0; i < n; i++) {
				size_t kl = strlen(keys[i]);
				if (strncmp(p + 1, keys[i], kl) == 0 &&
				    p[1 + kl] == '}') {
					sb_add(&out, &len, vals[i],
					       strlen(vals[i]));
					p += kl + 2;
					break;
				}
			}
			if (i < n)
				continue;
		}
		sb_add(&out, &len, p, 1);
		p++;
	}
	return out;
}

/* Hand one message to the local MTA; 0 when it took it. */
static int send_mail(const char *sendmail, const char *msg)
{
	int fds[2], status;
	pid_t pid;
	size_t len = strlen(msg), off = 0;

	if (pipe(fds) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(fds[0], 0);
		close(fds[0]);
		close(fds[1]);
		execl(sendmail, sendmail, "-oi", "-t", (char *)NULL);
		_exit(EX_UNAVAILABLE);
	}
	close(fds[0]);
	signal(SIGPIPE, SIG_IGN);
	while (off < len) {
		ssize_t w = write(fds[1], msg + off, len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(fds[1]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return off == len && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0
	                                                                   : -1;
}

/* The alert for the certificate c of address: headers, then the template
 * expanded.  days is what is left, expiry its end as text. */
static char *notify_message(const struct notify_state *ns, const char *address,
                            const struct db_cert *c, int threshold, long days,
                            const char *expiry)
{
	const struct config *cfg = ns->cfg;
	const char *contact = c->contact ? c->contact : address;
	char dbuf[24], date[64], from[320], h[1024];
	char *body, *msg = NULL;
	size_t len = 0;
	struct tm tm;

	snprintf(dbuf, sizeof(dbuf), "%ld", days);
	{
		const char *keys[] = { "mailbox", "owner", "unit",   "serial",
			               "expiry",  "days",  "contact" };
		const char *vals[] = { address,
			               c->owner ? c->owner : address,
			               c->unit ? c->unit : "-",
			               c->serial,
			               expiry,
			               dbuf,
			               contact };
		body = expand(ns->template, keys, vals, 7);
	}
	snprintf(from, sizeof(from), "%s",
	         cfg->alert_from ? cfg->alert_from : "postmaster@");
	if (cfg->alert_from == NULL)
		snprintf(from, sizeof(from), "postmaster@%s", cfg->domains[0]);
	gmtime_r(&ns->now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	sb_add(&msg, &len, "", 0);
	snprintf(h, sizeof(h),
	         "From: %s\nTo: %s\n%s%s%sDate: %s\n"
	         "Message-ID: <smimectl.%s.%d.%ld@%s>\n"
	         "MIME-Version: 1.0\n"
	         "Content-Type: text/plain; charset=utf-8\n"
	         "Content-Transfer-Encoding: 8bit\n",
	         from, contact, cfg->op_admin ? "Cc: " : "",
	         cfg->op_admin ? cfg->op_admin : "", cfg->op_admin ? "\n" : "",
	         date, c->serial, threshold, (long)ns->now, cfg->domains[0]);
	sb_add(&msg, &len, h, strlen(h));
	sb_add(&msg, &len, body, strlen(body));
	free(body);
	return msg;
}

static int notify_row(void *arg, const char *address, const struct db_cert *c)
{
	struct notify_state *ns = arg;
	const struct config *cfg = ns->cfg;
	long days = (long)((c->not_after - ns->now) / 86400);
	int threshold = -1, rc;
	char err[512], expiry[40];
	const char *contact = c->contact ? c->contact : address;
	char *msg;

	if (!str_ieq(c->status, "active"))
		return 0;
	if (c->not_after < ns->now)
		days = 0; /* expired while still mapped: the last alert */
	/* the most urgent threshold crossed */
	for (size_t i = 0; i < cfg->nalert_days; i++)
		if (days <= cfg->alert_days[i])
			threshold = (int)cfg->alert_days[i];
	if (threshold < 0)
		return 0;
	rc = db_alert_sent(ns->db, c->id, threshold, err, sizeof(err));
	if (rc < 0)
		die(EX_TEMPFAIL, "%s", err);
	if (rc == 1) {
		ns->skipped++;
		return 0;
	}
	time_fmt(c->not_after, expiry, sizeof(expiry));
	msg = notify_message(ns, address, c, threshold, days, expiry);
	if (ns->dry_run) {
		printf("---- alert for %s (threshold %d days) ----\n%s\n",
		       address, threshold, msg);
		ns->sent++;
	} else if (send_mail(cfg->sendmail_path, msg) != 0) {
		fprintf(stderr, "smimectl: %s did not take the alert for %s\n",
		        cfg->sendmail_path, address);
		ns->failed++;
	} else {
		/* every threshold crossed counts as sent: one mail, not a burst */
		for (size_t i = 0; i < cfg->nalert_days; i++)
			if (days <= cfg->alert_days[i] &&
			    db_alert_record(ns->db, c->id,
			                    (int)cfg->alert_days[i], err,
			                    sizeof(err)) != 0)
				die(EX_TEMPFAIL,
				    "alert sent but not recorded: %s", err);
		printf("alert sent to %s%s%s for %s (expires %s, threshold %d "
		       "days)\n",
		       contact, cfg->op_admin ? ", copy to " : "",
		       cfg->op_admin ? cfg->op_admin : "", address, expiry,
		       threshold);
		ns->sent++;
	}
	free(msg);
	return 0;
}

/* The alert template: the file alert_template names, or the default. */
static char *notify_template(const struct config *cfg)
{
	FILE *f;
	size_t len = 0, n;
	char buf[4096], *template = NULL;

	if (cfg->alert_template == NULL)
		return strdup(default_template);
	f = fopen(cfg->alert_template, "r");
	if (f == NULL)
		die(EX_NOINPUT, "alert_template %s: %s", cfg->alert_template,
		    strerror(errno));
	sb_add(&template, &len, "", 0);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sb_add(&template, &len, buf, n);
	fclose(f);
	return template;
}

int cmd_notify(int argc, char **argv)
{
	struct notify_state ns;
	char err[1024];

	memset(&ns, 0, sizeof(ns));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0)
			ns.dry_run = 1;
		else
			die(EX_USAGE, "usage: notify [--dry-run]");
	}
	ns.cfg = load_config();
	ns.template = notify_template(ns.cfg);
	ns.db = open_db_as_user(ns.cfg, DB_READWRITE);
	/* one node of many sends: alerts_sent, shared, keeps the later runs
	 * from sending again (a dry run sends and records nothing) */
	if (!ns.dry_run)
		job_begin(ns.db, "notify");
	ns.now = time(NULL);
	if (db_mappings(ns.db, notify_row, &ns, err, sizeof(err)) != 0)
		die(EX_TEMPFAIL, "%s", err);
	printf("%d alert%s %s, %d already sent before, %d failed\n", ns.sent,
	       ns.sent == 1 ? "" : "s", ns.dry_run ? "shown (dry run)" : "sent",
	       ns.skipped, ns.failed);
	free(ns.template);
	db_close(ns.db);
	config_free(ns.cfg);
	return ns.failed ? EX_TEMPFAIL : EX_OK;
}
