/*
 * hmsctl: the command-line face of libclient. hmsctl.c parses the global
 * options (--socket PATH, $HMS_SOCKET, --json) and dispatches to one table
 * of subcommands; each subsystem contributes its commands from its own file
 * (hmsctl_ca.c, hmsctl_catalog.c, hmsctl_audit.c, ...).
 *
 * Exit codes (docs/api.md): 0 ok, 1 the operation failed (the agent said
 * no, or a check failed), 2 usage error, 3 the agent is not reachable.
 */
#ifndef HMS_HMSCTL_H
#define HMS_HMSCTL_H

#include <stdbool.h>

#define HMSCTL_OK 0
#define HMSCTL_FAIL 1
#define HMSCTL_USAGE 2
#define HMSCTL_UNREACHABLE 3

typedef struct hmsctl_globals {
    const char *socket_path; /* resolved: --socket, $HMS_SOCKET, or the default */
    bool json;               /* --json anywhere on the command line */
} hmsctl_globals;

/* argv[0] is the subcommand name; global options are already removed. */
typedef int (*hmsctl_fn)(int argc, char **argv, const hmsctl_globals *g);

typedef struct hmsctl_cmd {
    const char *name;
    hmsctl_fn fn;
    const char *usage; /* one line: "members [--status S]" */
    const char *help;  /* one line of what it does */
} hmsctl_cmd;

/* Tables contributed by each file; each ends with a {NULL} entry. */
extern const hmsctl_cmd hmsctl_core_cmds[];    /* hmsctl.c: members, member, join, leave, stats, watch */
extern const hmsctl_cmd hmsctl_ca_cmds[];      /* hmsctl_ca.c: keygen, ca, cert, revoke */
extern const hmsctl_cmd hmsctl_catalog_cmds[]; /* hmsctl_catalog.c: register, deregister, lookup, ... */
extern const hmsctl_cmd hmsctl_audit_cmds[];   /* hmsctl_audit.c: audit */

/* Prints "error: <msg>" to stderr; returns code. */
int hmsctl_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
