/* gitd: Slipway's SSH git server. Listens for SSH connections, serves each in
 * its own process (ssh.c), and keeps the table of which keys may use which
 * Remotes. See docs/gitd.md and docs/architecture.md. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <microhttpd.h>

#include "authz.h"
#include "clock.h"
#include "duration.h"
#include "err.h"
#include "event.h"
#include "hookpod.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "pipesrv.h"
#include "repo.h"
#include "runner.h"
#include "ssh.h"
#include "startups.h"
#include "watch.h"
#include "webhook.h"
#include "banned.h"

#define GITD_AGENT "slipway-gitd/0.1"
#define DEFAULT_BUILDER_IMAGE "slipway/builder:0.1"

struct options {
	const char *listen; /* ADDR:PORT */
	const char *data_dir;
	const char *host_key_dir;
	const char *authorized_keys; /* file mode */
	const char *kubeconfig;      /* cluster mode */
	const char *context;
	const char **namespaces; /* NULL-terminated; empty: all */
	size_t nnamespaces;
	int max_connections;
	struct startups_limits startups; /* --max-startups */
	int per_source_startups;         /* 0: no limit */
	int max_auth_tries;              /* 0: no limit */
	int login_grace_s;
	int idle_timeout_s;
	long max_session_ms;
	unsigned long long min_rate; /* bytes/s; 0: none */
	long rate_window_ms;
	int shutdown_timeout_s;
	unsigned long long max_pack_bytes;
	unsigned long long max_object_bytes;
	long max_ref_updates;
	const char *log_level;
	const char *metrics_listen;       /* ADDR:PORT, or "" for none */
	const char *webhook_listen;       /* ADDR:PORT, or NULL for none */
	const char *external_url;         /* Remote.status.remoteUrl prefix, or NULL */
	const char *external_url_service; /* NAMESPACE/NAME of a Service giving it */
	/* pipelines (cluster mode) */
	struct runner_config runner;
	struct pipeline_config pipeline;
	const char **node_selector; /* NULL-terminated */
	size_t nnode_selector;
	json_t *security_context; /* --builder-security-context, or NULL */
	json_t *hook_resources;   /* --hook-resources, or NULL */
	const char *internal_listen;
	const char *internal_advertise;
};

static const char usage_text[] =
    "usage: gitd [options]\n"
    "\n"
    "Slipway's SSH git server: authenticates git clients by public key and serves\n"
    "git push (receive-pack) and git fetch/clone (upload-pack) for Remotes.\n"
    "\n"
    "  --listen ADDR:PORT        where to accept SSH connections [0.0.0.0:2222]\n"
    "  --data-dir DIR            bare repositories, DIR/NAMESPACE/REMOTE.git\n"
    "                            [/var/lib/slipway/repos]\n"
    "  --host-key-dir DIR        ssh_host_ed25519_key and ssh_host_rsa_key; generated\n"
    "                            when missing [/var/lib/slipway/host-keys]\n"
    "  --namespace NS            watch Remotes in NS (repeatable) [all namespaces]\n"
    "  --kubeconfig FILE         API credentials [kubectl's lookup, then in-cluster]\n"
    "  --context NAME            kubeconfig context [current-context]\n"
    "  --external-url URL        how pushers reach gitd, e.g. ssh://git@git.example.com:2222;\n"
    "                            with it each Remote's status gets remoteUrl\n"
    "                            (URL/NAMESPACE/REMOTE.git) and a Ready condition\n"
    "  --external-url-from-service NAMESPACE/NAME\n"
    "                            take that URL from gitd's Service instead, read every\n"
    "                            10 s: a LoadBalancer's ingress and port, or a NodePort's\n"
    "                            node address and nodePort; --external-url while none\n"
    "  --authorized-keys FILE    serve without a cluster instead: lines of\n"
    "                            'NAMESPACE/REMOTE[,...] KEYTYPE BASE64 [COMMENT]';\n"
    "                            re-read when the file changes\n"
    "  --max-connections N       concurrent connections; more are closed [100]\n"
    "  --max-startups BEGIN:RATE:FULL  connections not yet authenticated: from\n"
    "                            BEGIN on, refuse new ones with a chance rising from\n"
    "                            RATE% to 100% at FULL; N alone is N:100:N [30:30:100]\n"
    "  --per-source-max-startups N  connections not yet authenticated from one\n"
    "                            address (IPv6: one /64); 0 for no limit [20]\n"
    "  --max-auth-tries N        failed authentication attempts (each key offered\n"
    "                            counts) before the connection is closed; 0 for no\n"
    "                            limit [6]\n"
    "  --login-grace-time SECS   time from connecting to authenticating [30]\n"
    "  --idle-timeout SECS       end a connection idle this long, also before its\n"
    "                            request [300]\n"
    "  --max-session-time DURATION  longest a connection may last, e.g. 90m; not\n"
    "                            checked while a push waits for its pipeline [1h]\n"
    "  --min-transfer-rate SIZE  bytes per second a client must send while gitd\n"
    "                            waits for it, e.g. 512, 1K; 0 for none [1K]\n"
    "  --transfer-rate-window DURATION  time spent waiting for the client over\n"
    "                            which that rate is averaged [300s]\n"
    "  --max-pack-size SIZE      largest packfile a push may send, e.g. 500M, 2G [1G]\n"
    "  --max-object-size SIZE    largest object a push or an upstream's fetched pack\n"
    "                            may hold, or a fetch inflate [100M]\n"
    "  --max-ref-updates N       most ref updates in one push [1000]\n"
    "  --shutdown-timeout SECS   on SIGTERM, wait this long for connections [30]\n"
    "  --metrics-listen ADDR:PORT  HTTP for /metrics (Prometheus), /healthz and\n"
    "                            /readyz; 'none' to turn off [0.0.0.0:8080]\n"
    "  --webhook-listen ADDR:PORT  HTTP for git hosts' push webhooks, POST\n"
    "                            /hooks/NAMESPACE/REMOTE (docs/webhooks.md) [off]\n"
    "  --log-level LEVEL         debug, info, warn or error [info]\n"
    "\n"
    "Pipelines (cluster mode; docs/gitd.md \"Pipelines\"):\n"
    "  --builder-mode MODE       where builds run when the Remote does not say:\n"
    "                            pod or local [pod]\n"
    "  --builder PROGRAM         local builds: the builder program [builder next to gitd]\n"
    "  --builder-image IMAGE     pod builds: the builder image [" DEFAULT_BUILDER_IMAGE "]\n"
    "  --builder-storage-driver D  buildah storage driver, vfs or overlay [vfs]\n"
    "  --builder-storage-root DIR  local builds: keep buildah's storage (layer cache)\n"
    "  --builder-scheduler NAME  pod builds: spec.schedulerName [the default]\n"
    "  --builder-node-selector K=V  pod builds: a nodeSelector entry (repeatable)\n"
    "  --builder-security-context JSON  pod builds: the builder container's\n"
    "                            securityContext, a JSON object used as it is [root,\n"
    "                            no privilege escalation, capabilities SETUID, SETGID\n"
    "                            and SETFCAP only, seccomp and AppArmor Unconfined:\n"
    "                            what buildah needs; docs/builder.md \"Privileges\"]\n"
    "  --build-timeout SECS      one build, unless the Remote says [1800]\n"
    "  --internal-listen ADDR    address of the endpoint builders fetch sources\n"
    "                            from and report to (ephemeral ports) [127.0.0.1]\n"
    "  --internal-advertise HOST how builders reach that address [--internal-listen]\n"
    "  --hooks-dir DIR           admin hooks, DIR/EVENT/NAME, run for every Remote\n"
    "  --hooks-service-account NAME  hooks get a token of this ServiceAccount in the\n"
    "                            Remote's namespace when it exists [slipway-hooks]\n"
    "  --hook-timeout SECS       hooks without timeoutSeconds [60]\n"
    "  --hooks-image REF         the image hooks with image: slipway/hooks run in\n"
    "                            [slipway/hooks, as written]\n"
    "  --hook-pod-keep SECS      a failed hook's Pod is kept this long for kubectl\n"
    "                            logs, then swept within a minute [3600]\n"
    "  --hook-service-accounts LIST  the serviceAccountName values image hooks may\n"
    "                            use, comma-separated [--hooks-service-account]\n"
    "  --hook-resources JSON     image hooks' container resources, a JSON object\n"
    "                            ({\"limits\": {\"memory\": \"256Mi\"}}) [none]\n"
    "  --hook-images LIST        image hooks' images must start with one of these\n"
    "                            prefixes, comma-separated; slipway/hooks and\n"
    "                            fromBuild are always allowed [any image]\n"
    "  --rollout-timeout SECS    longest wait for one Deployment's rollout [300]\n"
    "  --work-dir DIR            pipelines' work directories [$TMPDIR or /tmp]\n"
    "  --pipeline-spare-idle DURATION  keep one pipeline worker forked ahead, its\n"
    "                            API connections open, replaced when no push took\n"
    "                            it for this long, e.g. 60s, 500ms; 0: fork each\n"
    "                            push's worker when it arrives [60s]\n"
    "  --helm PROGRAM            helm, for Remotes whose spec.manifests.path is a\n"
    "                            Helm chart (docs/helm.md) [helm on PATH]\n"
    "  --post-renderer PROGRAM   the Helm post-renderer setting the built images\n"
    "                            [slipway-post-render next to gitd]\n"
    "  --webhook-allow-link-local  let spec.webhooks[] reach link-local and cloud\n"
    "                            metadata addresses (169.254.0.0/16, fe80::/10,\n"
    "                            fd00:ec2::254, metadata.google.internal) [blocked]\n"
    "  -h, --help                this text\n"
    "  --version                 print the version\n"
    "\n"
    "Keys come from spec.authorizedKeys of remotes.slipway.dev and gitkube's\n"
    "remotes.gitkube.sh objects, watched live; each Remote's repository is\n"
    "created when the Remote appears.\n"
    "Logs are JSON lines on stderr. Exit status: 0 after a clean shutdown,\n"
    "1 when start-up fails, 2 for a usage error.\n";

