/*
 * common -- what every smimectl command shares: the configuration named by
 * -c, the database, dying with a message and a sysexits code, the user the
 * files are written as, and the parsing and checks of options used by
 * several commands.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "util.h"
#include "smimectl.h"

static const char *conf_path = CONFIG_DEFAULT_PATH;

void set_config_path(const char *path)
{
	conf_path = path;
}

_Noreturn void die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "smimectl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

struct config *load_config(void)
{
	struct config *cfg;
	char err[8192];

	if (config_load(conf_path, &cfg, err, sizeof(err)) != 0)
		die(EX_CONFIG, "%s", err);
	db_node_default_set(cfg->node_name);
	return cfg;
}

struct db *open_db(struct config *cfg, enum db_open_mode mode)
{
	struct db *db;
	char err[1024];

	if (db_open(cfg->database, mode, &db, err, sizeof(err)) != 0)
		die(mode == DB_CREATE ? EX_CANTCREAT : EX_NOINPUT, "%s", err);
	return db;
}

const char *actor(void)
{
	static char buf[64];
	struct passwd *pw = getpwuid(getuid());
	const char *sudo = getenv("SUDO_USER");

	snprintf(buf, sizeof(buf), "%s", sudo ? sudo : pw ? pw->pw_name : "?");
	return buf;
}

/*
 * From here on run as the milter's user (when started as root), so that
 * every file smimectl creates -- the database and its WAL and
 * shared-memory files, copied keys -- belongs to the daemon that must read
 * and write them.  That user is `user`; when it is not set, the owner of
 * the directory that holds the database, when not root (the package's
 * /var/lib/smime-milter is smime-milter's, and a systemd unit runs the
 * daemon as that user with no `user` in the file).  Inputs named on the
 * command line are read before this, as root.
 */
void become_user(const struct config *cfg)
{
	struct passwd *pw = NULL;
	struct stat st;
	char dir[4096], *slash;

	if (geteuid() != 0)
		return;
	if (cfg->user) {
		pw = getpwnam(cfg->user);
		if (pw == NULL)
			die(EX_NOUSER, "user %s (from %s): no such user",
			    cfg->user, conf_path);
	} else {
		snprintf(dir, sizeof(dir), "%s", cfg->database);
		slash = strrchr(dir, '/');
		if (slash == NULL)
			snprintf(dir, sizeof(dir), ".");
		else if (slash == dir)
			dir[1] = '\0'; /* "/x.db": the root directory */
		else
			*slash = '\0';
		if (stat(dir, &st) == 0 && st.st_uid != 0)
			pw = getpwuid(st.st_uid);
	}
	if (pw == NULL || pw->pw_uid == 0)
		return;
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 ||
	    setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
		die(EX_NOPERM, "cannot become %s: %s", pw->pw_name,
		    strerror(errno));
}

void key_dir_create(const struct config *cfg)
{
	struct stat st;
	char parent[4096], *slash;
	int e;

	if (mkdir(cfg->key_dir, 0700) == 0)
		return;
	e = errno;
	if (e == EEXIST && stat(cfg->key_dir, &st) == 0 && S_ISDIR(st.st_mode))
		return;
	if (e == ENOENT) {
		snprintf(parent, sizeof(parent), "%s", cfg->key_dir);
		slash = strrchr(parent, '/');
		if (slash && slash != parent)
			*slash = '\0';
		die(EX_CANTCREAT,
		    "key_dir %s: its parent %s does not exist; create it "
		    "(\"make install\" and the Debian package make "
		    "/var/lib/smime-milter) or set key_dir in %s",
		    cfg->key_dir, parent, conf_path);
	}
	die(EX_CANTCREAT, "key_dir %s: %s", cfg->key_dir,
	    e == EEXIST ? "exists and is not a directory" : strerror(e));
}

struct db *open_db_as_user(struct config *cfg, enum db_open_mode mode)
{
	become_user(cfg);
	return open_db(cfg, mode);
}

void warn_signing_domain(const struct config *cfg, const char *mbox)
{
	if (!config_signing_domain(cfg, addr_domain(mbox)))
		fprintf(stderr,
		        "smimectl: warning: %s is not in a signing domain of "
		        "%s\n",
		        mbox, cfg->path);
}

int parse_long_args(int argc, char **argv, const struct long_arg *args)
{
	struct option opts[16];
	size_t n = 0;
	int opt;

	for (; args[n].name; n++) {
		if (n + 1 >= sizeof(opts) / sizeof(opts[0]))
			die(EX_SOFTWARE, "too many options for %s", argv[0]);
		opts[n] = (struct option){ args[n].name, required_argument,
			                   NULL, (int)n + 1 };
	}
	opts[n] = (struct option){ NULL, 0, NULL, 0 };
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt < 1 || (size_t)opt > n)
			return -1;
		*args[opt - 1].value = optarg;
	}
	return 0;
}

void mailbox_arg(const char *opt, const char *in, char *mbox, size_t len)
{
	char err[1024];

	if (addr_from_header(in, mbox, len, err, sizeof(err)) == 0)
		return;
	if (opt)
		die(EX_USAGE, "%s %s: %s", opt, in, err);
	die(EX_USAGE, "%s: %s", in, err);
}

void check_kind(const char *kind)
{
	if (strcmp(kind, "individual") && strcmp(kind, "role") &&
	    strcmp(kind, "system"))
		die(EX_USAGE,
		    "--kind must be individual, role or system, not '%s'",
		    kind);
}

void check_key_type(const char *type)
{
	if (strcmp(type, "rsa2048") && strcmp(type, "rsa3072") &&
	    strcmp(type, "ec-p256"))
		die(EX_USAGE, "--key-type must be rsa2048, rsa3072 or ec-p256");
}
