/* cli: global flags of kubectl-slipway, a small flag walker for its commands,
 * and the grammar of `remote create` (see cli.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "banned.h"

/* Matches ARG against the long flag "--NAME" and its short form SHORT (a
 * letter, or 0): with the value glued ("--NAME=V", "-xV") or in the next
 * argument. Returns 1 with *VALUE set when it matches, 0 when not,
 * CLI_EUSAGE when the value is missing. */
static int global_flag(char **argv, int argc, int *i, const char *name, char shortname,
                       const char **value)
{
	const char *arg = argv[*i];
	size_t n = strlen(name);

	if (arg[0] == '-' && arg[1] == '-' && !strncmp(arg + 2, name, n)) {
		if (arg[2 + n] == '=') {
			*value = arg + 3 + n;
			return 1;
		}
		if (arg[2 + n])
			return 0;
	} else if (shortname && arg[0] == '-' && arg[1] == shortname) {
		if (arg[2]) {
			*value = arg[2] == '=' ? arg + 3 : arg + 2;
			return 1;
		}
	} else {
		return 0;
	}
	if (*i + 1 >= argc) {
		err_set("flag needs an argument: %s", arg);
		return CLI_EUSAGE;
	}
	*value = argv[++*i];
	return 1;
}

int cli_parse(struct cli *out, int argc, char **argv)
{
	bool only_positional = false;
	const char *output = NULL;

	memset(out, 0, sizeof(*out));
	out->argv = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*out->argv));
	if (!out->argv)
		return err_set("out of memory");
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		int m;

		if (only_positional || arg[0] != '-' || !arg[1]) {
			out->argv[out->argc++] = argv[i];
			continue;
		}
		if (!strcmp(arg, "--")) {
			only_positional = true;
			out->argv[out->argc++] = argv[i];
		} else if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			out->help = true;
		} else if (!strcmp(arg, "--version")) {
			out->version = true;
		} else if ((m = global_flag(argv, argc, &i, "namespace", 'n', &out->ns)) ||
		           (m = global_flag(argv, argc, &i, "kubeconfig", 0, &out->kubeconfig)) ||
		           (m = global_flag(argv, argc, &i, "context", 0, &out->context)) ||
		           (m = global_flag(argv, argc, &i, "output", 'o', &output))) {
			if (m < 0)
				return CLI_EUSAGE;
		} else {
			out->argv[out->argc++] = argv[i];
		}
	}
	if (out->ns && !*out->ns)
		return err_set("empty --namespace"), CLI_EUSAGE;
	if (!output || !strcmp(output, "table") || !strcmp(output, "wide"))
		out->output = CLI_OUTPUT_TABLE;
	else if (!strcmp(output, "json"))
		out->output = CLI_OUTPUT_JSON;
	else if (!strcmp(output, "yaml"))
		out->output = CLI_OUTPUT_YAML;
	else
		return err_set("unknown output format \"%s\" (json and yaml are supported)",
		               output),
		       CLI_EUSAGE;
	return 0;
}

void cli_release(struct cli *c)
{
	free(c->argv);
	c->argv = NULL;
	c->argc = 0;
}

int cli_next(struct cli_iter *it, const struct cli_flag *flags, const char **value)
{
	const char *arg, *eq;
	size_t n;

	*value = NULL;
	for (;;) {
		if (it->i >= it->argc)
			return CLI_END;
		arg = it->argv[it->i++];
		if (!it->only_positional && !strcmp(arg, "--")) {
			it->only_positional = true;
			continue;
		}
		break;
	}
	if (it->only_positional || arg[0] != '-' || !arg[1]) {
		*value = arg;
		return CLI_POSITIONAL;
	}
	if (arg[1] != '-')
		return err_set("unknown flag: %s", arg), CLI_EUSAGE;
	eq = strchr(arg, '=');
	n = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
	for (int f = 0; flags && flags[f].name; f++) {
		if (strlen(flags[f].name) != n || strncmp(flags[f].name, arg + 2, n))
			continue;
		if (!flags[f].has_value) {
			if (eq)
				return err_set("flag takes no value: --%s", flags[f].name),
				       CLI_EUSAGE;
			return f;
		}
		if (eq) {
			*value = eq + 1;
		} else if (it->i < it->argc) {
			*value = it->argv[it->i++];
		} else {
			return err_set("flag needs an argument: %s", arg), CLI_EUSAGE;
		}
		return f;
	}
	return err_set("unknown flag: %.*s", (int)(n + 2), arg), CLI_EUSAGE;
}

bool cli_is_dns_name(const char *name)
{
	size_t n = strlen(name);

	if (!n || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');

		if (!alnum && ch != '-' && ch != '.')
			return false;
		if (!alnum && (i == 0 || i == n - 1))
			return false;
	}
	return true;
}

/* Appends a new object to the array KEY of OBJ (created when missing) and
 * returns it (borrowed), or NULL when out of memory. */
