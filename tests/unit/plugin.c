/* Unit tests of kubectl-slipway's pure parts: key lines and fingerprints
 * (against ssh-keygen -lf), kubectl's age format, tables, and the command
 * line (global flags, the flag walker, remote create's grammar). */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "buf.h"
#include "cli.h"
#include "err.h"
#include "pubkey.h"
#include "table.h"

/* Made with ssh-keygen; the fingerprints are what `ssh-keygen -lf` printed. */
#define ED25519_KEY                                                                                \
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF5CBXhm8JCLhAIKRSLhzQ4a4RVaK7QVDNaIYOmyFexC"
#define ED25519_FP "SHA256:K0lC3NxP8Oiinv4sJb5/VbPB9R/xjaZqpMdJRwSwFmk"
#define RSA_KEY                                                                                    \
	"ssh-rsa "                                                                                 \
	"AAAAB3NzaC1yc2EAAAADAQABAAAAgQC948+"                                                      \
	"3hvSCRYPaGNYaONwAkadzMwUswCEsFM4rW8vrenn8hqnJIbCN3YIyL2md+"                               \
	"1TU6wINZFS/p4znyNimuKIvbQTNzvjzlOqRI2+BIeqkLkjtir8F4H1gn+SadvEVahJvfdqFp8kvYKRnbAqyuKkH+" \
	"NN7O4y69baGSg6jLZH4UQ=="
#define RSA_FP "SHA256:HlEsCTJhdokvNlylhg/mHkiSGu/o9I2lRUAqey4lJfQ"

static int parse(struct pubkey *k, const char *line)
{
	err_clear();
	return pubkey_parse(k, line, strlen(line));
}

static void test_pubkey(void)
{
	struct pubkey k;

	if (ok(parse(&k, ED25519_KEY " alice@laptop\n") == 0, "an ed25519 key line parses")) {
		is_str(k.fingerprint, ED25519_FP, "its fingerprint is ssh-keygen -l's");
		is_str(k.type, "ssh-ed25519", "its type is read");
		is_str(k.comment, "alice@laptop", "its comment is read without the newline");
		is_str(k.line, ED25519_KEY " alice@laptop", "the stored line is normalised");
	}
	pubkey_release(&k);
	if (ok(parse(&k, "  " RSA_KEY "   bob ci key \r\n") == 0, "an RSA key line parses")) {
		is_str(k.fingerprint, RSA_FP, "its fingerprint is ssh-keygen -l's (padded base64)");
		is_str(k.comment, "bob ci key", "a comment may hold spaces");
		is_str(k.line, RSA_KEY " bob ci key", "surrounding space and CR are dropped");
	}
	pubkey_release(&k);
	ok(parse(&k, ED25519_KEY) == 0 && !k.comment[0], "a key without comment parses");
	pubkey_release(&k);
	ok(parse(&k,
	         "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIF5CBXhm8JCLhAIKRSLhzQ4a4RVaK7QVDNaIYOmyFexC") <
	           0 &&
	       strstr(err_msg(), "not a ssh-rsa key"),
	   "a blob of another type than the line says is refused");
	ok(parse(&k, "ssh-foo AAAA") < 0 && strstr(err_msg(), "unknown key type"),
	   "an unknown key type is refused");
	ok(parse(&k, "command=\"ls\" " ED25519_KEY) < 0 && strstr(err_msg(), "unknown key type"),
	   "key options in front of the type are refused");
	ok(parse(&k, "ssh-ed25519 AAAA$$$$") < 0 && strstr(err_msg(), "malformed base64"),
	   "bad base64 is refused");
	ok(parse(&k, "ssh-ed25519") < 0, "a type without key data is refused");
	ok(parse(&k, "") < 0, "an empty line is refused");
	ok(parse(&k, ED25519_KEY "\n" RSA_KEY) < 0 && strstr(err_msg(), "several lines"),
	   "two lines are not one key");
	is_int(parse(&k, "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
	                 "-----END OPENSSH PRIVATE KEY-----\n"),
	       PUBKEY_EPRIVATE, "an OpenSSH private key is told apart");
	ok(strstr(err_msg(), "private key") != NULL, "and the message says so");
	ok(pubkey_is_private("-----BEGIN RSA PRIVATE KEY-----\n", 32), "a PEM RSA key is private");
	ok(!pubkey_is_private("-----BEGIN PUBLIC KEY-----\n", 27), "a PEM public key is not");
	ok(pubkey_fingerprint_matches("K0lC3NxP8Oiinv4sJb5/VbPB9R/xjaZqpMdJRwSwFmk", ED25519_FP),
	   "a fingerprint matches without its SHA256: prefix");
	ok(pubkey_fingerprint_matches(ED25519_FP, ED25519_FP), "and with it");
	ok(!pubkey_fingerprint_matches("SHA256:", ED25519_FP), "an empty one matches nothing");
	ok(!pubkey_fingerprint_matches(RSA_FP, ED25519_FP), "another one does not match");
}