static int pipefd[2] = {-1, -1};

static void on_signal(int sig)
{
	unsigned char b = (unsigned char)sig;
	int saved = errno;

	if (write(pipefd[1], &b, 1) < 0) {
		/* the pipe is full: a wakeup is pending anyway */
	}
	errno = saved;
}

static int parse_size(unsigned long long *out, const char *s)
{
	char *end;
	unsigned long long v, mult = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	switch (*end) {
	case 'k':
	case 'K':
		mult = 1ull << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mult = 1ull << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mult = 1ull << 30;
		end++;
		break;
	case '\0':
		break;
	default:
		return -1;
	}
	if (*end || (v && mult > ULLONG_MAX / v))
		return -1;
	*out = v * mult;
	return 0;
}

static int parse_int(int *out, const char *s, int min, int max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

/* Writes DATA to PATH with mode 0600, failing when PATH exists. */
static int write_secret_file(const char *path, const char *data)
{
	size_t len = strlen(data);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0)
		return err_set("cannot create %s: %s", path, strerror(errno));
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) < 0) {
		err_set("cannot write %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	return close(fd);
}

/* Loads DIR/NAME, generating a TYPE key (BITS for RSA) there when missing,
 * and hands it to BIND. */
static int load_host_key(ssh_bind bind, const char *dir, const char *name, enum ssh_keytypes_e type,
                         int bits)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8], fp[64] = "";
	ssh_key key = NULL;
	char *b64 = NULL;
	int ret = -1;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return err_set("host key path too long");
	if (access(path, F_OK) < 0) {
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		unlink(tmp);
		if (ssh_pki_generate(type, bits, &key) != SSH_OK ||
		    ssh_pki_export_privkey_base64(key, NULL, NULL, NULL, &b64) != SSH_OK) {
			err_set("cannot generate host key %s", path);
			goto out;
		}
		if (write_secret_file(tmp, b64) < 0)
			goto out;
		/* link(2) fails when another gitd created it first: keep theirs */
		if (link(tmp, path) < 0 && errno != EEXIST) {
			err_set("cannot create %s: %s", path, strerror(errno));
			unlink(tmp);
			goto out;
		}
		unlink(tmp);
		ssh_key_free(key);
		key = NULL;
		event_log("info", "host_key_generated", "{s:s}", "path", path);
	}
	if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key) != SSH_OK) {
		err_set("cannot read host key %s", path);
		goto out;
	}
	authz_fingerprint(fp, sizeof(fp), key);
	if (ssh_bind_options_set(bind, SSH_BIND_OPTIONS_IMPORT_KEY, key) != SSH_OK) {
		err_set("cannot use host key %s: %s", path, ssh_get_error(bind));
		goto out;
	}
	key = NULL; /* the bind owns it now */
	event_log("info", "host_key", "{s:s, s:s}", "path", path, "fingerprint", fp);
	ret = 0;
out:
	if (b64) {
		explicit_bzero(b64, strlen(b64));
		ssh_string_free_char(b64);
	}
	ssh_key_free(key);
	return ret;
}

/* Resolves the ADDR:PORT (or [ADDR]:PORT, or :PORT for all addresses) of
 * option FLAG into *OUT (caller frees with freeaddrinfo). Returns 0 or -1. */
static int parse_listen(struct addrinfo **out, const char *flag, const char *spec)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints;
	int rc;

	if (!colon || (size_t)(colon - spec) >= sizeof(host))
		return err_set("--%s wants ADDR:PORT, not '%s'", flag, spec);
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, out);
	if (rc)
		return err_set("--%s %s: %s", flag, spec, gai_strerror(rc));
	return 0;
}

