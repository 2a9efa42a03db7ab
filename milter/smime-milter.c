/*
 * smime-milter -- S/MIME signing milter: argv, configuration, privilege
 * drop, socket, reload and smfi_main.  Also the offline test mode (-t) and
 * the configuration check (-n).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "log.h"
#include "milter.h"
#include "mwrap.h"
#include "p11.h"
#include "snapshot.h"

static const char *conf_path = CONFIG_DEFAULT_PATH;

static void audit_report(int is_error, const char *text)
{
	mlog(is_error ? LOG_ERR : LOG_NOTICE, "%s", text);
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: smime-milter [-c FILE] [-f]\n"
	        "       smime-milter [-c FILE] -n\n"
	        "       smime-milter [-c FILE] -t FILE [-s ADDR] [-r ADDR]...\n"
	        "       smime-milter -V\n"
	        "  -c FILE  configuration file (default %s)\n"
	        "  -f       stay in the foreground, log to stderr too\n"
	        "  -n       check configuration, database and keys, then exit\n"
	        "  -t FILE  sign one message file offline, result on stdout\n"
	        "  -s ADDR  envelope sender for -t\n"
	        "  -r ADDR  envelope recipient for -t (repeatable; default: "
	        "the\n"
	        "           To, Cc and Bcc addresses of the message)\n"
	        "  -V       print the version\n",
	        CONFIG_DEFAULT_PATH);
	exit(EX_USAGE);
}

/* ---- -n: check everything ------------------------------------------ */

