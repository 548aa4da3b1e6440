/* Suspicion before death (as SWIM and memberlist do). Gossip ages have a long tail: a live
 * node's entry now and then grows older than any fixed limit, and presuming it dead then sends
 * no jobs there and tells the user so. So an entry past the limit only makes its node suspect:
 * the suspecting node pings it directly and asks MOS_GOSSIP_PROBE_RELAYS other nodes to ping
 * it too (a path through them avoids a lossy link of our own). An answer (an ack, with the
 * suspect's own entry at age 0) is news like any other: the entry becomes the youngest we hold,
 * enters our window and spreads; the age is the incarnation, so nothing older can undo it.
 * Only a suspect that answers no probe before the deadline is presumed dead.
 *
 * That death is then told straight to every node we believe alive (a death notice), since
 * each would otherwise wait for its own entry of the node to pass the limit and probe it in
 * turn: the last to know would be the one whose news was freshest. A node takes the word of
 * another only for a node it has had no news of for half the limit itself (a live node's
 * entry is that old rarely, and then the notice's sender must also have found every path to
 * it dead), and news revives it only if it left the node after the notice's sender had begun
 * to probe it in vain. A node that runs late (its steps half as far apart again as they
 * should be) neither tells nor takes deaths: starved of CPU, its probes fail and its news ages
 * for its own slowness, and its word would spread that to the whole cluster.
 *
 * Probes are datagrams of the gossip socket, authenticated and replay-checked as gossip is;
 * an ack echoes the requester's random nonce and answers one probe once. */
#include "gossip_priv.h"

#include "mos/log.h"

#include <errno.h>
#include <string.h>

static uint64_t nonce_new(struct mos_gossip *g)
{
    uint64_t n;

    do
        n = g->rng.next(g->rng.arg);
    while (n == 0);
    return n;
}

static void probe_queue(struct mos_gossip *g, uint16_t type, uint32_t to, uint32_t target,
                        uint32_t requester, uint64_t nonce)
{
    if (g->out_n == GOSSIP_PROBE_QUEUE) {
        g->stats.probes_dropped++;
        return;
    }
    g->out[(g->out_head + g->out_n) % GOSSIP_PROBE_QUEUE] = (struct gossip_probe_out){
        .type = type, .to = to, .target = target, .requester = requester, .nonce = nonce};
    g->out_n++;
    g->stats.probes++;
}

/* Up to MOS_GOSSIP_PROBE_RELAYS distinct nodes believed alive, other than us and the suspect. */
static void ask_relays(struct mos_gossip *g, uint32_t suspect, uint32_t now_ms, uint64_t nonce)
{
    uint32_t chosen[MOS_GOSSIP_PROBE_RELAYS], n = 0;

    for (int tries = 0; tries < 8 * MOS_GOSSIP_PROBE_RELAYS && n < MOS_GOSSIP_PROBE_RELAYS &&
                        g->n > 2;
         tries++) {
        uint32_t s = (uint32_t)(((g->rng.next(g->rng.arg) >> 32) * g->n) >> 32);
        int dup = 0;
        for (uint32_t i = 0; i < n; i++)
            dup |= chosen[i] == s;
        if (dup || s == g->self || s == suspect || g->peers[s].dead ||
            !mos_gossip_core_alive(g->core, now_ms, s))
            continue;
        chosen[n++] = s;
        probe_queue(g, MOS_GOSSIP_TYPE_PING_REQ, s, suspect, g->self, nonce);
    }
}

static void probe_start(struct mos_gossip *g, uint32_t slot, uint32_t now_ms)
{
    struct gossip_peer *p = &g->peers[slot];

    p->probing = 1;
    g->n_probing++;
    p->probe_nonce = nonce_new(g);
    p->probe_deadline = now_ms + g->probe_ms;
    p->probe_steps = 0;
    probe_queue(g, MOS_GOSSIP_TYPE_PING, slot, slot, g->self, p->probe_nonce);
    ask_relays(g, slot, now_ms, p->probe_nonce);
}