static const char *dur(long long d)
{
	static char buf[32];

	table_human_duration(buf, sizeof(buf), d);
	return buf;
}

static void test_durations(void)
{
	char buf[32];

	is_str(dur(0), "0s", "0 seconds");
	is_str(dur(-1), "0s", "a second in the future is 0s (clock skew)");
	is_str(dur(-5), "<invalid>", "further in the future is <invalid>");
	is_str(dur(45), "45s", "seconds");
	is_str(dur(119), "119s", "up to 2 minutes in seconds");
	is_str(dur(200), "3m20s", "under 10 minutes with seconds");
	is_str(dur(300), "5m", "whole minutes without seconds");
	is_str(dur(3 * 3600 - 1), "179m", "under 3 hours in minutes");
	is_str(dur(3 * 3600 + 600), "3h10m", "under 8 hours with minutes");
	is_str(dur(3 * 3600), "3h", "whole hours");
	is_str(dur(47 * 3600 + 59), "47h", "under 2 days in hours");
	is_str(dur(2 * 86400), "2d", "whole days");
	is_str(dur(2 * 86400 + 4 * 3600), "2d4h", "under 8 days with hours");
	is_str(dur(90 * 86400 + 3600), "90d", "under 2 years in days");
	is_str(dur(3 * 365 * 86400LL + 20 * 86400), "3y20d", "under 8 years with days");
	is_str(dur(9 * 365 * 86400LL), "9y", "years");
	table_age(buf, sizeof(buf), "2024-05-01T12:00:00Z", 1714564800 + 5 * 60);
	is_str(buf, "5m", "age of a 5 minute old object");
	table_age(buf, sizeof(buf), "garbage", 0);
	is_str(buf, "<unknown>", "age of a bad timestamp");
	table_span(buf, sizeof(buf), "2024-05-01T12:00:00Z", "2024-05-01T12:02:05Z", 0);
	is_str(buf, "2m5s", "span between two times");
	table_span(buf, sizeof(buf), "2024-05-01T12:00:00Z", NULL, 1714564800 + 30);
	is_str(buf, "30s", "span of a running stage ends now");
	table_span(buf, sizeof(buf), NULL, NULL, 0);
	is_str(buf, "", "span without a start is empty");
}

static void test_table(void)
{
	static const char *const headers[] = {"NAME", "URL", "AGE"};
	const char *r1[] = {"web", "ssh://git@host/ns/web.git", "5m"};
	const char *r2[] = {"api-server", NULL, "3h"};
	struct table t;
	struct buf out;

	buf_init(&out, 4096);
	table_init(&t, 3, headers);
	table_render(&out, &t);
	is_str(buf_str(&out), "NAME   URL   AGE\n", "an empty table is its header");
	buf_release(&out);
	ok(table_add(&t, r1) == 0 && table_add(&t, r2) == 0, "rows are added");
	table_render(&out, &t);
	is_str(buf_str(&out),
	       "NAME         URL                         AGE\n"
	       "web          ssh://git@host/ns/web.git   5m\n"
	       "api-server   <none>                      3h\n",
	       "columns are padded to the widest cell plus 3, missing cells are <none>");
	table_release(&t);
	buf_release(&out);
}

static int parse_cli(struct cli *c, const char *const *args)
{
	int n = 0;

	while (args[n])
		n++;
	err_clear();
	return cli_parse(c, n, (char **)args);
}

