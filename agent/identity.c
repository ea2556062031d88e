/*
 * The agent's identity (see identity.h), on top of the trust store: loads
 * the node key, the trusted CAs and this node's certificate, refuses to
 * start without a valid certificate for our own name and key, and wires the
 * trust store into the three peer gates and into revocations:
 *   - a revocation record arrives by gossip (HMS_USER_REVOCATION) or by the
 *     admin op "revoke"; a new one is stored, applied, and gossiped on;
 *   - every key it expels is forgotten by the sealer, expelled from the
 *     member list and cut off from the channel pool.
 */
#include "agent/identity.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "agent/net/seal.h"
#include "agent/trust/trust.h"

static uint64_t unix_now(void)
{
    return (uint64_t)time(NULL);
}

static void on_revoked(void *ctx, const uint8_t ed_pk[32])
{
    hms_agent *a = ctx;
    char hex[17];
    sodium_bin2hex(hex, sizeof(hex), ed_pk, 8);
    HMS_WARN("trust: key %s is revoked: expelling it", hex);
    if (a->sealer)
        hms_sealer_forget(a->sealer, ed_pk);
    if (a->chan)
        hms_chan_close_peer(a->chan, ed_pk);
    /* Not sent from here: add_revocation queues the record first, so that
     * the death and the record leave in the same packets. A death that
     * arrived alone would be refuted by the revoked node before the record
     * reached the member that listed it dead. */
    if (a->swim)
        swim_expel(a->swim, hms_agent_now(a), ed_pk);
}

/* Stores and applies a record; gossips it on when it was new to us. */
static int add_revocation(hms_agent *a, const uint8_t *rec, size_t len, bool *is_new)
{
    int r = hms_trust_add_revocation(a->trust, rec, len, is_new);
    if (r < 0)
        return r;
    if (*is_new) {
        HMS_INFO("trust: revocation record accepted (%zu known)",
                 hms_trust_revocation_count(a->trust));
        if (a->swim) {
            hms_agent_broadcast(a, HMS_USER_REVOCATION, rec, len);
            hms_agent_swim_flush(a);
        }
        if (hms_trust_self_revoked(a->trust))
            HMS_ERROR("trust: this node's own certificate is revoked; peers will refuse it");
    }
    return 0;
}

static void revocation_gossip(hms_agent *a, const swim_member_info *from, const uint8_t *data,
                              size_t len, void *ctx)
{
    bool is_new = false;
    int r = add_revocation(a, data, len, &is_new);
    if (r < 0)
        HMS_WARN("trust: revocation from %s refused: %s", from->name, hms_trust_strerror(r));
}

static void member_event(hms_agent *a, swim_event ev, const swim_member_info *m, void *ctx)
{
    if (ev == SWIM_EV_REAPED && a->trust && sodium_memcmp(m->key, a->ed_pk, 32) != 0)
        hms_trust_forget(a->trust, m->key);
}

/* {op: "revoke", record: bin} (admin): a CA-signed revocation record. */
static int op_revoke(hms_agent *a, const hms_api_req *req, msgpack_packer *res, hms_api_error *err)
{
    const msgpack_object *o = hms_api_arg(req, "record");
    if (!o || o->type != MSGPACK_OBJECT_BIN)
        return hms_api_fail(err, HMS_API_E_BAD_REQUEST, "revoke needs 'record' (bytes)");
    bool is_new = false;
    int r = add_revocation(a, (const uint8_t *)o->via.bin.ptr, o->via.bin.size, &is_new);
    hms_agent_audit_admin(a, req, "admin.revoke",
                          json_pack("{s:s, s:b}", "result",
                                    r == 0 ? "accepted" : hms_trust_strerror(r), "new", is_new));
    if (r < 0)
        return hms_api_fail(err, HMS_API_E_FAILED, "revocation refused: %s", hms_trust_strerror(r));
    msgpack_pack_map(res, 2);
    hms_api_pack_kv_bool(res, "new", is_new);
    hms_api_pack_kv_u64(res, "revocations", hms_trust_revocation_count(a->trust));
    return 0;
}