void gossip_probe_end(struct mos_gossip *g, struct gossip_peer *p)
{
    if (p->probing)
        g->n_probing--;
    p->probing = 0;
}

void gossip_suspect(struct mos_gossip *g, uint32_t slot, uint32_t now_ms)
{
    struct gossip_peer *p = &g->peers[slot];

    if (p->suspect || p->dead)
        return;
    p->suspect = 1;
    g->n_suspect++;
    g->stats.suspected++;
    mos_dbg("gossip", "node %s suspect (no news for %u steps): probing it",
            g->cfg->nodes[slot].name, g->dead_steps);
    if (g->n_probing < GOSSIP_PROBING_MAX)
        probe_start(g, slot, now_ms);
}

static int running_late(const struct mos_gossip *g)
{
    return g->step_period_ms > 1.5 * g->interval_ms;
}

/* Tell the others (mos_gossip_next_probe sends one datagram per node). */
static void notice_start(struct mos_gossip *g, uint32_t dead)
{
    if (running_late(g))
        return;
    if (g->n_notices == GOSSIP_NOTICES) {
        g->stats.probes_dropped++;
        return;
    }
    g->notices[g->n_notices++] = (struct gossip_notice){.dead = dead, .next = 0};
}

/* The next node to tell of a death: 1 with *o set, 0 when none is left. A node that came
 * back meanwhile is no longer told of. */
static int notice_next(struct mos_gossip *g, uint32_t now_ms, struct gossip_probe_out *o)
{
    while (g->n_notices > 0) {
        struct gossip_notice *nt = &g->notices[0];
        while (g->peers[nt->dead].dead && nt->next < g->n) {
            uint32_t s = nt->next++;
            if (s == g->self || s == nt->dead || g->peers[s].dead ||
                !mos_gossip_core_alive(g->core, now_ms, s))
                continue;
            *o = (struct gossip_probe_out){.type = MOS_GOSSIP_TYPE_DEAD, .to = s,
                                           .target = nt->dead, .requester = g->self};
            g->stats.notices_sent++;
            return 1;
        }
        g->n_notices--;
        memmove(&g->notices[0], &g->notices[1], g->n_notices * sizeof(*nt));
    }
    return 0;
}

/* A notice from `from` that x is dead: taken only if we have had no news of x for half the
 * limit ourselves. */
static void notice_received(struct mos_gossip *g, uint32_t x, uint32_t from, uint32_t now_ms)
{
    struct gossip_peer *p = &g->peers[x];
    uint32_t age = mos_gossip_core_age(g->core, now_ms, x);

    if (x == g->self || p->dead || (p->info.flags & MOS_GOSSIP_F_LEAVING))
        return; /* about us: our own gossip tells it otherwise */
    if (age == MOS_GOSSIP_AGE_UNKNOWN || age < g->dead_after_ms / 2 || running_late(g)) {
        g->stats.notices_ignored++;
        mos_dbg("gossip", "node %s says node %s is dead; news of it here is %u ms old%s: "
                "ignored", g->cfg->nodes[from].name, g->cfg->nodes[x].name, age,
                running_late(g) ? " and we run late" : "");
        return;
    }
    if (p->suspect)
        g->n_suspect--;
    gossip_probe_end(g, p);
    p->suspect = 0;
    p->probe_nonce = 0;
    p->dead = 1;
    p->dead_by_notice = 1;
    p->dead_mark_ms = now_ms - g->probe_ms;
    g->stats.presumed_dead++;
    g->stats.notices_taken++;
    mos_info("gossip", "node %s presumed dead (node %s found it so; no news here for %u ms)",
             g->cfg->nodes[x].name, g->cfg->nodes[from].name, age);
}

/* Suspects past the deadline are presumed dead; the others get another direct ping, so that
 * one lost datagram does not kill them. The deadline is in time and in our own steps: a node
 * starved of CPU (its steps late) gives the answers it could not read yet more time, rather
 * than presuming the others dead for its own slowness. */
