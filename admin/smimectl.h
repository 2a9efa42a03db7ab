/* smimectl -- helpers shared by the subcommand files of the admin tool. */
#ifndef ADMIN_SMIMECTL_H
#define ADMIN_SMIMECTL_H

#include "config.h"
#include "db.h"
#include "util.h"

/* Print "smimectl: message" and exit with code. */
void die(int code, const char *fmt, ...) PRINTFLIKE(2, 3);
/* The configuration named by -c, or die. */
struct config *load_config(void);
/* Open the database, or die. */
struct db *open_db(struct config *cfg, enum db_open_mode mode);
/* From here on run as the milter's user (see smimectl.c). */
void become_user(const struct config *cfg);
/* A JSON string (or null) on stdout. */
void json_str(const char *s);

/* smimectl report (report.c). */
int cmd_report(int argc, char **argv);

#endif
