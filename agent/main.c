/*
 * hms-agent: parses the settings, starts the agent on one libev loop, tells
 * systemd it is ready (NOTIFY_SOCKET), and on SIGTERM or SIGINT leaves the
 * cluster gracefully before exiting. A second signal exits at once.
 *
 * Exit codes: 0 after a graceful stop, 1 when the agent could not start
 * (busy port, unusable data dir, no valid certificate, ...), 2 for bad
 * flags or configuration.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "agent/agent.h"

#define LEAVE_MAX_MS 1500

/* sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET ('@' means
 * the abstract namespace). */
static void notify_systemd(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof(sa.sun_path))
        return;
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, sl) < 0)
        HMS_WARN("agent: cannot notify systemd at '%s': %s", path, strerror(errno));
    close(fd);
}

static hms_agent *g_agent;
static int g_signals;

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    if (++g_signals > 1) {
        HMS_WARN("agent: second signal: exiting without waiting for the leave");
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    HMS_INFO("agent: %s received: leaving", strsignal(w->signum));
    notify_systemd("STOPPING=1");
    hms_agent_shutdown(g_agent, LEAVE_MAX_MS);
}

int main(int argc, char **argv)
{
    static hms_config cfg;
    char err[1024] = "";
    hms_config_defaults(&cfg);
    int r = hms_config_parse(&cfg, argc, argv, err, sizeof(err));
    if (r == 1)
        return 0;
    if (r < 0) {
        fprintf(stderr, "error: %s\n", err);
        return 2;
    }
    if (cfg.http_helper[0]) {
        /* A program named on purpose must be there; the catalog's prober
         * reads the path from the environment (agent/catalog/probe.h). */
        if (access(cfg.http_helper, X_OK) < 0) {
            fprintf(stderr, "error: cannot run --http-helper '%s': %s\n", cfg.http_helper,
                    strerror(errno));
            return 2;
        }
        setenv("HMS_HTTP_HELPER", cfg.http_helper, 1);
    }
    hms_log_setup(cfg.log_level, cfg.log_format);
    signal(SIGPIPE, SIG_IGN);

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) {
        fprintf(stderr, "error: cannot create the event loop\n");
        return 1;
    }
    r = hms_agent_new(loop, &cfg, &g_agent, err, sizeof(err));
    if (r == 0) {
        r = hms_agent_start(g_agent, err, sizeof(err));
        if (r < 0) {
            hms_agent_delete(g_agent);
            g_agent = NULL;
        }
    }
    if (r < 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    ev_signal sig_term, sig_int;
    ev_signal_init(&sig_term, signal_cb, SIGTERM);
    ev_signal_init(&sig_int, signal_cb, SIGINT);
    ev_signal_start(loop, &sig_term);
    ev_signal_start(loop, &sig_int);
    HMS_INFO("agent %s: ready, socket '%s'", cfg.node, cfg.socket_path);
    notify_systemd("READY=1");

    ev_run(loop, 0);

    ev_signal_stop(loop, &sig_term);
    ev_signal_stop(loop, &sig_int);
    hms_agent_delete(g_agent);
    HMS_INFO("agent %s: stopped", cfg.node);
    return 0;
}