static void test_cli(void)
{
	static const char *const a1[] = {"kubectl-slipway", "remote",         "-n", "team", "list",
	                                 "-ojson",          "--context=kind", NULL};
	static const char *const a2[] = {"kubectl-slipway",
	                                 "--namespace=x",
	                                 "--kubeconfig",
	                                 "/k",
	                                 "key",
	                                 "add",
	                                 "web",
	                                 "-",
	                                 "--",
	                                 "-n",
	                                 NULL};
	static const char *const a3[] = {"kubectl-slipway", "runs", "-o", "yaml", NULL};
	static const char *const a4[] = {"kubectl-slipway", "runs", "-n", NULL};
	static const char *const a5[] = {"kubectl-slipway", "wait", "r", "-h", NULL};
	static const struct cli_flag flags[] = {{"latest", true}, {"force", false}, {NULL, false}};
	char *w1[] = {"--latest=web", "run", "--force", "--latest", "x", "--", "--force", NULL};
	char *w2[] = {"--nope", NULL};
	char *w3[] = {"--latest", NULL};
	struct cli_iter it = {.argc = 7, .argv = w1};
	struct cli c;
	const char *v;

	if (ok(parse_cli(&c, a1) == 0, "global flags anywhere parse")) {
		is_str(c.ns, "team", "-n NS after the command");
		is_str(c.context, "kind", "--context=NAME");
		is_int(c.output, CLI_OUTPUT_JSON, "-ojson");
		is_int(c.argc, 2, "the command words remain");
		is_str(c.argv[1], "list", "in order");
	}
	cli_release(&c);
	if (ok(parse_cli(&c, a2) == 0, "--namespace= and --kubeconfig FILE parse")) {
		is_str(c.ns, "x", "--namespace=NS");
		is_str(c.kubeconfig, "/k", "--kubeconfig FILE");
		is_int(c.argc, 6, "after -- nothing is taken");
		is_str(c.argv[5], "-n", "so -n stays an argument");
		is_str(c.argv[3], "-", "- stays an argument");
	}
	cli_release(&c);
	ok(parse_cli(&c, a3) == 0 && c.output == CLI_OUTPUT_YAML, "-o yaml selects YAML output");
	cli_release(&c);
	ok(parse_cli(&c, a4) == CLI_EUSAGE && strstr(err_msg(), "needs an argument"),
	   "-n without a value is a usage error");
	cli_release(&c);
	ok(parse_cli(&c, a5) == 0 && c.help && c.argc == 2, "-h after a command asks its help");
	cli_release(&c);

	is_int(cli_next(&it, flags, &v), 0, "--latest=V is the flag");
	is_str(v, "web", "with its glued value");
	is_int(cli_next(&it, flags, &v), CLI_POSITIONAL, "a word is a positional");
	is_str(v, "run", "and is returned");
	is_int(cli_next(&it, flags, &v), 1, "a flag without value");
	is_int(cli_next(&it, flags, &v), 0, "--latest V");
	is_str(v, "x", "takes the next argument");
	is_int(cli_next(&it, flags, &v), CLI_POSITIONAL, "after -- a flag is a positional");
	is_str(v, "--force", "unchanged");
	is_int(cli_next(&it, flags, &v), CLI_END, "then the end");
	it = (struct cli_iter){.argc = 1, .argv = w2};
	ok(cli_next(&it, flags, &v) == CLI_EUSAGE && strstr(err_msg(), "unknown flag: --nope"),
	   "an unknown flag is a usage error");
	it = (struct cli_iter){.argc = 1, .argv = w3};
	ok(cli_next(&it, flags, &v) == CLI_EUSAGE && strstr(err_msg(), "needs an argument"),
	   "a flag without its value is a usage error");
	ok(cli_is_dns_name("web-1.api") && !cli_is_dns_name("Web") && !cli_is_dns_name("-web") &&
	       !cli_is_dns_name("web/x") && !cli_is_dns_name(""),
	   "object names are DNS-1123 subdomains");
}

static json_t *remote_object(int *ret, const char *const *args)
{
	json_t *obj = NULL;
	int n = 0;

	while (args[n])
		n++;
	err_clear();
	*ret = cli_remote_object(&obj, n, (char **)args);
	return obj;
}

