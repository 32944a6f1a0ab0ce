/* pause: the sandbox ("pause") container of the test node's Pods. It holds
 * the Pod's namespaces open, reaps the zombies that end up in it (it is PID
 * 1 of a Pod sharing its PID namespace) and exits on TERM, INT or HUP, which
 * is what the kubelet and containerd expect of the image CRI's
 * sandbox_image names. Built static by tests/env/env.sh, FROM scratch. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	sigset_t set;
	int sig;

	if (argc > 1 && (argv[1][0] == '-')) {
		fprintf(stderr, "usage: pause (holds a Pod's namespaces until TERM, INT or HUP)\n");
		return argv[1][1] == 'h' ? 0 : 2;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			return 1;
		if (sig != SIGCHLD)
			return 0;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}