static int listen_on(const char *spec)
{
	struct addrinfo *ai = NULL;
	int fd, one = 1;

	if (parse_listen(&ai, "listen", spec) < 0)
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		err_set("cannot listen on %s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static void peer_name(char *buf, size_t size, const struct sockaddr *sa, socklen_t len)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
	                NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(buf, size, "unknown");
	else
		snprintf(buf, size, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, serv);
}

/* Where the key table comes from: the authorized-keys file (path set) and
 * when it was last read, or the Remote watcher process. */
struct keyfile {
	const char *path;
	struct stat st;
	struct authz table;
	struct watch_opts watch;
	pid_t watch_pid;      /* 0 while not running */
	int watch_fd;         /* -1 while not running */
	time_t watch_restart; /* when to start it again */
	struct buf watch_buf;
	bool synced;
};

/* Creates the repository of every Remote in the table that has none yet. */
static void create_repositories(const struct keyfile *kf, const char *data_dir)
{
	for (size_t i = 0; i < kf->table.nremotes; i++) {
		const struct authz_remote *r = &kf->table.remotes[i];
		char path[REPO_PATH_MAX];
		git_repository *repo = NULL;

		if (repo_path(path, sizeof(path), data_dir, r->ns, r->name) < 0 ||
		    access(path, F_OK) == 0)
			continue;
		if (repo_open(&repo, data_dir, r->ns, r->name) < 0)
			event_log("error", "repo_failed", "{s:s, s:s, s:s}", "namespace", r->ns,
			          "remote", r->name, "error", err_msg());
		else
			event_log("info", "repo_created", "{s:s, s:s}", "namespace", r->ns,
			          "remote", r->name);
		git_repository_free(repo);
	}
}

/* Reads the watcher's pipe; on a new table creates repositories. */
static void watch_poll(struct keyfile *kf, const char *data_dir)
{
	bool was_synced = kf->synced;
	int r = watch_read(&kf->watch_buf, kf->watch_fd, &kf->table, &kf->synced);

	if (r == 1) {
		event_log(was_synced || !kf->synced ? "debug" : "info", "remotes_loaded",
		          "{s:i, s:i, s:b}", "keys", (int)kf->table.nkeys, "remotes",
		          (int)kf->table.nremotes, "synced", kf->synced);
		create_repositories(kf, data_dir);
	} else if (r < 0) {
		event_log("error", "watcher_failed", "{s:s}", "error", err_msg());
		close(kf->watch_fd);
		kf->watch_fd = -1;
		buf_release(&kf->watch_buf);
		if (kf->watch_pid > 0)
			kill(kf->watch_pid, SIGTERM);
		kf->watch_restart = time(NULL) + 1;
	}
}

static int watch_launch(struct keyfile *kf)
{
	if (watch_start(&kf->watch_pid, &kf->watch_fd, &kf->watch) < 0) {
		kf->watch_pid = 0;
		kf->watch_fd = -1;
		kf->watch_restart = time(NULL) + 5;
		return -1;
	}
	event_log("info", "watcher_started", "{s:i}", "pid", (int)kf->watch_pid);
	return 0;
}

/* Re-reads the file when it changed; a file that fails to parse keeps the
 * previous table (and is logged). Returns 0, or -1 at start-up failure. */
static int keyfile_refresh(struct keyfile *kf, bool at_start)
{
	struct stat st;
	struct authz fresh;

	if (stat(kf->path, &st) < 0) {
		if (at_start)
			return err_set("cannot read %s: %s", kf->path, strerror(errno));
		return 0;
	}
	if (!at_start && st.st_mtim.tv_sec == kf->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == kf->st.st_mtim.tv_nsec && st.st_size == kf->st.st_size &&
	    st.st_ino == kf->st.st_ino)
		return 0;
	authz_init(&fresh);
	if (authz_load_file(&fresh, kf->path) < 0) {
		if (at_start)
			return -1;
		event_log("error", "authorized_keys_invalid", "{s:s, s:s}", "path", kf->path,
		          "error", err_msg());
		kf->st = st;
		return 0;
	}
	authz_release(&kf->table);
	kf->table = fresh;
	kf->st = st;
	event_log("info", "authorized_keys_loaded", "{s:s, s:i, s:i}", "path", kf->path, "keys",
	          (int)fresh.nkeys, "remotes", (int)fresh.nremotes);
	return 0;
}

/* The connection processes: a shutdown that times out kills them, and the
 * ones not yet authenticated count against --max-startups. */
struct child {
	pid_t pid;                                 /* 0: a free slot */
	bool is_authenticated;                     /* its "authenticated" report arrived */
	unsigned char source[STARTUPS_SOURCE_LEN]; /* startups_source() */
};
static struct child *children;
static int max_children;

static void child_track(pid_t pid, pid_t replace, const unsigned char *source)
{
	for (int i = 0; i < max_children; i++)
		if (children[i].pid == replace) {
			children[i].pid = pid;
			children[i].is_authenticated = false;
			if (source)
				memcpy(children[i].source, source, STARTUPS_SOURCE_LEN);
			return;
		}
}

/* Counts the connections not yet authenticated: all into *STARTUPS, those
 * from SOURCE into *FROM_SOURCE. */
static void count_startups(int *startups, int *from_source, const unsigned char *source)
{
	*startups = *from_source = 0;
	for (int i = 0; i < max_children; i++)
		if (children[i].pid > 0 && !children[i].is_authenticated) {
			(*startups)++;
			if (!memcmp(children[i].source, source, STARTUPS_SOURCE_LEN))
				(*from_source)++;
		}
}

/* A draw for startups_is_dropped: uniform in 0..99. */
static unsigned random_percent(void)
{
	unsigned r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (unsigned)clock_now_ms();
	return r % 100;
}

static pid_t watcher_pid;

/* The webhook listener (--webhook-listen), forked before the host keys are
 * loaded and not restarted: a later fork would carry them. */
static pid_t webhook_pid;
static struct webhook_opts webhook;
static char webhook_dir[PATH_MAX + 32];

/* The report pipe (metrics.h): connection processes, the webhook listener
 * and the pipeline server's workers write lines, gitd reads them. Made
 * before any process that writes to it is forked. */
static int report[2] = {-1, -1};

/* The pipeline server (cluster mode), restarted when it dies. */
static struct pipesrv_opts pipesrv;
static pid_t pipesrv_pid;
static time_t pipesrv_restart;

static int pipesrv_launch(void)
{
	if (pipesrv_start(&pipesrv_pid, &pipesrv) < 0) {
		pipesrv_pid = 0;
		pipesrv_restart = time(NULL) + 5;
		return -1;
	}
	event_log("info", "pipeline_server_started", "{s:i}", "pid", (int)pipesrv_pid);
	return 0;
}

/* What the HTTP handler reads; only touched by gitd's main thread (MHD runs
 * from the poll loop, without threads of its own). */
static struct {
	struct metrics m;
	const struct keyfile *kf;
	int *nchildren;
	int report_fd; /* read end of the report pipe */
	struct buf report_buf;
} stats;

static int reap(int *nchildren)
{
	int status, n = 0;
	pid_t pid;

	struct rusage ru;

	/* wait4() for the connection's peak resident set (ru_maxrss, KiB on
	 * Linux), logged at debug level for capacity planning */
	while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
		if (pid == watcher_pid) {
			event_log("warn", "watcher_exited", "{s:i}", "status",
			          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
			watcher_pid = 0;
			continue;
		}
		if (pid == webhook_pid) {
			event_log("error", "webhook_listener_exited", "{s:i}", "status",
			          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
			webhook_pid = 0;
			continue;
		}
		if (pid == pipesrv_pid) {
			event_log("error", "pipeline_server_exited", "{s:i}", "status",
			          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
			pipesrv_pid = 0;
			pipesrv_restart = time(NULL) + 1;
			continue;
		}
		child_track(0, pid, NULL);
		(*nchildren)--;
		n++;
		event_log("debug", "connection_exited", "{s:i, s:i, s:I}", "pid", (int)pid,
		          "status",
		          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
		          "max_rss_kib", (json_int_t)ru.ru_maxrss);
		if (WIFSIGNALED(status) && WTERMSIG(status) != SIGALRM)
			event_log("error", "connection_crashed", "{s:i, s:i}", "pid", (int)pid,
			          "signal", WTERMSIG(status));
		else if (WIFSIGNALED(status)) {
			metrics_record(&stats.m, "closed login_grace_time");
			event_log("info", "login_timeout", "{s:i}", "pid", (int)pid);
		}
	}
	return n;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned code, const char *type,
                               const char *body, size_t len)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_http(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **req)
{
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return respond(conn, 405, "text/plain", "method not allowed\n", 19);
	if (!strcmp(url, "/metrics")) {
		struct buf b;
		enum MHD_Result ret;

		buf_init(&b, 1u << 20);
		if (metrics_render(&b, &stats.m, *stats.nchildren, stats.kf->table.nremotes,
		                   stats.kf->table.nkeys) < 0) {
			buf_release(&b);
			return respond(conn, 500, "text/plain", "error\n", 6);
		}
		ret = respond(conn, 200, "text/plain; version=0.0.4", buf_str(&b), b.len);
		buf_release(&b);
		return ret;
	}
	if (!strcmp(url, "/healthz"))
		return respond(conn, 200, "text/plain", "ok\n", 3);
	if (!strcmp(url, "/readyz")) {
		if (stats.kf->path || stats.kf->synced)
			return respond(conn, 200, "text/plain", "ok\n", 3);
		return respond(conn, 503, "text/plain", "remotes not listed yet\n", 23);
	}
	return respond(conn, 404, "text/plain", "not found\n", 10);
}

static struct MHD_Daemon *http_start(const char *spec)
{
	struct addrinfo *ai = NULL;
	struct MHD_Daemon *d;

	if (parse_listen(&ai, "metrics-listen", spec) < 0)
		return NULL;
	d = MHD_start_daemon(MHD_USE_EPOLL | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0), 0,
	                     NULL, NULL, on_http, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	                     MHD_OPTION_CONNECTION_LIMIT, 32u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
	                     MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!d)
		err_set("cannot serve HTTP on %s", spec);
	return d;
}

/* Applies the connection processes' report lines to the counters. */
static void reports_poll(void)
{
	char chunk[4096];
	ssize_t n;
	char *nl;

	while ((n = read(stats.report_fd, chunk, sizeof(chunk))) > 0)
		if (buf_add(&stats.report_buf, chunk, (size_t)n) < 0)
			buf_release(&stats.report_buf);
	while ((nl = memchr(buf_str(&stats.report_buf), '\n', stats.report_buf.len))) {
		const char *line = buf_str(&stats.report_buf);
		long pid;

		*nl = '\0';
		if (sscanf(line, "authenticated %ld", &pid) == 1) {
			for (int i = 0; i < max_children; i++)
				if (pid > 0 && children[i].pid == (pid_t)pid)
					children[i].is_authenticated = true;
		} else {
			metrics_record(&stats.m, line);
		}
		buf_consume(&stats.report_buf, (size_t)(nl - buf_str(&stats.report_buf)) + 1);
	}
}

/* Closes every IPv4 and IPv6 socket but KEEP: what fork(2) copied of
 * gitd's listeners and of the HTTP clients libmicrohttpd was serving. A
 * connection process outlives a gitd killed with SIGKILL, and a listener it
 * held would keep the next gitd from binding its ports. */
static void close_inet_sockets(int keep)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name), domain;
		socklen_t len = sizeof(domain);

		if (e->d_name[0] == '.' || fd == keep || fd == dirfd(d) ||
		    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
			continue;
		if (domain == AF_INET || domain == AF_INET6)
			close(fd);
	}
	closedir(d);
}