static void test_remote_create(void)
{
	static const char *const full[] = {"web",
	                                   "--deployment",
	                                   "web",
	                                   "--container",
	                                   "app=src/app",
	                                   "--dockerfile",
	                                   "Dockerfile.prod",
	                                   "--build-arg",
	                                   "MODE=prod",
	                                   "--container",
	                                   "side",
	                                   "--deployment",
	                                   "worker",
	                                   "--container",
	                                   "job=worker",
	                                   "--registry",
	                                   "registry.example.com/team",
	                                   "--insecure-registry",
	                                   "--branch",
	                                   "main",
	                                   "--branch",
	                                   "release",
	                                   "--deny-non-fast-forwards",
	                                   "--no-rollback",
	                                   NULL};
	static const char *const no_dep[] = {"web", "--container", "app=.", NULL};
	static const char *const empty_dep[] = {"web", "--deployment", "a", "--deployment",
	                                        "b",   "--container",  "x", NULL};
	static const char *const no_name[] = {"--deployment", "a", "--container", "x", NULL};
	static const char *const bad_name[] = {"Web", "--deployment", "a", "--container", "x",
	                                       NULL};
	static const char *const only_name[] = {"web", NULL};
	static const char *const bad_arg[] = {"web", "--deployment", "a",       "--container",
	                                      "x",   "--build-arg",  "NOVALUE", NULL};
	json_t *obj, *want;
	char *got;
	int ret;

	obj = remote_object(&ret, full);
	want = json_loads(
	    "{\"apiVersion\":\"slipway.dev/v1alpha1\",\"kind\":\"Remote\","
	    "\"metadata\":{\"name\":\"web\"},\"spec\":{"
	    "\"deployments\":[{\"name\":\"web\",\"containers\":["
	    "{\"name\":\"app\",\"path\":\"src/app\",\"dockerfile\":\"Dockerfile.prod\","
	    "\"buildArgs\":[{\"name\":\"MODE\",\"value\":\"prod\"}]},"
	    "{\"name\":\"side\",\"path\":\".\"}]},"
	    "{\"name\":\"worker\",\"containers\":[{\"name\":\"job\",\"path\":\"worker\"}]}],"
	    "\"registry\":{\"url\":\"registry.example.com/team\",\"insecure\":true},"
	    "\"branches\":[\"main\",\"release\"],\"denyNonFastForwards\":true,"
	    "\"rollbackOnFailure\":false}}",
	    0, NULL);
	ok(ret == 0 && json_equal(obj, want), "remote create builds the whole Remote spec");
	if (!json_equal(obj, want)) {
		got = json_dumps(obj, JSON_SORT_KEYS);
		printf("#   got: %s\n", got ? got : "(null)");
		free(got);
	}
	json_decref(want);
	json_decref(obj);
	obj = remote_object(&ret, no_dep);
	ok(ret == CLI_EUSAGE && !obj && strstr(err_msg(), "must follow a --deployment"),
	   "--container before --deployment is a usage error");
	obj = remote_object(&ret, empty_dep);
	ok(ret == CLI_EUSAGE && strstr(err_msg(), "deployment \"a\" has no --container"),
	   "a deployment without containers is a usage error");
	obj = remote_object(&ret, no_name);
	ok(ret == CLI_EUSAGE && strstr(err_msg(), "needs a NAME"), "NAME is required");
	obj = remote_object(&ret, bad_name);
	ok(ret == CLI_EUSAGE && strstr(err_msg(), "invalid remote name"),
	   "an invalid NAME is refused before the API sees it");
	obj = remote_object(&ret, only_name);
	ok(ret == CLI_EUSAGE && strstr(err_msg(), "needs --deployment"),
	   "a Remote without deployments is a usage error");
	obj = remote_object(&ret, bad_arg);
	ok(ret == CLI_EUSAGE && strstr(err_msg(), "--build-arg NAME=VALUE"),
	   "--build-arg without = is a usage error");
}

static void test_remote_create_manifests(void)
{
	static const char *const full[] = {"web",        "--manifests",
	                                   "deploy/k8s", "--prune",
	                                   "--no-wait",  "--apply-timeout",
	                                   "60",         "--apply-service-account",
	                                   "deployer",   "--helm-release",
	                                   "web-1",      "--helm-set",
	                                   "a.b=c=d",    NULL};
	static const char *const no_path[] = {"web", "--deployment", "a", "--container",
	                                      "x",   "--prune",      NULL};
	static const char *const bad_timeout[] = {"web", "--manifests", "k", "--apply-timeout",
	                                          "0",   NULL};
	static const char *const bad_set[] = {"web", "--manifests", "k", "--helm-set", "x", NULL};
	json_t *obj, *want;
	int ret;

	obj = remote_object(&ret, full);
	want = json_loads("{\"apiVersion\":\"slipway.dev/v1alpha1\",\"kind\":\"Remote\","
	                  "\"metadata\":{\"name\":\"web\"},\"spec\":{\"manifests\":{"
	                  "\"path\":\"deploy/k8s\",\"prune\":true,\"wait\":false,"
	                  "\"timeoutSeconds\":60,\"serviceAccountName\":\"deployer\","
	                  "\"helm\":{\"release\":\"web-1\",\"values\":[{\"name\":\"a.b\","
	                  "\"value\":\"c=d\"}]}}}}",
	                  0, NULL);
	ok(ret == 0 && json_equal(obj, want),
	   "remote create --manifests without deployments builds spec.manifests");
	json_decref(want);
	json_decref(obj);
	obj = remote_object(&ret, no_path);
	ok(ret == CLI_EUSAGE && !obj && strstr(err_msg(), "need --manifests PATH"),
	   "--prune without --manifests is a usage error");
	obj = remote_object(&ret, bad_timeout);
	ok(ret == CLI_EUSAGE && !obj && strstr(err_msg(), "--apply-timeout SECONDS from 1 to 3600"),
	   "--apply-timeout 0 is a usage error");
	obj = remote_object(&ret, bad_set);
	ok(ret == CLI_EUSAGE && !obj && strstr(err_msg(), "--helm-set NAME=VALUE"),
	   "--helm-set without = is a usage error");
}

int main(void)
{
	test_pubkey();
	test_durations();
	test_table();
	test_cli();
	test_remote_create();
	test_remote_create_manifests();
	return tap_done();
}
