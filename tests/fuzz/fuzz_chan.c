/*
 * Fuzz target for the RPC message decoder of the Noise channels: the input
 * is one decrypted message (chan.h). Whatever it holds, the decoder either
 * refuses it or returns a body inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/net/chan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hms_chan_msg m;
    if (hms_chan_msg_decode(data, size, &m) == 0) {
        if (m.body < data || m.body + m.body_len != data + size)
            abort();
        if (m.type == 1 && (m.method[0] == '\0' || strlen(m.method) > HMS_CHAN_METHOD_MAX))
            abort();
        if (m.type == 2 && m.status > 0)
            abort();
    }
    return 0;
}
