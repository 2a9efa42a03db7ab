/*
 * expiring -- smimectl expiring: a monitoring check (Icinga/Nagios exit
 * codes) of the mapped certificates that expire soon and of stale CRLs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "db.h"
#include "util.h"
#include "smimectl.h"

/* Monitoring-plugin exit codes (Icinga/Nagios). */
enum { MON_OK = 0, MON_WARNING = 1, MON_CRITICAL = 2, MON_UNKNOWN = 3 };

struct expiring_state {
	time_t now, warn_until, crit_until;
	int json, n, worst;
};

static int expiring_row(void *arg, const char *address, const struct db_cert *c)
{
	struct expiring_state *es = arg;
	char na[40];
	long days;
	int level;

	if (!str_ieq(c->status, "active") || c->not_after > es->warn_until)
		return 0;
	level = (c->not_after < es->now || c->not_after <= es->crit_until)
	                ? MON_CRITICAL
	                : MON_WARNING;
	if (level > es->worst)
		es->worst = level;
	days = (long)((c->not_after - es->now) / 86400);
	time_fmt(c->not_after, na, sizeof(na));
	if (es->json) {
		printf("%s\n  {\"mailbox\": ", es->n ? "," : "");
		json_str(address);
		printf(", \"id\": %lld, \"serial\": ", c->id);
		json_str(c->serial);
		printf(", \"not_after\": ");
		json_str(na);
		printf(", \"days_left\": %ld, \"expired\": %s, \"level\": "
		       "\"%s\","
		       " \"owner\": ",
		       days, c->not_after < es->now ? "true" : "false",
		       level == MON_CRITICAL ? "critical" : "warning");
		json_str(c->owner);
		printf(", \"unit\": ");
		json_str(c->unit);
		printf(", \"contact\": ");
		json_str(c->contact ? c->contact : address);
		printf("}");
	} else if (c->not_after < es->now)
		printf("CRITICAL: %s certificate %s EXPIRED on %s (still "
		       "mapped)\n",
		       address, c->serial, na);
	else
		printf("%s: %s certificate %s expires %s (%ld day%s)\n",
		       level == MON_CRITICAL ? "CRITICAL" : "WARNING", address,
		       c->serial, na, days, days == 1 ? "" : "s");
	es->n++;
	return 0;
}

struct crl_state {
	time_t now;
	int stale;
	int json;
};

static int crl_row(void *arg, const char *issuer, time_t next_update)
{
	struct crl_state *cs = arg;
	char t[40];

	if (next_update == 0 || next_update >= cs->now)
		return 0;
	cs->stale++;
	if (!cs->json)
		printf("WARNING: CRL of %s is stale (nextUpdate %s): import a "
		       "fresh one\n",
		       issuer, time_fmt(next_update, t, sizeof(t)));
	return 0;
}

int cmd_expiring(int argc, char **argv)
{
	struct expiring_state es;
	struct crl_state cs;
	struct config *cfg;
	struct db *db;
	char err[1024], *end;
	long days = -1;

	memset(&es, 0, sizeof(es));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			es.json = 1;
		else if (strcmp(argv[i], "--days") == 0 && i + 1 < argc) {
			days = strtol(argv[++i], &end, 10);
			if (*end || days < 0 || days > 3650)
				days = -2;
		} else
			days = -2;
	}
	if (days < 0) {
		fprintf(stderr, "usage: expiring --days N [--json]\n");
		return MON_UNKNOWN;
	}
	cfg = load_config();
	become_user(cfg);
	if (db_open(cfg->database, DB_READONLY, &db, err, sizeof(err)) != 0) {
		printf("UNKNOWN: %s\n", err);
		return MON_UNKNOWN;
	}
	es.now = time(NULL);
	es.warn_until = es.now + days * 86400;
	es.crit_until = es.now + cfg->alert_critical_days * 86400;
	memset(&cs, 0, sizeof(cs));
	cs.now = es.now;
	cs.json = es.json;
	if (es.json)
		printf("{\"certificates\": [");
	if (db_mappings(db, expiring_row, &es, err, sizeof(err)) != 0 ||
	    db_crls(db, crl_row, &cs, err, sizeof(err)) != 0) {
		printf("UNKNOWN: %s\n", err);
		return MON_UNKNOWN;
	}
	if (cs.stale && es.worst < MON_WARNING)
		es.worst = MON_WARNING;
	if (es.json)
		printf("%s], \"stale_crls\": %d, \"status\": \"%s\"}\n",
		       es.n ? "\n" : "", cs.stale,
		       es.worst == MON_CRITICAL  ? "critical"
		       : es.worst == MON_WARNING ? "warning"
		                                 : "ok");
	else if (es.worst == MON_OK)
		printf("OK: no mapped certificate expires within %ld days\n",
		       days);
	db_close(db);
	config_free(cfg);
	return es.worst;
}
