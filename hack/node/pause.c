/* The pod sandbox's process, as Kubernetes' build/pause/linux/pause.c: it holds the pod's namespaces,
 * waits for a signal, and reaps the zombies of processes that the pod's containers orphan (it is PID 1
 * of the pod when the pod shares its process namespace). Built static by hack/node.sh into a FROM
 * scratch image, since no registry is reachable here to pull registry.k8s.io/pause from. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signo) {
  printf("pause: shutting down, got signal %d\n", signo);
  exit(0);
}

static void reap(int signo) {
  (void)signo;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    printf("pause.c (semantik hack/node)\n");
    return 0;
  }
  if (getpid() != 1) {
    fprintf(stderr, "pause: warning: not PID 1\n");
  }
  struct sigaction stopping = {.sa_handler = stop};
  struct sigaction reaping = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &stopping, NULL) < 0 || sigaction(SIGTERM, &stopping, NULL) < 0 ||
      sigaction(SIGCHLD, &reaping, NULL) < 0) {
    return 1;
  }
  for (;;) {
    pause();
  }
}
