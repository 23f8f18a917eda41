/* simnet: the deterministic simulator's engine. Many kith nodes in one
 * process, on virtual time, over a virtual network with per-link latency,
 * link resets (what loss, duplication and reordering of packets become for
 * a TCP stream: a broken connection), partitions, and node crashes that
 * lose what was not yet durable. Everything follows from one seed: the
 * same seed and scenario give the same run, byte for byte.
 *
 * Used by tools/sim (scenarios from the command line) and by unit tests. */
#ifndef KITH_SIMNET_H
#define KITH_SIMNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kith/node.h"

typedef struct sim_cfg {
    uint64_t seed;
    int nodes;
    uint32_t lat_min_ms, lat_max_ms; /* one-way latency per link, drawn per link */
    uint32_t reset_permille; /* chance that a delivered chunk breaks its link */
    size_t degree; /* node config: links per room (0: node default) */
    bool ring; /* nodes never dial members; node i keeps a link to node i+1 */
    bool quiet;
} sim_cfg;

typedef struct sim sim;

sim *sim_new(const sim_cfg *cfg);
void sim_free(sim *s);
int sim_count(const sim *s);
uint64_t sim_now(const sim *s);
kith_node *sim_node(sim *s, int i);
bool sim_up(const sim *s, int i);

/* Advance virtual time by ms, handling every event on the way. */
void sim_run(sim *s, uint64_t ms);
/* Node i's partition group; links across groups break and can't form. */
void sim_set_group(sim *s, int i, int group);
void sim_set_reset(sim *s, uint32_t permille);
/* Crash: no flush, what was not synced is lost. Restart: same identity and store. */
void sim_crash(sim *s, int i);
void sim_stop(sim *s, int i); /* clean: flush first */
int sim_restart(sim *s, int i);

/* Node 0 creates a room; nodes 1..members-1 join it by invite over the
 * simulated network (in waves, as sim_rooms). 0 when all joined. */
int sim_make_room(sim *s, int members, uint8_t room[KITH_ROOM_ID_LEN]);

/* Rooms of given nodes: members[0] creates each; the others join by
 * invites from random members already in, up to `batch` at a time per
 * room, every room filling side by side. The room ids go to ids. */
typedef struct sim_room_plan {
    const int *members;
    int count;
} sim_room_plan;
int sim_rooms(
    sim *s, const sim_room_plan *plan, int nplan, int batch, uint8_t (*ids)[KITH_ROOM_ID_LEN]);
/* Send a text message from node i; it counts as sent once shown as sent. */
int sim_send(sim *s, int i, const uint8_t room[KITH_ROOM_ID_LEN], const char *text);

/* Invariants over a room's live members: each holds every message that
 * any member was shown as sent (convergence); no message was delivered
 * twice to a client; per author, delivery followed sequence order (causal
 * order); every text a client was shown is exactly what its author sent
 * under that sequence number (nothing altered or made up was accepted).
 * Returns the number of violations and describes the first in err. */
int sim_check(sim *s, const uint8_t room[KITH_ROOM_ID_LEN], char *err, size_t errlen);
/* sim_check over every room made by sim_make_room or sim_rooms. */
int sim_check_all(sim *s, char *err, size_t errlen);

/* Digest of the run so far: every event handled (time, kind, node or
 * link, and the bytes a link carried), as 16 hex digits. Equal for equal
 * seeds and scenarios; tools/sim prints it so a rerun can be compared. */
void sim_digest(const sim *s, char out[17]);

typedef struct sim_totals {
    uint64_t sent, delivered, msgs_in, dups_in, bytes;
} sim_totals;
void sim_totals_get(sim *s, sim_totals *out);

#endif