static int check_config(void)
{
	struct snapshot *s;
	struct config *cfg;
	char err[8192], warn[8192];

	if (config_load(conf_path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return EX_CONFIG;
	}
	config_free(cfg);
	if (snapshot_build(conf_path, 0, &s, err, sizeof(err), warn,
	                   sizeof(warn)) != 0) {
		fprintf(stderr, "%s\n", err);
		return strstr(err, "database") ? EX_NOINPUT : EX_CONFIG;
	}
	if (warn[0]) {
		const char *p = warn;
		while (*p) {
			const char *nl = strchr(p, '\n');
			fprintf(stderr, "%s: mailbox %.*s\n", conf_path,
			        nl ? (int)(nl - p) : (int)strlen(p), p);
			p = nl ? nl + 1 : p + strlen(p);
		}
		snapshot_unref(s);
		return EX_DATAERR;
	}
	printf("%s: OK: %zu mailbox%s, %zu can sign", conf_path, s->nentries,
	       s->nentries == 1 ? "" : "es", s->nusable);
	if (s->cfg->nencrypt > 0 || s->cfg->harvest)
		printf(", %zu recipient certificate%s", s->nrcpts,
		       s->nrcpts == 1 ? "" : "s");
	printf("\n");
	snapshot_unref(s);
	return EX_OK;
}

/* ---- -t: offline signing through the same callbacks ------------------ */

static int read_file(const char *path, char **data, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t cap = 65536, n;
	char *buf;

	if (f == NULL)
		return -1;
	buf = malloc(cap);
	*len = 0;
	while (buf && (n = fread(buf + *len, 1, cap - *len, f)) > 0) {
		*len += n;
		if (*len == cap) {
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	if (f != stdin)
		fclose(f);
	*data = buf;
	return buf ? 0 : -1;
}

/* Is this line a header field ("Name:" with printable name)? */
static int is_header_line(const char *p, const char *end)
{
	const char *q = p;

	while (q < end && *q != ':' && *q > 32 && *q < 127)
		q++;
	return q > p && q < end && *q == ':';
}

static void offline_add_header(struct offline_ctx *o, const char *start,
                               const char *end)
{
	const char *colon = memchr(start, ':', (size_t)(end - start));
	char *value, *w;
	const char *p = colon + 1;
	size_t n = o->nhdrs + 1;

	o->hdr_names = realloc(o->hdr_names, n * sizeof(char *));
	o->hdr_values = realloc(o->hdr_values, n * sizeof(char *));
	o->hdr_raw = realloc(o->hdr_raw, n * sizeof(char *));
	o->hdr_deleted = realloc(o->hdr_deleted, n * sizeof(int));
	if (!o->hdr_names || !o->hdr_values || !o->hdr_raw || !o->hdr_deleted) {
		fprintf(stderr, "out of memory\n");
		exit(EX_OSERR);
	}
	o->hdr_names[o->nhdrs] = strndup(start, (size_t)(colon - start));
	o->hdr_raw[o->nhdrs] = strndup(start, (size_t)(end - start));
	/* the value as Postfix hands it: leading space gone, folds kept */
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	value = malloc((size_t)(end - p) + 1);
	for (w = value; p < end; p++)
		if (*p != '\r' || p + 1 >= end || p[1] != '\n')
			*w++ = *p;
	while (w > value && (w[-1] == '\n' || w[-1] == '\r'))
		w--;
	*w = '\0';
	o->hdr_values[o->nhdrs] = value;
	o->hdr_deleted[o->nhdrs] = 0;
	o->nhdrs = n;
}

static void put_crlf_line(const char *s, size_t len)
{
	/* write a header with its line ends as CRLF */
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			fputc('\r', stdout);
		fputc(s[i], stdout);
	}
}

/* Envelope recipients of -t: from -r, or the To, Cc and Bcc headers. */
struct rcpt_list {
	char **v;
	size_t n;
};

static void rcpt_add(void *arg, const char *addr)
{
	struct rcpt_list *l = arg;
	char **nv = realloc(l->v, (l->n + 1) * sizeof(*nv));

	if (nv == NULL || (nv[l->n] = strdup(addr)) == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(EX_OSERR);
	}
	l->v = nv;
	l->n++;
}

static struct rcpt_list opt_rcpts;

static int offline_sign(const char *path, const char *sender)
{
	struct rcpt_list hdr_rcpts = { NULL, 0 };
	const struct rcpt_list *rl;
	size_t accepted = 0;
	struct offline_ctx o;
	struct snapshot *s;
	char err[8192], warn[8192];
	char *data, *body, *p, *end;
	size_t len, bodylen;
	sfsistat st;
	char *argv[2];
	char *bodybuf = NULL;
	size_t bodybuf_len = 0;
	int rc = EX_OK;

	if (snapshot_build(conf_path, 0, &s, err, sizeof(err), warn,
	                   sizeof(warn)) != 0) {
		fprintf(stderr, "%s\n", err);
		return EX_CONFIG;
	}
	if (warn[0])
		mlog_lines(LOG_WARNING, "mailbox ", warn);
	milter_set_snapshot(s);
	if (read_file(path, &data, &len) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return EX_NOINPUT;
	}
	memset(&o, 0, sizeof(o));
	o.queue_id = "OFFLINE";
	o.body_out = open_memstream(&bodybuf, &bodybuf_len);
	mw_offline = &o;

	/* split headers and body like an MTA does */
	p = data;
	end = data + len;
	body = p;
	if (is_header_line(p, end)) {
		while (p < end) {
			char *start = p, *nl;
			if (*p == '\n' ||
			    (*p == '\r' && p + 1 < end && p[1] == '\n')) {
				p += *p == '\r' ? 2 : 1;
				break;
			}
			if (!is_header_line(p, end))
				break; /* body starts without a blank line */
			do {
				nl = memchr(p, '\n', (size_t)(end - p));
				p = nl ? nl + 1 : end;
			} while (p < end && (*p == ' ' || *p == '\t'));
			offline_add_header(&o, start, p);
		}
		body = p;
	}
	bodylen = (size_t)(end - body);

	st = milter_desc.xxfi_connect(NULL, "localhost", NULL);
	argv[0] = (char *)(sender ? sender : "<>");
	argv[1] = NULL;
	if (st == SMFIS_CONTINUE)
		st = milter_desc.xxfi_envfrom(NULL, argv);
	if (opt_rcpts.n == 0)
		for (size_t i = 0; i < o.nhdrs; i++)
			if (strcasecmp(o.hdr_names[i], "To") == 0 ||
			    strcasecmp(o.hdr_names[i], "Cc") == 0 ||
			    strcasecmp(o.hdr_names[i], "Bcc") == 0)
				addr_list_each(o.hdr_values[i], rcpt_add,
				               &hdr_rcpts);
	rl = opt_rcpts.n ? &opt_rcpts : &hdr_rcpts;
	for (size_t i = 0; st == SMFIS_CONTINUE && i < rl->n; i++) {
		sfsistat r;
		argv[0] = rl->v[i];
		r = milter_desc.xxfi_envrcpt(NULL, argv);
		if (r == SMFIS_CONTINUE) {
			accepted++;
		} else if (r == SMFIS_REJECT) {
			fprintf(stderr,
			        "smime-milter: recipient %s refused: %s\n",
			        rl->v[i], o.reply);
		} else {
			st = r;
		}
	}
	if (st == SMFIS_CONTINUE && rl->n > 0 && accepted == 0) {
		/* an MTA would not take the message at all */
		fprintf(stderr, "smime-milter: every recipient was refused\n");
		st = SMFIS_REJECT;
		snprintf(o.reply, sizeof(o.reply), "no recipient left");
	}
	for (size_t i = 0; st == SMFIS_CONTINUE && i < o.nhdrs; i++)
		st = milter_desc.xxfi_header(NULL, o.hdr_names[i],
		                             o.hdr_values[i]);
	if (st == SMFIS_CONTINUE)
		st = milter_desc.xxfi_eoh(NULL);
	/* body in the chunk size libmilter uses, bare LF made CRLF as an MTA
	 * would on the wire */
	if (st == SMFIS_CONTINUE) {
		unsigned char chunk[65536];
		size_t n = 0;
		for (size_t i = 0; st == SMFIS_CONTINUE && i < bodylen; i++) {
			if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r'))
				chunk[n++] = '\r';
			chunk[n++] = (unsigned char)body[i];
			if (n >= sizeof(chunk) - 2) {
				st = milter_desc.xxfi_body(NULL, chunk, n);
				n = 0;
			}
		}
		if (st == SMFIS_CONTINUE && n > 0)
			st = milter_desc.xxfi_body(NULL, chunk, n);
	}
	if (st == SMFIS_CONTINUE)
		st = milter_desc.xxfi_eom(NULL);
	milter_desc.xxfi_close(NULL);
	fflush(o.body_out);

	if (st == SMFIS_CONTINUE || st == SMFIS_ACCEPT) {
		if (!o.body_replaced) {
			fwrite(data, 1, len, stdout);
			fprintf(stderr,
			        "smime-milter: message passed unsigned\n");
		} else {
			for (size_t i = 0; i < o.nhdrs; i++) {
				size_t l = strlen(o.hdr_raw[i]);
				if (o.hdr_deleted[i])
					continue;
				put_crlf_line(o.hdr_raw[i], l);
				/* input that ends inside its header block */
				if (l == 0 || o.hdr_raw[i][l - 1] != '\n')
					fputs("\r\n", stdout);
			}
			for (size_t i = 0; i < o.nadds; i++) {
				printf("%s: ", o.add_names[i]);
				put_crlf_line(o.add_values[i],
				              strlen(o.add_values[i]));
				printf("\r\n");
			}
			printf("\r\n");
			fwrite(bodybuf, 1, bodybuf_len, stdout);
		}
	} else {
		fprintf(stderr, "smime-milter: %s: %s\n",
		        st == SMFIS_REJECT ? "rejected" : "tempfailed",
		        o.reply);
		rc = st == SMFIS_REJECT ? EX_UNAVAILABLE : EX_TEMPFAIL;
	}
	fflush(stdout);
	fclose(o.body_out);
	free(bodybuf);
	free(data);
	for (size_t i = 0; i < o.nhdrs; i++) {
		free(o.hdr_names[i]);
		free(o.hdr_values[i]);
		free(o.hdr_raw[i]);
	}
	for (size_t i = 0; i < o.nadds; i++) {
		free(o.add_names[i]);
		free(o.add_values[i]);
	}
	free(o.hdr_names);
	free(o.hdr_values);
	free(o.hdr_raw);
	free(o.hdr_deleted);
	free(o.add_names);
	free(o.add_values);
	for (size_t i = 0; i < hdr_rcpts.n; i++)
		free(hdr_rcpts.v[i]);
	free(hdr_rcpts.v);
	milter_set_snapshot(NULL);
	return rc;
}

/* ---- the daemon ------------------------------------------------------ */

static void *reload_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;

	for (;;) {
		struct snapshot *s;
		char err[8192], warn[8192];
		if (sigwait(set, &sig) != 0)
			continue;
		mlog(LOG_INFO, "SIGUSR1: reloading %s", conf_path);
		if (snapshot_build(conf_path, 0, &s, err, sizeof(err), warn,
		                   sizeof(warn)) != 0) {
			mlog_lines(LOG_ERR,
			           "reload failed, keeping the previous "
			           "configuration: ",
			           err);
			continue;
		}
		if (warn[0])
			mlog_lines(LOG_WARNING, "mailbox ", warn);
		milter_set_snapshot(s);
		mlog(LOG_INFO,
		     "reloaded: generation %lu, %zu mailboxes, %zu can sign",
		     s->generation, s->nentries, s->nusable);
	}
	return NULL;
}

static int write_pidfile(const char *path)
{
	FILE *f;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		mlog(LOG_ERR, "pidfile %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
	return 0;
}

/*
 * libmilter keeps its listening socket to itself.  Find it and set
 * TCP_NODELAY, which accepted connections inherit: at end of message the
 * filter writes several small replies in a row (body, header edits,
 * continue), and with Nagle's algorithm each one after the first waits for
 * the MTA's delayed ACK, some 40 ms per message.
 */
static void listener_nodelay(void)
{
	for (int fd = 3; fd < 256; fd++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int listening = 0, one = 1;
		socklen_t ol = sizeof(listening);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
		    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
			continue;
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening,
		               &ol) == 0 &&
		    listening)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			           sizeof(one));
	}
}