/* The connection process: closes what it must not hold (INHERITED, NINHERITED
 * descriptors of gitd's, -1 skipped, and every other network socket), then
 * serves the connection on FD and exits. */
static void child_main(ssh_bind bind, int fd, const int *inherited, size_t ninherited,
                       const struct options *o, const struct authz *table, const char *peer,
                       int report_fd, long long accepted_ms)
{
	struct sshd_opts so = {0};
	struct sigaction sa;
	sigset_t none;

	for (size_t i = 0; i < ninherited; i++)
		if (inherited[i] >= 0)
			close(inherited[i]);
	close_inet_sockets(fd);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	/* a push in flight finishes when gitd is asked to stop; the parent
	 * kills what is left after --shutdown-timeout */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	alarm((unsigned)o->login_grace_s);
	so.authz = table;
	so.data_dir = o->data_dir;
	so.idle_timeout_s = o->idle_timeout_s;
	so.max_auth_tries = (unsigned)o->max_auth_tries;
	so.started_ms = accepted_ms;
	so.max_session_ms = o->max_session_ms;
	so.min_rate = o->min_rate;
	so.rate_window_ms = o->rate_window_ms;
	so.max_pack_bytes = o->max_pack_bytes;
	so.max_object_bytes = o->max_object_bytes;
	so.max_ref_updates = (size_t)o->max_ref_updates;
	so.agent = GITD_AGENT;
	so.peer = peer;
	so.report_fd = report_fd;
	so.pipeline_socket = pipesrv.socket_path;
	_exit(sshd_serve(bind, fd, &so));
}