static json_t *append_object(json_t *obj, const char *key)
{
	json_t *arr = json_object_get(obj, key), *item = json_object();

	if (!item)
		return NULL;
	if (!arr) {
		arr = json_array();
		if (!arr || json_object_set_new(obj, key, arr) < 0) {
			json_decref(item);
			return NULL;
		}
	}
	if (json_array_append_new(arr, item) < 0)
		return NULL;
	return item;
}

/* Returns OBJ[KEY] as an object, created when missing (borrowed), or NULL. */
static json_t *object_at(json_t *obj, const char *key)
{
	json_t *o = json_object_get(obj, key);

	if (o)
		return o;
	o = json_object();
	if (!o || json_object_set_new(obj, key, o) < 0)
		return NULL;
	return o;
}

int cli_remote_object(json_t **out, int argc, char **argv)
{
	enum {
		F_DEPLOYMENT,
		F_CONTAINER,
		F_DOCKERFILE,
		F_BUILD_ARG,
		F_REGISTRY,
		F_INSECURE,
		F_BRANCH,
		F_DENY_NFF,
		F_NO_ROLLBACK,
		F_MANIFESTS,
		F_PRUNE,
		F_NO_WAIT,
		F_APPLY_TIMEOUT,
		F_APPLY_SA,
		F_HELM_RELEASE,
		F_HELM_SET
	};
	static const struct cli_flag flags[] = {
	    [F_DEPLOYMENT] = {"deployment", true},
	    [F_CONTAINER] = {"container", true},
	    [F_DOCKERFILE] = {"dockerfile", true},
	    [F_BUILD_ARG] = {"build-arg", true},
	    [F_REGISTRY] = {"registry", true},
	    [F_INSECURE] = {"insecure-registry", false},
	    [F_BRANCH] = {"branch", true},
	    [F_DENY_NFF] = {"deny-non-fast-forwards", false},
	    [F_NO_ROLLBACK] = {"no-rollback", false},
	    [F_MANIFESTS] = {"manifests", true},
	    [F_PRUNE] = {"prune", false},
	    [F_NO_WAIT] = {"no-wait", false},
	    [F_APPLY_TIMEOUT] = {"apply-timeout", true},
	    [F_APPLY_SA] = {"apply-service-account", true},
	    [F_HELM_RELEASE] = {"helm-release", true},
	    [F_HELM_SET] = {"helm-set", true},
	    {NULL, false},
	};
	struct cli_iter it = {.argc = argc, .argv = argv};
	json_t *obj, *spec, *dep = NULL, *ctr = NULL, *item, *branches;
	const char *name = NULL, *v;
	int f, ret = -1;

	*out = NULL;
	obj = json_pack("{s:s, s:s, s:{}, s:{}}", "apiVersion", "slipway.dev/v1alpha1", "kind",
	                "Remote", "metadata", "spec");
	if (!obj)
		return err_set("out of memory");
	spec = json_object_get(obj, "spec");
	while ((f = cli_next(&it, flags, &v)) != CLI_END) {
		const char *eq = v ? strchr(v, '=') : NULL;

		switch (f) {
		case CLI_EUSAGE:
			ret = CLI_EUSAGE;
			goto out;
		case CLI_POSITIONAL:
			if (name) {
				err_set("unexpected argument \"%s\" (one NAME per remote)", v);
				ret = CLI_EUSAGE;
				goto out;
			}
			name = v;
			continue;
		case F_DEPLOYMENT:
			if (!*v) {
				err_set("empty --deployment");
				ret = CLI_EUSAGE;
				goto out;
			}
			if (dep && !json_object_get(dep, "containers")) {
				err_set("deployment \"%s\" has no --container",
				        json_string_value(json_object_get(dep, "name")));
				ret = CLI_EUSAGE;
				goto out;
			}
			dep = append_object(spec, "deployments");
			ctr = NULL;
			if (!dep || json_object_set_new(dep, "name", json_string(v)) < 0)
				goto oom;
			continue;
		case F_CONTAINER:
			if (!dep) {
				err_set("--container %s must follow a --deployment", v);
				ret = CLI_EUSAGE;
				goto out;
			}
			if (eq == v || !*v || (eq && !eq[1])) {
				err_set("expected --container NAME=PATH or NAME, got \"%s\"", v);
				ret = CLI_EUSAGE;
				goto out;
			}
			ctr = append_object(dep, "containers");
			if (!ctr ||
			    json_object_set_new(ctr, "name",
			                        eq ? json_stringn(v, (size_t)(eq - v))
			                           : json_string(v)) < 0 ||
			    json_object_set_new(ctr, "path", json_string(eq ? eq + 1 : ".")) < 0)
				goto oom;
			continue;
		case F_DOCKERFILE:
		case F_BUILD_ARG:
			if (!ctr) {
				err_set("--%s must follow a --container", flags[f].name);
				ret = CLI_EUSAGE;
				goto out;
			}
			if (f == F_DOCKERFILE) {
				if (json_object_set_new(ctr, "dockerfile", json_string(v)) < 0)
					goto oom;
				continue;
			}
			if (!eq || eq == v) {
				err_set("expected --build-arg NAME=VALUE, got \"%s\"", v);
				ret = CLI_EUSAGE;
				goto out;
			}
			item = append_object(ctr, "buildArgs");
			if (!item ||
			    json_object_set_new(item, "name", json_stringn(v, (size_t)(eq - v))) <
			        0 ||
			    json_object_set_new(item, "value", json_string(eq + 1)) < 0)
				goto oom;
			continue;
		case F_REGISTRY:
		case F_INSECURE:
			item = object_at(spec, "registry");
			if (!item ||
			    json_object_set_new(item, f == F_REGISTRY ? "url" : "insecure",
			                        f == F_REGISTRY ? json_string(v) : json_true()) < 0)
				goto oom;
			continue;
		case F_BRANCH:
			branches = json_object_get(spec, "branches");
			if (!branches) {
				branches = json_array();
				if (!branches ||
				    json_object_set_new(spec, "branches", branches) < 0)
					goto oom;
			}
			if (json_array_append_new(branches, json_string(v)) < 0)
				goto oom;
			continue;
		case F_DENY_NFF:
			if (json_object_set_new(spec, "denyNonFastForwards", json_true()) < 0)
				goto oom;
			continue;
		case F_NO_ROLLBACK:
			if (json_object_set_new(spec, "rollbackOnFailure", json_false()) < 0)
				goto oom;
			continue;
		case F_MANIFESTS:
		case F_APPLY_SA:
			if (!*v) {
				err_set("empty --%s", flags[f].name);
				ret = CLI_EUSAGE;
				goto out;
			}
			item = object_at(spec, "manifests");
			if (!item || json_object_set_new(
			                 item, f == F_MANIFESTS ? "path" : "serviceAccountName",
			                 json_string(v)) < 0)
				goto oom;
			continue;
		case F_PRUNE:
		case F_NO_WAIT:
			item = object_at(spec, "manifests");
			if (!item || json_object_set_new(item, f == F_PRUNE ? "prune" : "wait",
			                                 json_boolean(f == F_PRUNE)) < 0)
				goto oom;
			continue;
		case F_APPLY_TIMEOUT: {
			char *end;
			long secs;

			errno = 0;
			secs = strtol(v, &end, 10);
			if (errno || end == v || *end || secs < 1 || secs > 3600) {
				err_set(
				    "expected --apply-timeout SECONDS from 1 to 3600, got \"%s\"",
				    v);
				ret = CLI_EUSAGE;
				goto out;
			}
			item = object_at(spec, "manifests");
			if (!item ||
			    json_object_set_new(item, "timeoutSeconds", json_integer(secs)) < 0)
				goto oom;
			continue;
		}
		case F_HELM_RELEASE:
		case F_HELM_SET:
			item = object_at(spec, "manifests");
			item = item ? object_at(item, "helm") : NULL;
			if (!item)
				goto oom;
			if (f == F_HELM_RELEASE) {
				if (json_object_set_new(item, "release", json_string(v)) < 0)
					goto oom;
				continue;
			}
			if (!eq || eq == v) {
				err_set("expected --helm-set NAME=VALUE, got \"%s\"", v);
				ret = CLI_EUSAGE;
				goto out;
			}
			item = append_object(item, "values");
			if (!item ||
			    json_object_set_new(item, "name", json_stringn(v, (size_t)(eq - v))) <
			        0 ||
			    json_object_set_new(item, "value", json_string(eq + 1)) < 0)
				goto oom;
			continue;
		}
	}
	if (json_object_get(spec, "manifests") &&
	    !json_object_get(json_object_get(spec, "manifests"), "path")) {
		err_set("--prune, --no-wait, --apply-timeout, --apply-service-account and --helm-* "
		        "need --manifests PATH");
		ret = CLI_EUSAGE;
		goto out;
	}
	if (!name) {
		err_set("remote create needs a NAME");
		ret = CLI_EUSAGE;
		goto out;
	}
	if (!cli_is_dns_name(name)) {
		err_set("invalid remote name \"%s\" (lowercase letters, digits, '-' and '.')",
		        name);
		ret = CLI_EUSAGE;
		goto out;
	}
	if (!dep && !json_object_get(spec, "manifests")) {
		err_set("remote create needs --deployment NAME --container NAME=PATH, or "
		        "--manifests PATH");
		ret = CLI_EUSAGE;
		goto out;
	}
	if (dep && !json_object_get(dep, "containers")) {
		err_set("deployment \"%s\" has no --container",
		        json_string_value(json_object_get(dep, "name")));
		ret = CLI_EUSAGE;
		goto out;
	}
	if (json_object_set_new(json_object_get(obj, "metadata"), "name", json_string(name)) < 0)
		goto oom;
	*out = obj;
	obj = NULL;
	ret = 0;
	goto out;
oom:
	err_set("out of memory");
out:
	json_decref(obj);
	return ret;
}