void gossip_suspects_step(struct mos_gossip *g, uint32_t now_ms)
{
    for (uint32_t s = 0; s < g->n && g->n_suspect > 0; s++) {
        struct gossip_peer *p = &g->peers[s];
        if (!p->suspect || p->dead)
            continue;
        if (!p->probing) {
            if (g->n_probing < GOSSIP_PROBING_MAX)
                probe_start(g, s, now_ms);
            continue;
        }
        p->probe_steps++;
        if ((int32_t)(now_ms - p->probe_deadline) >= 0 &&
            p->probe_steps >= MOS_GOSSIP_PROBE_STEPS) {
            p->dead = 1;
            p->suspect = 0;
            p->probe_nonce = 0;
            g->n_suspect--;
            gossip_probe_end(g, p);
            g->stats.presumed_dead++;
            mos_info("gossip", "node %s presumed dead (no news for %u steps, no answer to "
                     "probes within %u ms)", g->cfg->nodes[s].name, g->dead_steps, g->probe_ms);
            notice_start(g, s);
            continue;
        }
        probe_queue(g, MOS_GOSSIP_TYPE_PING, s, s, g->self, p->probe_nonce);
    }
}

static void relay_add(struct mos_gossip *g, uint32_t requester, uint32_t target, uint64_t nonce,
                      uint32_t now_ms)
{
    struct gossip_relay *use = &g->relays[0];

    /* A free or expired slot, else the one closest to its deadline. */
    for (int i = 0; i < GOSSIP_RELAYS; i++) {
        struct gossip_relay *r = &g->relays[i];
        if (r->nonce == 0 || (int32_t)(now_ms - r->deadline) >= 0) {
            use = r;
            break;
        }
        if ((int32_t)(r->deadline - use->deadline) < 0)
            use = r;
    }
    *use = (struct gossip_relay){.requester = requester, .target = target, .nonce = nonce,
                                 .deadline = now_ms + g->probe_ms};
}

/* Forward an ack to the node that asked us to ping (once: the relay is then forgotten). */
static void relay_ack(struct mos_gossip *g, uint32_t requester, uint32_t target, uint64_t nonce,
                      uint32_t now_ms)
{
    for (int i = 0; i < GOSSIP_RELAYS; i++) {
        struct gossip_relay *r = &g->relays[i];
        if (r->nonce == nonce && r->requester == requester && r->target == target &&
            (int32_t)(now_ms - r->deadline) < 0) {
            r->nonce = 0;
            probe_queue(g, MOS_GOSSIP_TYPE_ACK, requester, target, requester, nonce);
        }
    }
}

static void ack_received(struct mos_gossip *g, uint32_t target, uint32_t requester,
                         uint64_t nonce, uint32_t now_ms)
{
    struct gossip_peer *p = &g->peers[target];

    if (requester != g->self) {
        relay_ack(g, requester, target, nonce, now_ms);
        return;
    }
    /* The entry it carried was merged already: a suspect is alive again from there on. */
    if (nonce != 0 && nonce == p->probe_nonce) {
        g->stats.probe_acks++;
        p->probe_nonce = 0;
    }
}