static int serve(const struct options *o, ssh_bind bind, struct keyfile *kf)
{
	struct pollfd pfd[5];
	struct MHD_Daemon *http = NULL;
	struct sigaction sa;
	int lfd, nchildren = 0, one = 1;
	char startups_spec[40];
	bool stopping = false;
	time_t stop_deadline = 0;

	max_children = o->max_connections;
	children = calloc((size_t)max_children, sizeof(*children));
	if (!children)
		return err_set("out of memory");
	lfd = listen_on(o->listen);
	if (lfd < 0)
		return -1;
	stats.report_fd = report[0];
	stats.kf = kf;
	stats.nchildren = &nchildren;
	buf_init(&stats.report_buf, 1u << 20);
	if (o->metrics_listen[0] && strcmp(o->metrics_listen, "none")) {
		http = http_start(o->metrics_listen);
		if (!http)
			return -1;
	}
	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
		return err_set("pipe: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	snprintf(startups_spec, sizeof(startups_spec), "%d:%d:%d", o->startups.begin,
	         o->startups.rate, o->startups.full);
	event_log("info", "listening", "{s:s, s:s, s:i, s:s}", "address", o->listen, "data_dir",
	          o->data_dir, "max_connections", o->max_connections, "max_startups",
	          startups_spec);

	for (;;) {
		int timeout = 1000, n;

		pfd[0].fd = pipefd[0];
		pfd[0].events = POLLIN;
		pfd[1].fd = stopping ? -1 : lfd;
		pfd[1].events = POLLIN;
		pfd[2].fd = kf->path ? -1 : kf->watch_fd;
		pfd[2].events = POLLIN;
		pfd[3].fd = report[0];
		pfd[3].events = POLLIN;
		pfd[4].fd = -1;
		pfd[4].events = POLLIN;
		if (http)
			pfd[4].fd = MHD_get_daemon_info(http, MHD_DAEMON_INFO_EPOLL_FD)->epoll_fd;
		watcher_pid = kf->watch_pid;
		n = poll(pfd, 5, timeout);
		if (n > 0 && (pfd[3].revents & POLLIN))
			reports_poll();
		if (http)
			MHD_run(http);
		if (n < 0 && errno != EINTR)
			return err_set("poll: %s", strerror(errno));
		if (n > 0 && (pfd[0].revents & POLLIN)) {
			unsigned char sigs[64];
			ssize_t k = read(pipefd[0], sigs, sizeof(sigs));

			for (ssize_t i = 0; i < k; i++) {
				if ((sigs[i] == SIGTERM || sigs[i] == SIGINT) && !stopping) {
					stopping = true;
					stop_deadline = time(NULL) + o->shutdown_timeout_s;
					close(lfd);
					lfd = -1;
					event_log("info", "stopping", "{s:i, s:i}", "connections",
					          nchildren, "timeout_s", o->shutdown_timeout_s);
				} else if (sigs[i] == SIGHUP && kf->path) {
					kf->st.st_size = -1; /* force a re-read */
				}
			}
			reap(&nchildren);
		}
		if (stopping) {
			reap(&nchildren);
			if (nchildren == 0)
				break;
			if (time(NULL) >= stop_deadline) {
				event_log("warn", "shutdown_timeout", "{s:i}", "killed", nchildren);
				for (int i = 0; i < max_children; i++)
					if (children[i].pid > 0)
						kill(children[i].pid, SIGKILL);
				stop_deadline = time(NULL) + 5;
			}
			continue;
		}
		if (kf->path) {
			keyfile_refresh(kf, false);
		} else {
			if (n > 0 && (pfd[2].revents & (POLLIN | POLLHUP)))
				watch_poll(kf, o->data_dir);
			if (kf->watch_fd < 0 && time(NULL) >= kf->watch_restart) {
				if (watcher_pid > 0)
					reap(&nchildren);
				if (watcher_pid == 0)
					watch_launch(kf);
			}
			kf->watch_pid = watcher_pid ? kf->watch_pid : 0;
			if (pipesrv.socket_path && !pipesrv_pid && time(NULL) >= pipesrv_restart &&
			    pipesrv_launch() < 0)
				event_log("error", "pipeline_server_failed", "{s:s}", "error",
				          err_msg());
		}
		if (n > 0 && (pfd[1].revents & POLLIN)) {
			struct sockaddr_storage ss;
			socklen_t slen = sizeof(ss);
			char peer[128];
			unsigned char source[STARTUPS_SOURCE_LEN];
			int fd = accept4(lfd, (struct sockaddr *)&ss, &slen, SOCK_CLOEXEC);
			long long accepted_ms = clock_now_ms();
			int startups, from_source, inherited[8], ninherited = 0;
			enum metrics_refusal refusal = METRICS_REFUSALS;
			pid_t pid;

			if (fd < 0)
				continue;
			/* libssh writes a packet in pieces: without this, Nagle's
			 * algorithm and delayed ACKs cost 40 ms per round trip */
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
			peer_name(peer, sizeof(peer), (struct sockaddr *)&ss, slen);
			startups_source(source, (struct sockaddr *)&ss);
			reap(&nchildren);
			/* a connection that authenticated a moment ago frees its slot */
			reports_poll();
			count_startups(&startups, &from_source, source);
			stats.m.connections++;
			if (nchildren >= o->max_connections)
				refusal = METRICS_REFUSED_MAX_CONNECTIONS;
			else if (o->per_source_startups && from_source >= o->per_source_startups)
				refusal = METRICS_REFUSED_PER_SOURCE;
			else if (startups_is_dropped(&o->startups, startups, random_percent()))
				refusal = METRICS_REFUSED_MAX_STARTUPS;
			if (refusal != METRICS_REFUSALS) {
				stats.m.refused[refusal]++;
				event_log("warn", "connection_refused", "{s:s, s:s, s:i, s:i, s:i}",
				          "peer", peer, "reason", metrics_refusal_name(refusal),
				          "connections", nchildren, "startups", startups,
				          "source_startups", from_source);
				close(fd);
				continue;
			}
			inherited[ninherited++] = lfd;
			inherited[ninherited++] = pipefd[0];
			inherited[ninherited++] = pipefd[1];
			inherited[ninherited++] = report[0];
			inherited[ninherited++] = kf->watch_fd;
			if (http) {
				inherited[ninherited++] =
				    MHD_get_daemon_info(http, MHD_DAEMON_INFO_LISTEN_FD)->listen_fd;
				inherited[ninherited++] =
				    MHD_get_daemon_info(http, MHD_DAEMON_INFO_EPOLL_FD)->epoll_fd;
			}
			pid = fork();
			if (pid == 0)
				child_main(bind, fd, inherited, (size_t)ninherited, o, &kf->table,
				           peer, report[1], accepted_ms);
			if (pid < 0)
				event_log("error", "fork_failed", "{s:s}", "error",
				          strerror(errno));
			else {
				child_track(pid, 0, source);
				nchildren++;
			}
			close(fd);
		}
	}
	if (kf->watch_pid > 0)
		kill(kf->watch_pid, SIGTERM);
	if (pipesrv_pid > 0)
		kill(pipesrv_pid, SIGTERM);
	if (webhook_pid > 0)
		kill(webhook_pid, SIGTERM);
	if (http)
		MHD_stop_daemon(http);
	close(report[0]);
	close(report[1]);
	buf_release(&stats.report_buf);
	event_log("info", "stopped", NULL);
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		O_LISTEN = 256,
		O_DATA,
		O_HOSTKEYS,
		O_KEYS,
		O_MAXCONN,
		O_STARTUPS,
		O_SOURCE_STARTUPS,
		O_AUTH_TRIES,
		O_SESSION_TIME,
		O_MIN_RATE,
		O_RATE_WINDOW,
		O_GRACE,
		O_IDLE,
		O_PACK,
		O_OBJECT,
		O_REFS,
		O_SHUTDOWN,
		O_LOGLEVEL,
		O_NAMESPACE,
		O_KUBECONFIG,
		O_CONTEXT,
		O_METRICS,
		O_WEBHOOK,
		O_EXTERNAL_URL,
		O_EXTERNAL_URL_SERVICE,
		O_BUILDER_MODE,
		O_BUILDER,
		O_BUILDER_IMAGE,
		O_BUILDER_DRIVER,
		O_BUILDER_ROOT,
		O_BUILDER_SCHEDULER,
		O_BUILDER_NODE_SELECTOR,
		O_BUILDER_SECURITY_CONTEXT,
		O_BUILD_TIMEOUT,
		O_INTERNAL_LISTEN,
		O_INTERNAL_ADVERTISE,
		O_HOOKS_DIR,
		O_HOOKS_SA,
		O_HOOK_TIMEOUT,
		O_HOOKS_IMAGE,
		O_HOOK_POD_KEEP,
		O_HOOK_SAS,
		O_HOOK_IMAGES,
		O_HOOK_RESOURCES,
		O_ROLLOUT_TIMEOUT,
		O_WORK_DIR,
		O_HELM,
		O_POST_RENDERER,
		O_WEBHOOK_ALLOW_LINK_LOCAL,
		O_SPARE_IDLE,
		O_VERSION
	};
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, O_LISTEN},
	    {"data-dir", required_argument, NULL, O_DATA},
	    {"host-key-dir", required_argument, NULL, O_HOSTKEYS},
	    {"authorized-keys", required_argument, NULL, O_KEYS},
	    {"max-connections", required_argument, NULL, O_MAXCONN},
	    {"max-startups", required_argument, NULL, O_STARTUPS},
	    {"per-source-max-startups", required_argument, NULL, O_SOURCE_STARTUPS},
	    {"max-auth-tries", required_argument, NULL, O_AUTH_TRIES},
	    {"max-session-time", required_argument, NULL, O_SESSION_TIME},
	    {"min-transfer-rate", required_argument, NULL, O_MIN_RATE},
	    {"transfer-rate-window", required_argument, NULL, O_RATE_WINDOW},
	    {"login-grace-time", required_argument, NULL, O_GRACE},
	    {"idle-timeout", required_argument, NULL, O_IDLE},
	    {"max-pack-size", required_argument, NULL, O_PACK},
	    {"max-object-size", required_argument, NULL, O_OBJECT},
	    {"max-ref-updates", required_argument, NULL, O_REFS},
	    {"shutdown-timeout", required_argument, NULL, O_SHUTDOWN},
	    {"log-level", required_argument, NULL, O_LOGLEVEL},
	    {"namespace", required_argument, NULL, O_NAMESPACE},
	    {"kubeconfig", required_argument, NULL, O_KUBECONFIG},
	    {"context", required_argument, NULL, O_CONTEXT},
	    {"metrics-listen", required_argument, NULL, O_METRICS},
	    {"webhook-listen", required_argument, NULL, O_WEBHOOK},
	    {"external-url", required_argument, NULL, O_EXTERNAL_URL},
	    {"external-url-from-service", required_argument, NULL, O_EXTERNAL_URL_SERVICE},
	    {"builder-mode", required_argument, NULL, O_BUILDER_MODE},
	    {"builder", required_argument, NULL, O_BUILDER},
	    {"builder-image", required_argument, NULL, O_BUILDER_IMAGE},
	    {"builder-storage-driver", required_argument, NULL, O_BUILDER_DRIVER},
	    {"builder-storage-root", required_argument, NULL, O_BUILDER_ROOT},
	    {"builder-scheduler", required_argument, NULL, O_BUILDER_SCHEDULER},
	    {"builder-node-selector", required_argument, NULL, O_BUILDER_NODE_SELECTOR},
	    {"builder-security-context", required_argument, NULL, O_BUILDER_SECURITY_CONTEXT},
	    {"build-timeout", required_argument, NULL, O_BUILD_TIMEOUT},
	    {"internal-listen", required_argument, NULL, O_INTERNAL_LISTEN},
	    {"internal-advertise", required_argument, NULL, O_INTERNAL_ADVERTISE},
	    {"hooks-dir", required_argument, NULL, O_HOOKS_DIR},
	    {"hooks-service-account", required_argument, NULL, O_HOOKS_SA},
	    {"hook-timeout", required_argument, NULL, O_HOOK_TIMEOUT},
	    {"hooks-image", required_argument, NULL, O_HOOKS_IMAGE},
	    {"hook-pod-keep", required_argument, NULL, O_HOOK_POD_KEEP},
	    {"hook-service-accounts", required_argument, NULL, O_HOOK_SAS},
	    {"hook-images", required_argument, NULL, O_HOOK_IMAGES},
	    {"hook-resources", required_argument, NULL, O_HOOK_RESOURCES},
	    {"rollout-timeout", required_argument, NULL, O_ROLLOUT_TIMEOUT},
	    {"work-dir", required_argument, NULL, O_WORK_DIR},
	    {"helm", required_argument, NULL, O_HELM},
	    {"post-renderer", required_argument, NULL, O_POST_RENDERER},
	    {"webhook-allow-link-local", no_argument, NULL, O_WEBHOOK_ALLOW_LINK_LOCAL},
	    {"pipeline-spare-idle", required_argument, NULL, O_SPARE_IDLE},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, O_VERSION},
	    {NULL, 0, NULL, 0}};
	struct options o = {.listen = "0.0.0.0:2222",
	                    .data_dir = "/var/lib/slipway/repos",
	                    .host_key_dir = "/var/lib/slipway/host-keys",
	                    .max_connections = 100,
	                    .startups = {30, 30, 100},
	                    .per_source_startups = 20,
	                    .max_auth_tries = 6,
	                    .max_session_ms = 3600 * 1000L,
	                    .min_rate = 1024,
	                    .rate_window_ms = 300 * 1000L,
	                    .login_grace_s = 30,
	                    .idle_timeout_s = 300,
	                    .shutdown_timeout_s = 30,
	                    .max_pack_bytes = 1ull << 30,
	                    .max_object_bytes = 100ull << 20,
	                    .max_ref_updates = 1000,
	                    .log_level = "info",
	                    .metrics_listen = "0.0.0.0:8080",
	                    .internal_listen = "127.0.0.1"};
	char builder_path[PATH_MAX], post_renderer_path[PATH_MAX], data_dir[PATH_MAX],
	    socket_path[PATH_MAX + 32];
	int build_timeout_s = 1800, hook_timeout_s = 60, rollout_timeout_s = 300;
	int hook_pod_keep_s = (int)HOOKPOD_KEEP_DEFAULT_S;
	long spare_idle_ms = PIPESRV_SPARE_IDLE_DEFAULT_MS;
	const char *security_context = NULL, *hook_resources = NULL;
	struct keyfile kf;
	ssh_bind bind = NULL;
	int c, ret = 1;
	bool no = false;

	/* lib/log's messages become JSON lines too; --log-level sets both */
	log_set_sink(event_log_sink, NULL, LOG_INFO);
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		int bad = 0;

		switch (c) {
		case O_LISTEN:
			o.listen = optarg;
			break;
		case O_DATA:
			o.data_dir = optarg;
			break;
		case O_HOSTKEYS:
			o.host_key_dir = optarg;
			break;
		case O_KEYS:
			o.authorized_keys = optarg;
			break;
		case O_MAXCONN:
			bad = parse_int(&o.max_connections, optarg, 1, 100000);
			break;
		case O_STARTUPS:
			bad = startups_parse(&o.startups, optarg);
			break;
		case O_SOURCE_STARTUPS:
			bad = parse_int(&o.per_source_startups, optarg, 0, 100000);
			break;
		case O_AUTH_TRIES:
			bad = parse_int(&o.max_auth_tries, optarg, 0, 1000);
			break;
		case O_SESSION_TIME:
			o.max_session_ms = duration_parse_ms(optarg);
			bad = o.max_session_ms < 1000;
			break;
		case O_MIN_RATE:
			bad = parse_size(&o.min_rate, optarg) || o.min_rate > 1ull << 30;
			break;
		case O_RATE_WINDOW:
			o.rate_window_ms = duration_parse_ms(optarg);
			bad = o.rate_window_ms < 1000;
			break;
		case O_GRACE:
			bad = parse_int(&o.login_grace_s, optarg, 1, 3600);
			break;
		case O_IDLE:
			bad = parse_int(&o.idle_timeout_s, optarg, 1, 86400);
			break;
		case O_SHUTDOWN:
			bad = parse_int(&o.shutdown_timeout_s, optarg, 0, 86400);
			break;
		case O_PACK:
			bad = parse_size(&o.max_pack_bytes, optarg);
			break;
		case O_OBJECT:
			bad = parse_size(&o.max_object_bytes, optarg);
			break;
		case O_REFS: {
			int v;

			bad = parse_int(&v, optarg, 1, 1000000);
			o.max_ref_updates = v;
			break;
		}
		case O_LOGLEVEL:
			o.log_level = optarg;
			bad = event_set_level(optarg);
			break;
		case O_NAMESPACE: {
			const char **ns = realloc(o.namespaces, (o.nnamespaces + 2) * sizeof(*ns));

			if (!ns) {
				bad = 1;
				break;
			}
			o.namespaces = ns;
			bad = !repo_is_valid_name(optarg);
			ns[o.nnamespaces++] = optarg;
			ns[o.nnamespaces] = NULL;
			break;
		}
		case O_KUBECONFIG:
			o.kubeconfig = optarg;
			break;
		case O_CONTEXT:
			o.context = optarg;
			break;
		case O_METRICS:
			o.metrics_listen = optarg;
			break;
		case O_WEBHOOK:
			o.webhook_listen = optarg;
			bad = !strchr(optarg, ':');
			break;
		case O_EXTERNAL_URL:
			o.external_url = optarg;
			bad = strncmp(optarg, "ssh://", 6) != 0;
			break;
		case O_EXTERNAL_URL_SERVICE: {
			/* NAMESPACE/NAME: two non-empty names, one slash */
			const char *slash = strchr(optarg, '/');

			o.external_url_service = optarg;
			bad = !slash || slash == optarg || !slash[1] || strchr(slash + 1, '/') ||
			      strlen(optarg) > 300;
			break;
		}
		case O_BUILDER_MODE:
			bad = runner_mode_parse(&o.runner.default_mode, optarg) < 0;
			break;
		case O_BUILDER:
			o.runner.program = optarg;
			break;
		case O_BUILDER_IMAGE:
			o.runner.image = optarg;
			break;
		case O_BUILDER_DRIVER:
			o.runner.storage_driver = optarg;
			bad = strcmp(optarg, "vfs") && strcmp(optarg, "overlay");
			break;
		case O_BUILDER_ROOT:
			o.runner.storage_root = optarg;
			break;
		case O_BUILDER_SCHEDULER:
			o.runner.scheduler_name = optarg;
			break;
		case O_BUILDER_NODE_SELECTOR: {
			const char **ns =
			    realloc(o.node_selector, (o.nnode_selector + 2) * sizeof(*ns));

			if (!ns) {
				bad = 1;
				break;
			}
			o.node_selector = ns;
			bad = !strchr(optarg, '=') || optarg[0] == '=';
			ns[o.nnode_selector++] = optarg;
			ns[o.nnode_selector] = NULL;
			break;
		}
		case O_BUILDER_SECURITY_CONTEXT:
			/* parsed once the flags are read: the last one counts */
			security_context = optarg;
			break;
		case O_BUILD_TIMEOUT:
			bad = parse_int(&build_timeout_s, optarg, 1, 86400);
			break;
		case O_INTERNAL_LISTEN:
			o.internal_listen = optarg;
			break;
		case O_INTERNAL_ADVERTISE:
			o.internal_advertise = optarg;
			break;
		case O_HOOKS_DIR:
			o.pipeline.hooks_dir = optarg;
			break;
		case O_HOOKS_SA:
			o.pipeline.hooks_sa = optarg;
			break;
		case O_HOOK_TIMEOUT:
			bad = parse_int(&hook_timeout_s, optarg, 1, 86400);
			break;
		case O_HOOKS_IMAGE:
			o.pipeline.hooks_image = optarg;
			break;
		case O_HOOK_POD_KEEP:
			bad = parse_int(&hook_pod_keep_s, optarg, 1, 7 * 86400);
			break;
		case O_HOOK_SAS:
			o.pipeline.hook_service_accounts = optarg;
			break;
		case O_HOOK_IMAGES:
			o.pipeline.hook_images = optarg;
			break;
		case O_HOOK_RESOURCES:
			hook_resources = optarg;
			break;
		case O_ROLLOUT_TIMEOUT:
			bad = parse_int(&rollout_timeout_s, optarg, 1, 86400);
			break;
		case O_WORK_DIR:
			o.pipeline.work_root = optarg;
			break;
		case O_HELM:
			o.pipeline.helm = optarg;
			break;
		case O_POST_RENDERER:
			o.pipeline.post_renderer = optarg;
			break;
		case O_WEBHOOK_ALLOW_LINK_LOCAL:
			o.pipeline.webhook_allow_link_local = true;
			break;
		case O_SPARE_IDLE:
			spare_idle_ms = duration_parse_ms(optarg);
			bad = spare_idle_ms < 0;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case O_VERSION:
			printf("gitd %s\n", GITD_AGENT);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
		if (bad) {
			const char *name = "?";

			for (const struct option *lo = longopts; lo->name; lo++)
				if (lo->val == c)
					name = lo->name;
			fprintf(stderr, "gitd: invalid value '%s' for --%s (try --help)\n", optarg,
			        name);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "gitd: unexpected argument '%s' (try --help)\n", argv[optind]);
		return 2;
	}
	if (o.authorized_keys && (o.nnamespaces || o.kubeconfig || o.context ||
	                          o.external_url_service || o.webhook_listen)) {
		fprintf(stderr, "gitd: --authorized-keys serves without a cluster; it does not "
		                "go with --namespace, --kubeconfig, --context, "
		                "--external-url-from-service or --webhook-listen\n");
		return 2;
	}
	if (security_context &&
	    runner_security_context_parse(&o.security_context, security_context) < 0) {
		fprintf(stderr,
		        "gitd: invalid value for --builder-security-context: %s (try --help)\n",
		        err_msg());
		return 2;
	}
	/* the API server checks the fields; a JSON object is what it takes */
	if (hook_resources &&
	    runner_security_context_parse(&o.hook_resources, hook_resources) < 0) {
		fprintf(stderr, "gitd: invalid value for --hook-resources: %s (try --help)\n",
		        err_msg());
		json_decref(o.security_context);
		json_decref(o.hook_resources);
		return 2;
	}
	o.pipeline.hook_resources = o.hook_resources;

	if (!o.runner.program) {
		/* the builder installed next to gitd */
		ssize_t n = readlink("/proc/self/exe", builder_path, sizeof(builder_path) - 16);
		char *slash;

		builder_path[n > 0 ? n : 0] = '\0';
		slash = strrchr(builder_path, '/');
		if (slash)
			snprintf(slash + 1, 16, "builder");
		else
			snprintf(builder_path, sizeof(builder_path), "builder");
		o.runner.program = builder_path;
	}
	if (!o.pipeline.post_renderer) {
		/* slipway-post-render installed next to gitd, as the builder */
		ssize_t n =
		    readlink("/proc/self/exe", post_renderer_path, sizeof(post_renderer_path) - 32);
		char *slash;

		post_renderer_path[n > 0 ? n : 0] = '\0';
		slash = strrchr(post_renderer_path, '/');
		if (slash)
			snprintf(slash + 1, 32, "slipway-post-render");
		else
			snprintf(post_renderer_path, sizeof(post_renderer_path),
			         "slipway-post-render");
		o.pipeline.post_renderer = post_renderer_path;
	}
	if (!o.pipeline.helm)
		o.pipeline.helm = "helm";
	if (!o.runner.image)
		o.runner.image = DEFAULT_BUILDER_IMAGE;
	o.runner.node_selector = o.node_selector;
	o.runner.security_context = o.security_context;
	o.runner.default_timeout_ms = build_timeout_s * 1000L;
	if (!o.pipeline.hooks_sa)
		o.pipeline.hooks_sa = "slipway-hooks";
	if (!o.pipeline.hook_service_accounts)
		o.pipeline.hook_service_accounts = o.pipeline.hooks_sa;
	if (!o.pipeline.work_root)
		o.pipeline.work_root = getenv("TMPDIR");
	o.pipeline.runner = &o.runner;
	o.pipeline.hook_timeout_ms = hook_timeout_s * 1000L;
	o.pipeline.hook_pod_keep_s = hook_pod_keep_s;
	o.pipeline.rollout_timeout_ms = rollout_timeout_s * 1000L;

	git_libgit2_init();
	if (repo_limit_pack_mappings() < 0) {
		fprintf(stderr, "gitd: %s\n", err_msg());
		return 1;
	}
	ssh_init();
	memset(&kf, 0, sizeof(kf));
	authz_init(&kf.table);
	kf.path = o.authorized_keys;
	kf.watch_fd = -1;
	kf.watch.kubeconfig = o.kubeconfig;
	kf.watch.context = o.context;
	kf.watch.namespaces = o.namespaces;
	kf.watch.url_base = o.external_url;
	kf.watch.url_service = o.external_url_service;
	buf_init(&kf.watch_buf, WATCH_LINE_MAX);
	if (mkdir(o.host_key_dir, 0700) < 0 && errno != EEXIST) {
		err_set("cannot create %s: %s", o.host_key_dir, strerror(errno));
		goto out;
	}
	if (mkdir(o.data_dir, 0750) < 0 && errno != EEXIST) {
		err_set("cannot create %s: %s", o.data_dir, strerror(errno));
		goto out;
	}
	/* the pipeline process opens repositories by absolute path */
	if (!realpath(o.data_dir, data_dir)) {
		err_set("cannot resolve %s: %s", o.data_dir, strerror(errno));
		goto out;
	}
	o.data_dir = data_dir;
	snprintf(socket_path, sizeof(socket_path), "%s/.pipeline.sock", data_dir);
	if (pipe2(report, O_CLOEXEC) < 0 || fcntl(report[0], F_SETFL, O_NONBLOCK) < 0) {
		err_set("pipe: %s", strerror(errno));
		goto out;
	}
	if (o.webhook_listen) {
		/* before the host keys are loaded: the listener must not hold them */
		snprintf(webhook_dir, sizeof(webhook_dir), "%s/.webhook", data_dir);
		if (mkdir(webhook_dir, 0700) < 0 && errno != EEXIST) {
			err_set("cannot create %s: %s", webhook_dir, strerror(errno));
			goto out;
		}
		webhook.listen = o.webhook_listen;
		webhook.socket_path = socket_path;
		webhook.empty_dir = webhook_dir;
		webhook.report_fd = report[1];
		if (webhook_start(&webhook_pid, &webhook) < 0)
			goto out;
	}
	bind = ssh_bind_new();
	if (!bind) {
		err_set("out of memory");
		goto out;
	}
	ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no);
	if (load_host_key(bind, o.host_key_dir, "ssh_host_ed25519_key", SSH_KEYTYPE_ED25519, 0) <
	        0 ||
	    load_host_key(bind, o.host_key_dir, "ssh_host_rsa_key", SSH_KEYTYPE_RSA, 3072) < 0)
		goto out;
	if (ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HOSTKEY_ALGORITHMS,
	                         "ssh-ed25519,rsa-sha2-512,rsa-sha2-256") != SSH_OK) {
		err_set("cannot set host key algorithms: %s", ssh_get_error(bind));
		goto out;
	}
	{
		unsigned swept = 0;

		if (repo_sweep_quarantines(o.data_dir, &swept) < 0)
			event_log("warn", "quarantine_sweep_failed", "{s:s}", "error", err_msg());
		if (swept)
			event_log("info", "quarantines_removed", "{s:i}", "count", (int)swept);
	}
	if (kf.path && keyfile_refresh(&kf, true) < 0)
		goto out;
	o.pipeline.report_fd = report[1]; /* the workers' webhook deliveries */
	/* the watcher is forked before anything else: it alone loads the
	 * API credentials */
	if (!kf.path && watch_launch(&kf) < 0)
		goto out;
	if (!kf.path) {
		pipesrv.socket_path = socket_path;
		pipesrv.data_dir = o.data_dir;
		pipesrv.kubeconfig = o.kubeconfig;
		pipesrv.context = o.context;
		pipesrv.namespaces = o.namespaces;
		pipesrv.cfg = &o.pipeline;
		pipesrv.internal_bind = o.internal_listen;
		pipesrv.internal_advertise = o.internal_advertise;
		pipesrv.max_pack_bytes = o.max_pack_bytes;
		pipesrv.max_object_bytes = o.max_object_bytes;
		pipesrv.is_polling = true;
		pipesrv.spare_idle_ms = spare_idle_ms;
		if (pipesrv_launch() < 0)
			goto out;
	}
	sshd_prepare();
	if (serve(&o, bind, &kf) < 0)
		goto out;
	ret = 0;
out:
	if (ret)
		event_log("error", "start_failed", "{s:s}", "error", err_msg());
	if (bind)
		ssh_bind_free(bind);
	authz_release(&kf.table);
	buf_release(&kf.watch_buf);
	free(o.namespaces);
	free(o.node_selector);
	json_decref(o.security_context);
	json_decref(o.hook_resources);
	ssh_finalize();
	git_libgit2_shutdown();
	return ret;
}