static int drop_privileges(const char *user)
{
	struct passwd *pw;

	if (user == NULL || geteuid() != 0)
		return 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		mlog(LOG_ERR, "user %s: no such user", user);
		return -1;
	}
	if (pw->pw_uid == 0)
		return 0;
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 ||
	    setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
		mlog(LOG_ERR, "cannot become %s: %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		mlog(LOG_ERR, "privileges were not dropped");
		return -1;
	}
	/* setuid resets dumpable; keep secrets out of core files */
	prctl(PR_SET_DUMPABLE, 0);
	return 0;
}

/* A unix socket gets socket_mode (default 0660) and socket_group, so the
 * MTA's group can connect and nobody else can. */
static int socket_permissions(const struct config *cfg)
{
	const char *sock = cfg->socket, *path;
	mode_t mode = (mode_t)strtol(cfg->socket_mode, NULL, 8);
	gid_t gid = (gid_t)-1;
	uid_t uid = (uid_t)-1;

	if (strncmp(sock, "unix:", 5) != 0 && strncmp(sock, "local:", 6) != 0)
		return 0;
	path = strchr(sock, ':') + 1;
	if (cfg->socket_group) {
		struct group *gr = getgrnam(cfg->socket_group);
		if (gr == NULL) {
			mlog(LOG_ERR, "%s: socket_group %s: no such group",
			     cfg->path, cfg->socket_group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (cfg->user && geteuid() == 0) {
		struct passwd *pw = getpwnam(cfg->user);
		if (pw)
			uid = pw->pw_uid; /* so it can remove it at exit */
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    chown(path, uid, gid) != 0) {
		mlog(LOG_ERR, "socket %s: chown: %s", path, strerror(errno));
		return -1;
	}
	if (chmod(path, mode) != 0) {
		mlog(LOG_ERR, "socket %s: chmod %04o: %s", path, (unsigned)mode,
		     strerror(errno));
		return -1;
	}
	return 0;
}

/* Readiness pipe: the daemon reports its start-up status to the process
 * that started it, so a failure to open the socket, the database or the
 * keys is seen by the caller (and its exit code) instead of being hidden
 * behind a fork. */
static int ready_fd = -1;

static int started(int code)
{
	if (ready_fd >= 0) {
		unsigned char c = (unsigned char)code;
		if (write(ready_fd, &c, 1) != 1)
			mlog(LOG_WARNING, "cannot report start-up status");
		close(ready_fd);
		ready_fd = -1;
	}
	return code;
}

static int daemonize(void)
{
	int p[2];
	pid_t pid;

	if (pipe(p) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		unsigned char c = EX_OSERR;
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			c = EX_OSERR;
		_exit(c);
	}
	close(p[0]);
	ready_fd = p[1];
	setsid();
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (chdir("/") != 0)
		return -1;
	return 0;
}

/* Detach standard input and output once the daemon runs. */
static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	log_stderr_off();
}

/* The daemon's life from an already loaded configuration; run_daemon()
 * frees cfg whatever the outcome. */
static int serve(struct config *cfg, int foreground)
{
	struct snapshot *s;
	char err[8192], warn[8192];
	struct rlimit rl = { 0, 0 };
	static sigset_t usr1;
	pthread_t tid;
	const char *sock;
	int waited;

	log_open(cfg->syslog_facility, 1);
	/* Block these before any thread exists (threads inherit the mask):
	 * SIGUSR1 is taken by our reload thread, and only libmilter's own
	 * signal thread (started by smfi_main) may see SIGTERM/SIGHUP/SIGINT,
	 * so that a stop is graceful. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	{
		sigset_t all = usr1;
		sigaddset(&all, SIGTERM);
		sigaddset(&all, SIGHUP);
		sigaddset(&all, SIGINT);
		pthread_sigmask(SIG_BLOCK, &all, NULL);
	}
	setrlimit(RLIMIT_CORE, &rl);
	prctl(PR_SET_DUMPABLE, 0);
	signal(SIGPIPE, SIG_IGN);
	if (!foreground && daemonize() != 0) {
		mlog(LOG_ERR, "cannot daemonize: %s", strerror(errno));
		return started(EX_OSERR);
	}
	if (cfg->pidfile && write_pidfile(cfg->pidfile) != 0)
		return started(EX_CANTCREAT);
	sock = cfg->socket;
	if (strncmp(sock, "unix:", 5) == 0 || strncmp(sock, "local:", 6) == 0)
		unlink(strchr(sock, ':') + 1);
	if (smfi_setconn((char *)sock) != MI_SUCCESS ||
	    smfi_register(milter_desc) != MI_SUCCESS ||
	    smfi_opensocket(1) != MI_SUCCESS) {
		mlog(LOG_ERR, "cannot open milter socket %s", sock);
		return started(EX_UNAVAILABLE);
	}
	listener_nodelay();
	if (socket_permissions(cfg) != 0)
		return started(EX_CONFIG);
	if (drop_privileges(cfg->user) != 0)
		return started(EX_NOPERM);
	/* keys are loaded as the unprivileged user, after the fork */
	if (snapshot_build(conf_path, 0, &s, err, sizeof(err), warn,
	                   sizeof(warn)) != 0) {
		mlog_lines(LOG_ERR, "", err);
		return started(EX_CONFIG);
	}
	if (warn[0])
		mlog_lines(LOG_WARNING, "mailbox ", warn);
	milter_set_snapshot(s);
	if (pthread_create(&tid, NULL, reload_thread, &usr1) != 0) {
		mlog(LOG_ERR, "cannot start the reload thread");
		return started(EX_OSERR);
	}
	pthread_detach(tid);
	mlog(LOG_INFO,
	     "smime-milter %s starting on %s: %zu mailboxes, %zu can sign",
	     SMIME_VERSION, sock, s->nentries, s->nusable);
	if (!foreground) {
		started(EX_OK);
		detach_stdio();
	}
	if (smfi_main() != MI_SUCCESS)
		mlog(LOG_ERR, "smfi_main failed");
	/* SIGTERM: let the messages in flight finish */
	for (waited = 0; milter_active() > 0 && waited < 300; waited++)
		usleep(100000);
	mlog(LOG_INFO, "stopping (%d connection%s still open)", milter_active(),
	     milter_active() == 1 ? "" : "s");
	/* the last snapshot's audit queue holds the rows of the last
	 * ~100 ms: write them before exiting (waits up to 5 s, and says so
	 * when rows cannot be written) */
	milter_set_snapshot(NULL);
	if (cfg->pidfile)
		unlink(cfg->pidfile);
	return EX_OK;
}

static int run_daemon(int foreground)
{
	struct config *cfg;
	char err[8192];
	int rc;

	if (config_load(conf_path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return EX_CONFIG;
	}
	rc = serve(cfg, foreground);
	config_free(cfg);
	return rc;
}

int main(int argc, char **argv)
{
	const char *test_file = NULL, *sender = NULL;
	int opt, foreground = 0, check = 0;

	malloc_tune();
	audit_reporter = audit_report;
	p11_reporter = audit_report;
	while ((opt = getopt(argc, argv, "c:fnt:s:r:T:Vh")) != -1) {
		switch (opt) {
		case 'c':
			conf_path = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 't':
			test_file = optarg;
			break;
		case 's':
			sender = optarg;
			break;
		case 'r':
			rcpt_add(&opt_rcpts, optarg);
			break;
		case 'T': /* fixed signing time (tests) */
			milter_signing_time = (time_t)atoll(optarg);
			break;
		case 'V':
			printf("smime-milter %s\n", SMIME_VERSION);
			return EX_OK;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (check)
		return check_config();
	if (test_file) {
		log_open(NULL, 1);
		return offline_sign(test_file, sender);
	}
	return run_daemon(foreground);
}