int gossip_probe_input(struct mos_gossip *g, uint32_t now_ms,
                       const struct mos_gossip_wire_header *h,
                       const struct mos_gossip_wire_probe *probe, enum mos_gossip_drop *why)
{
    uint32_t sender = gossip_slot_of(g, probe->sender);
    uint32_t target = gossip_slot_of(g, probe->target);
    uint32_t requester = gossip_slot_of(g, probe->requester);

    if (sender == MOS_GOSSIP_NO_SLOT || target == MOS_GOSSIP_NO_SLOT ||
        requester == MOS_GOSSIP_NO_SLOT || sender == g->self)
        return gossip_drop(g, MOS_GOSSIP_DROP_UNKNOWN, why);
    /* Who asks for a probe is who sends the ping or ping-req; a ping names us as its target;
     * a death notice comes from the node that found the death, about another. */
    if (((h->type == MOS_GOSSIP_TYPE_PING_REQ || h->type == MOS_GOSSIP_TYPE_DEAD) &&
         requester != sender) ||
        (h->type == MOS_GOSSIP_TYPE_DEAD && target == sender) ||
        (h->type == MOS_GOSSIP_TYPE_PING && target != g->self) ||
        (h->type != MOS_GOSSIP_TYPE_ACK && requester == g->self) ||
        (h->type == MOS_GOSSIP_TYPE_ACK && target == g->self))
        return gossip_drop(g, MOS_GOSSIP_DROP_FORMAT, why);
    if (gossip_replay_check(g, sender, h) != 0)
        return gossip_drop(g, MOS_GOSSIP_DROP_REPLAY, why);
    g->stats.accepted++;
    if (h->type == MOS_GOSSIP_TYPE_DEAD) {
        /* its entry is the dead node's as the sender last knew it: no news of anyone alive */
        notice_received(g, target, sender, now_ms);
        return 0;
    }
    gossip_merge(g, now_ms, 1);
    switch (h->type) {
    case MOS_GOSSIP_TYPE_PING:
        probe_queue(g, MOS_GOSSIP_TYPE_ACK, sender, g->self, requester, probe->nonce);
        break;
    case MOS_GOSSIP_TYPE_PING_REQ:
        if (target == g->self) {
            probe_queue(g, MOS_GOSSIP_TYPE_ACK, sender, g->self, requester, probe->nonce);
        } else {
            relay_add(g, requester, target, probe->nonce, now_ms);
            probe_queue(g, MOS_GOSSIP_TYPE_PING, target, target, requester, probe->nonce);
        }
        break;
    default:
        ack_received(g, target, requester, probe->nonce, now_ms);
        break;
    }
    return 0;
}

/* The entry a probe datagram carries: the sender's own, or in an ack or a death notice the
 * target's as we know it (our own at age 0 when we are the target). */
static void probe_entry(struct mos_gossip *g, const struct gossip_probe_out *o, uint32_t now_ms,
                        struct mos_gossip_wire_entry *e)
{
    uint32_t whose = o->type == MOS_GOSSIP_TYPE_ACK || o->type == MOS_GOSSIP_TYPE_DEAD
                         ? o->target
                         : g->self;
    uint32_t age = whose == g->self ? 0 : mos_gossip_core_age(g->core, now_ms, whose);

    e->info = g->peers[whose].info;
    memcpy(e->info.addr, g->peers[whose].addr, 16);
    e->age_ms = age > MOS_GOSSIP_MAX_AGE_MS ? MOS_GOSSIP_MAX_AGE_MS : age;
}

int mos_gossip_next_probe(struct mos_gossip *g, uint32_t now_ms, uint8_t *buf, size_t cap,
                          uint32_t *to)
{
    struct mos_gossip_wire_header h = {.n_entries = 1, .boot_id = g->boot_id};
    struct mos_gossip_wire_entry e;
    struct mos_gossip_wire_probe probe;
    struct gossip_probe_out o;

    if (g->out_n > 0) {
        o = g->out[g->out_head];
        g->out_head = (g->out_head + 1) % GOSSIP_PROBE_QUEUE;
        g->out_n--;
    } else if (!notice_next(g, now_ms, &o)) {
        return 0;
    }
    probe_entry(g, &o, now_ms, &e);
    memcpy(probe.sender, g->peers[g->self].addr, 16);
    memcpy(probe.target, g->peers[o.target].addr, 16);
    memcpy(probe.requester, g->peers[o.requester].addr, 16);
    probe.nonce = o.nonce;
    h.seq = ++g->seq;
    *to = o.to;
    return mos_gossip_wire_encode_probe(g->key, o.type, &h, &e, &probe, buf, cap);
}
