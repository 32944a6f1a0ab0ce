/* dashboard: `kubectl slipway dashboard`, a read-only status page of Remotes
 * and PipelineRuns served on loopback. It reads the API with the user's own
 * kubeconfig (kubectl proxy's model): one watch per resource, relayed to the
 * browser as Server-Sent Events; the page's files are embedded in the binary.
 * See docs/dashboard.md. */
#ifndef SLIP_PLUGIN_DASHBOARD_H
#define SLIP_PLUGIN_DASHBOARD_H

#include <stdbool.h>

#include "cli.h"

/* The text `kubectl slipway dashboard --help` prints. */
extern const char dashboard_help[];

/* Runs `kubectl slipway dashboard`: CLI holds the global flags (-n,
 * --kubeconfig, --context), ARGV[0..ARGC-1] the words after "dashboard"
 * (-A, --all-namespaces, --address ADDR, --port N, --no-open). Serves the
 * page until SIGINT or SIGTERM, printing its URL on stdout once it listens
 * and each watch's failures (forbidden, resource not installed) on stderr.
 * Returns the exit status: 0 stopped by a signal; 1 the kubeconfig cannot be
 * loaded, the address is not an IP literal or cannot be bound (message on
 * stderr); 2 a usage error (message and a "Try" line on stderr). */
int dashboard_main(const struct cli *cli, int argc, char **argv);

/* Whether HOST (a request's Host header, NULL when absent) names the server
 * listening on ADDRESS (an IP literal, as given to --address) and PORT:
 * "ADDRESS:PORT" ("[ADDRESS]:PORT" for IPv6), or "localhost:PORT" when
 * ADDRESS is a loopback address. Any other name could be a DNS name an
 * attacker points at the loopback address (DNS rebinding), so it is refused. */
bool dashboard_host_is_allowed(const char *host, const char *address, int port);

#endif