static const hms_api_op identity_ops[] = {
    {"revoke", op_revoke, HMS_API_ADMIN},
    {NULL, NULL, 0},
};

int hms_identity_start(hms_agent *a, char *err, size_t errlen)
{
    const hms_config *c = a->cfg;
    const char *cas[HMS_CONFIG_CA_MAX];
    for (size_t i = 0; i < c->ca_count; i++)
        cas[i] = c->ca_files[i];
    hms_trust_config tc = {
        .data_dir = a->data_dir,
        .node_key_file = c->node_key_file[0] ? c->node_key_file : NULL,
        .cert_file = c->cert_file[0] ? c->cert_file : NULL,
        .ca_files = c->ca_count ? cas : NULL,
        .ca_count = c->ca_count,
        .node_name = a->name,
        .on_revoked = on_revoked,
        .on_revoked_ctx = a,
    };
    int r = hms_trust_new(&tc, unix_now(), &a->trust, err, errlen);
    if (r < 0)
        return r;
    size_t cert_len = 0;
    const uint8_t *cert = hms_trust_own_cert(a->trust, &cert_len);
    if (!cert || cert_len == 0 || cert_len > sizeof(a->cert)) {
        snprintf(err, errlen,
                 "no certificate for node '%s': give --cert FILE (and --ca FILE, "
                 "--node-key FILE), for example from 'hmsctl ca bootstrap'",
                 a->name);
        hms_trust_delete(a->trust);
        a->trust = NULL;
        return -ENOENT;
    }
    if (hms_trust_ca_count(a->trust) == 0) {
        snprintf(err, errlen,
                 "no trusted CA: give --ca FILE (the cluster authority's public "
                 "key)");
        hms_trust_delete(a->trust);
        a->trust = NULL;
        return -ENOENT;
    }
    memcpy(a->cert, cert, cert_len);
    a->cert_len = cert_len;
    memcpy(a->ed_pk, hms_trust_node_pk(a->trust), 32);
    memcpy(a->ed_sk, hms_trust_node_sk(a->trust), 64);
    hms_trust_node_x25519(a->trust, a->x_sk, a->x_pk);
    if ((r = hms_agent_on_user(a, HMS_USER_REVOCATION, revocation_gossip, NULL)) < 0 ||
        (r = hms_agent_on_member(a, member_event, NULL)) < 0 ||
        (r = hms_api_register(a->api, identity_ops, NULL)) < 0) {
        snprintf(err, errlen, "cannot register trust handlers: %s", strerror(-r));
        hms_identity_stop(a);
        return r;
    }
    char hex[17];
    sodium_bin2hex(hex, sizeof(hex), a->ed_pk, 8);
    HMS_INFO("trust: node %s, key %s, %zu trusted CA(s), %zu revocation(s)", a->name, hex,
             hms_trust_ca_count(a->trust), hms_trust_revocation_count(a->trust));
    return 0;
}

void hms_identity_stop(hms_agent *a)
{
    if (a->trust)
        hms_trust_delete(a->trust);
    a->trust = NULL;
    sodium_memzero(a->ed_sk, sizeof(a->ed_sk));
    sodium_memzero(a->x_sk, sizeof(a->x_sk));
}

int hms_identity_verify_peer(hms_agent *a, const uint8_t *cert, size_t len, hms_peer *out)
{
    return hms_trust_chan_verify(a->trust, cert, len, out);
}

int hms_identity_admit(hms_agent *a, const swim_member_info *m)
{
    return hms_trust_swim_admit(a->trust, m);
}

int hms_identity_seal_check(hms_agent *a, const uint8_t ed_pk[32])
{
    return hms_trust_peer_check(a->trust, ed_pk);
}
