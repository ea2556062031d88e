/*
 * Fuzz target: whole UDP packets into a membership core (swim_recv), from a
 * sender chosen by the first input byte (a known member, an unknown key, or
 * our own key), followed by a timer run. Whatever arrives, the core must not
 * crash, leak or break its own invariants (checked through its queries).
 *
 * The seed corpus in corpus/fuzz_gossip_core/ is the packet corpus of
 * fuzz_gossip with a sender byte in front (see fuzz_gossip.c to regenerate
 * the packets; prefix each with one byte 0, 1 or 2).
 */
#include <stdlib.h>
#include <string.h>

#include "agent/swim/swim.h"

static swim_t *core;
static hms_time now = 1000;

static void drain(void)
{
    swim_output o;
    while (swim_poll(core, &o))
        if (o.kind == SWIM_OUT_UDP && (o.len == 0 || o.len > 1350))
            abort(); /* every packet stays under the MTU */
}

static void setup(void)
{
    swim_config c;
    memset(&c, 0, sizeof(c));
    c.name = "self";
    memset(c.key, 0x01, SWIM_KEY_LEN);
    hms_addr_parse("10.0.0.1:7950", 7950, &c.addr);
    c.incarnation = 5;
    c.seed = 7;
    swim_profile_by_name("lan", &c.profile);
    core = swim_new(&c, now);
    if (!core)
        abort();
    drain();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!core)
        setup();
    if (size < 1)
        return 0;
    uint8_t key[SWIM_KEY_LEN];
    memset(key, data[0] % 3 == 0 ? 0x11 : data[0] % 3 == 1 ? 0x77 : 0x01, SWIM_KEY_LEN);
    hms_addr from;
    hms_addr_parse("10.0.0.5:7950", 7950, &from);
    now += 50000;
    swim_recv(core, now, &from, key, data + 1, size - 1);
    drain();
    hms_time next = swim_tick(core, now);
    if (next <= now)
        abort();
    drain();
    swim_stats st;
    swim_get_stats(core, &st);
    if (st.members_alive + st.members_suspect + st.members_dead + st.members_left !=
        swim_member_count(core))
        abort();
    const swim_member_info *me = swim_self(core);
    if (!me || strcmp(me->name, "self") != 0 || me->status != SWIM_ALIVE)
        abort();
    if (swim_member_count(core) > 4096) {
        swim_delete(core);
        core = NULL;
    }
    return 0;
}
