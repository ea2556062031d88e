/*
 * hms-agent settings: defaults, then a JSON config file (--config), then the
 * command-line flags, each overriding the one before. Every error names the
 * flag or key and the bad value (docs/operations.md lists all settings).
 */
#ifndef HMS_AGENT_CONFIG_H
#define HMS_AGENT_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agent/log.h"
#include "agent/swim/swim.h"
#include "proto/addr.h"

#define HMS_CONFIG_JOIN_MAX 32
#define HMS_CONFIG_CA_MAX 8
#define HMS_DEFAULT_SOCKET "/run/hms/agent.sock"
#define HMS_DEFAULT_DATA_DIR "/var/lib/hms"

/* Audit log settings (docs/audit.md section 7): defaults, then the
 * HMS_AUDIT_* environment, then the config file, then flags. */
typedef struct hms_config_audit {
    bool durable;          /* socket appends wait for fsync by default */
    uint32_t seal_entries; /* seal after this many entries */
    uint32_t seal_ms;      /* seal an open segment this old */
    uint32_t replicas;     /* copies of each own segment held by others */
    uint32_t commit_us;    /* extra group-commit window before each fsync */
    uint64_t retain_s;     /* delete replicated own segments older (0: never) */
    uint64_t retain_bytes; /* ... or while the own log is larger (0: never) */
} hms_config_audit;

typedef struct hms_config {
    char node[SWIM_NAME_MAX + 1]; /* default: the host name */
    hms_addr bind;                /* UDP and TCP; default 0.0.0.0:7950 */
    hms_addr advertise;           /* family 0: derived from bind */
    hms_addr join[HMS_CONFIG_JOIN_MAX];
    size_t join_count;
    char data_dir[PATH_MAX];
    char socket_path[108]; /* sun_path */
    char profile_name[16]; /* lan, wan, local */
    swim_profile profile;
    hms_log_level log_level;
    hms_log_format log_format;
    char ca_files[HMS_CONFIG_CA_MAX][PATH_MAX];
    size_t ca_count;
    char cert_file[PATH_MAX];     /* default: <data_dir>/node.cert */
    char node_key_file[PATH_MAX]; /* default: <data_dir>/node.key */
    char admin_group[64];         /* "" for none */
    long admin_gid;               /* resolved; -1 for none */
    char config_file[PATH_MAX];
    char services_dir[PATH_MAX]; /* service definition files; "" for none */
    char http_helper[PATH_MAX];  /* "" for hms-http next to hms-agent */
    hms_config_audit audit;
} hms_config;

/* Fills *c with the defaults. */
void hms_config_defaults(hms_config *c);

/* Parses argv (a --config file is read first, flags override it). Returns
 * 0, 1 when --help or --version was printed (exit 0), or -EINVAL with a
 * message in err. */
int hms_config_parse(hms_config *c, int argc, char **argv, char *err, size_t errlen);

/* Reads settings from a JSON object file; same keys as the long flags
 * ("node", "bind", "join": [..], "ca": [..], ...). Returns 0 or -EINVAL
 * with a message in err. */
int hms_config_load_file(hms_config *c, const char *path, char *err, size_t errlen);

/* Prints the flag summary to f. */
void hms_config_usage(FILE *f);

#endif
