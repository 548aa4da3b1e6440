/* mosd's figures in the Prometheus text format (version 0.0.4), on GET /metrics.
 *
 * libevent's evhttp serves them on the loop mosd already runs (no thread, no other library).
 * Off unless metrics_listen is set. Anyone who reaches the address may read them: they are
 * node-level figures only (no user names, commands or pids), and the address is the site's
 * choice (loopback or a management network). Nothing in a request is used but its method and
 * path. */
#include "mosd.h"

#include "mos/clock.h"
#include "mos/gossip.h"
#include "mos/log.h"
#include "mos/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the move-duration buckets, in seconds (+Inf is the count itself). */
static const double move_buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
_Static_assert(sizeof(move_buckets) / sizeof(move_buckets[0]) ==
                   sizeof(((struct mosd *)0)->metrics.out_seconds_le) / sizeof(uint64_t),
               "one counter per bucket");
#define N_BUCKETS (sizeof(move_buckets) / sizeof(move_buckets[0]))

int mosd_metrics_parse_listen(const char *text, char *addr, size_t addr_len, int *port,
                              char *why, size_t len)
{
    const char *colon = strrchr(text, ':');
    const char *host = text;
    size_t host_len = colon ? (size_t)(colon - text) : 0;
    unsigned char probe[16];
    char *end;

    if (host_len >= 2 && text[0] == '[' && text[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    long p = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || host_len == 0 || host_len >= addr_len || *end || colon[1] == '\0' || p < 1 ||
        p > 65535) {
        snprintf(why, len, "metrics_listen '%s' is not ADDR:PORT (e.g. 127.0.0.1:9771)", text);
        return MOS_E_CONFIG;
    }
    memcpy(addr, host, host_len);
    addr[host_len] = '\0';
    if (inet_pton(AF_INET, addr, probe) != 1 && inet_pton(AF_INET6, addr, probe) != 1) {
        snprintf(why, len, "metrics_listen '%s': '%s' is not an IP address", text, addr);
        return MOS_E_CONFIG;
    }
    *port = (int)p;
    return 0;
}

void mosd_metrics_move_out(struct mosd *d, int ok, double seconds, uint64_t bytes)
{
    struct mosd_metrics *m = &d->metrics;

    if (!ok) {
        m->moves_out_failed++;
        return;
    }
    m->moves_out++;
    m->out_bytes += bytes;
    m->out_seconds_sum += seconds;
    for (size_t i = 0; i < N_BUCKETS; i++)
        if (seconds <= move_buckets[i])
            m->out_seconds_le[i]++;
}

/* Each count of a report must not be below the last one's (a supervisor's counts only grow). */
static int calls_grew(const struct mos_call_stats *was, const struct mos_call_stats *now)
{
    const uint64_t *a = (const uint64_t *)was, *b = (const uint64_t *)now;

    for (size_t i = 0; i < sizeof(*now) / sizeof(uint64_t); i++)
        if (b[i] < a[i])
            return 0;
    return 1;
}

int mosd_metrics_calls(struct mosd *d, struct mosd_job *job, const struct mos_call_stats *now)
{
    uint64_t *total = (uint64_t *)&d->metrics.calls;
    const uint64_t *was = (const uint64_t *)&job->calls, *is = (const uint64_t *)now;

    _Static_assert(sizeof(struct mos_call_stats) % sizeof(uint64_t) == 0, "only counters");
    if (!calls_grew(&job->calls, now))
        return MOS_E_PROTO;
    for (size_t i = 0; i < sizeof(*now) / sizeof(uint64_t); i++)
        total[i] += is[i] - was[i];
    job->calls = *now;
    return 0;
}

/* One metric's HELP and TYPE lines. */
static void head(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Node names come from the root-owned config, but a label value must never break the format. */
static void label_value(struct evbuffer *b, const char *text)
{
    for (; *text; text++) {
        if (*text == '\\' || *text == '"')
            evbuffer_add_printf(b, "\\%c", *text);
        else if (*text == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, text, 1);
    }
}

static void node_figures(const struct mosd *d, struct evbuffer *b)
{
    size_t own = 0, away = 0;
    struct mos_gossip_node self = {0};

    for (size_t i = 0; i < d->n_jobs; i++)
        if (!d->jobs[i].supervisor) {
            own++;
            away += strcmp(d->jobs[i].where, d->cfg.nodes[d->self].name) != 0;
        }
    if (d->gossip)
        mos_gossip_node_get(d->gossip, mos_gossip_now_ms(), mos_gossip_self(d->gossip), &self);
    head(b, "mos_load", "gauge", "runnable mos processes here per CPU this node offers");
    evbuffer_add_printf(b, "mos_load %.3f\n", mosd_local_load(d));
    head(b, "mos_cpus", "gauge", "CPUs this node offers (its cgroup quota, else the machine's)");
    evbuffer_add_printf(b, "mos_cpus %.2f\n", mosd_local_cpus(d));
    if (d->gossip) { /* a one-node cluster gossips nothing, so it has no entry to read */
        head(b, "mos_memory_free_bytes", "gauge", "free memory, as this node gossips it");
        evbuffer_add_printf(b, "mos_memory_free_bytes %llu\n",
                            (unsigned long long)self.info.mem_free_mib << 20);
        head(b, "mos_memory_bytes", "gauge", "total memory, as this node gossips it");
        evbuffer_add_printf(b, "mos_memory_bytes %llu\n",
                            (unsigned long long)self.info.mem_total_mib << 20);
    }
    head(b, "mos_guests", "gauge", "jobs of other homes running here");
    evbuffer_add_printf(b, "mos_guests %zu\n", mosd_jobs_guests(d));
    head(b, "mos_jobs", "gauge", "jobs started here, by where they run");
    evbuffer_add_printf(b, "mos_jobs{where=\"home\"} %zu\nmos_jobs{where=\"away\"} %zu\n",
                        own - away, away);
    head(b, "mos_blocked", "gauge", "1 when the node refuses new guests (mosctl block)");
    evbuffer_add_printf(b, "mos_blocked %d\n", d->blocked);
}

static void move_figures(const struct mosd *d, struct evbuffer *b)
{
    const struct mosd_metrics *m = &d->metrics;

    head(b, "mos_migrations_total", "counter",
         "moves of jobs: out = asked by this node for its own jobs, wherever they ran; in = "
         "guests arriving here and own jobs coming home natively");
    evbuffer_add_printf(b,
                        "mos_migrations_total{direction=\"out\",result=\"ok\"} %llu\n"
                        "mos_migrations_total{direction=\"out\",result=\"failed\"} %llu\n"
                        "mos_migrations_total{direction=\"in\",result=\"ok\"} %llu\n",
                        (unsigned long long)m->moves_out,
                        (unsigned long long)m->moves_out_failed,
                        (unsigned long long)m->moves_in);
    head(b, "mos_migration_bytes_total", "counter", "image bytes this node streamed out");
    evbuffer_add_printf(b, "mos_migration_bytes_total %llu\n", (unsigned long long)m->out_bytes);
    head(b, "mos_migration_duration_seconds", "histogram",
         "successful moves out, from the request to the job running on its new node");
    for (size_t i = 0; i < N_BUCKETS; i++)
        evbuffer_add_printf(b, "mos_migration_duration_seconds_bucket{le=\"%g\"} %llu\n",
                            move_buckets[i], (unsigned long long)m->out_seconds_le[i]);
    evbuffer_add_printf(b,
                        "mos_migration_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                        "mos_migration_duration_seconds_sum %.6f\n"
                        "mos_migration_duration_seconds_count %llu\n",
                        (unsigned long long)m->moves_out, m->out_seconds_sum,
                        (unsigned long long)m->moves_out);
    head(b, "mos_balancer_moves_total", "counter", "moves the load balancer decided here");
    evbuffer_add_printf(b, "mos_balancer_moves_total %llu\n",
                        (unsigned long long)m->balance_moves);
}

static const char *const call_kind_names[MOS_CALL_KINDS] = {"forward", "virtual", "home"};

static void call_figures(const struct mosd *d, struct evbuffer *b)
{
    const struct mos_call_stats *c = &d->metrics.calls;
    uint64_t below = 0;

    head(b, "mos_forwarded_calls_total", "counter",
         "system calls of guests served here, by class: forward = executed at home by the "
         "deputy, virtual = answered here, home = needing the home node");
    for (int k = 0; k < MOS_CALL_KINDS; k++)
        evbuffer_add_printf(b, "mos_forwarded_calls_total{class=\"%s\"} %llu\n",
                            call_kind_names[k], (unsigned long long)c->calls[k]);
    head(b, "mos_forwarded_call_duration_seconds", "histogram",
         "forwarded calls of guests here, from the trapped call to its answer");
    for (int i = 0; i < MOS_CALL_LATENCY_BOUNDS; i++) {
        below += c->latency[i];
        evbuffer_add_printf(b, "mos_forwarded_call_duration_seconds_bucket{le=\"%g\"} %llu\n",
                            mos_call_latency_le_ns[i] / 1e9, (unsigned long long)below);
    }
    evbuffer_add_printf(b,
                        "mos_forwarded_call_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                        "mos_forwarded_call_duration_seconds_sum %.9f\n"
                        "mos_forwarded_call_duration_seconds_count %llu\n",
                        (unsigned long long)(below + c->latency[MOS_CALL_LATENCY_BOUNDS]),
                        c->latency_sum_ns / 1e9,
                        (unsigned long long)c->calls[MOS_CALLS_FORWARD]);
    head(b, "mos_forwarded_call_errors_total", "counter",
         "guests' calls refused or not carried here (a home call refused, a buffer unreadable); "
         "not calls that failed at home as they would natively");
    evbuffer_add_printf(b, "mos_forwarded_call_errors_total %llu\n",
                        (unsigned long long)c->errors);
    head(b, "mos_forwarded_bytes_total", "counter",
         "bytes of calls and results on the deputy links of guests here");
    evbuffer_add_printf(b, "mos_forwarded_bytes_total %llu\n", (unsigned long long)c->bytes);
}

static void gossip_figures(const struct mosd *d, struct evbuffer *b)
{
    struct mos_gossip_stats st;
    uint32_t now = mos_gossip_now_ms();

    if (!d->gossip)
        return;
    head(b, "mos_gossip_age_seconds", "gauge", "age of the news this node holds of each node");
    for (size_t i = 0; i < mos_gossip_n_nodes(d->gossip); i++) {
        struct mos_gossip_node n;
        mos_gossip_node_get(d->gossip, now, i, &n);
        if (n.age_ms == MOS_GOSSIP_AGE_UNKNOWN)
            continue;
        evbuffer_add_printf(b, "mos_gossip_age_seconds{node=\"");
        label_value(b, n.name);
        evbuffer_add_printf(b, "\"} %.3f\n", n.age_ms / 1000.0);
    }
    head(b, "mos_gossip_node_alive", "gauge", "1 while this node holds a node alive");
    for (size_t i = 0; i < mos_gossip_n_nodes(d->gossip); i++) {
        struct mos_gossip_node n;
        mos_gossip_node_get(d->gossip, now, i, &n);
        evbuffer_add_printf(b, "mos_gossip_node_alive{node=\"");
        label_value(b, n.name);
        evbuffer_add_printf(b, "\"} %d\n", n.state == MOS_GOSSIP_ALIVE);
    }
    mos_gossip_stats_get(d->gossip, &st);
    head(b, "mos_gossip_datagrams_total", "counter", "gossip datagrams sent and received");
    evbuffer_add_printf(b,
                        "mos_gossip_datagrams_total{way=\"sent\"} %llu\n"
                        "mos_gossip_datagrams_total{way=\"received\"} %llu\n"
                        "mos_gossip_datagrams_total{way=\"accepted\"} %llu\n",
                        (unsigned long long)st.sent, (unsigned long long)st.received,
                        (unsigned long long)st.accepted);
    head(b, "mos_gossip_presumed_dead_total", "counter",
         "nodes presumed dead: by our own probes, or on the notice of a node whose probes failed");
    evbuffer_add_printf(b,
                        "mos_gossip_presumed_dead_total{by=\"probes\"} %llu\n"
                        "mos_gossip_presumed_dead_total{by=\"notice\"} %llu\n",
                        (unsigned long long)(st.presumed_dead - st.notices_taken),
                        (unsigned long long)st.notices_taken);
    head(b, "mos_gossip_death_notices_total", "counter",
         "death notices sent, and received but ignored (news of the node here was fresh)");
    evbuffer_add_printf(b,
                        "mos_gossip_death_notices_total{way=\"sent\"} %llu\n"
                        "mos_gossip_death_notices_total{way=\"ignored\"} %llu\n",
                        (unsigned long long)st.notices_sent, (unsigned long long)st.notices_ignored);
    head(b, "mos_gossip_dropped_total", "counter", "gossip datagrams dropped, by reason");
    for (int r = 0; r < MOS_GOSSIP_DROP_REASONS; r++)
        evbuffer_add_printf(b, "mos_gossip_dropped_total{reason=\"%s\"} %llu\n",
                            mos_gossip_drop_name((enum mos_gossip_drop)r),
                            (unsigned long long)st.dropped[r]);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    const struct mosd *d = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_send_error(req, 405, "only GET");
        return;
    }
    if (!path || strcmp(path, "/metrics") != 0) {
        evhttp_send_error(req, HTTP_NOTFOUND, "try /metrics");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    node_figures(d, b);
    move_figures(d, b);
    call_figures(d, b);
    gossip_figures(d, b);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", b);
    evbuffer_free(b);
}

int mosd_metrics_start(struct mosd *d)
{
    char addr[64], why[200];
    int port, rc;

    if (!d->cfg.metrics_listen[0])
        return 0;
    rc = mosd_metrics_parse_listen(d->cfg.metrics_listen, addr, sizeof(addr), &port, why,
                                   sizeof(why));
    if (rc != 0) {
        mos_err("mosd", "%s", why);
        return rc;
    }
    d->metrics_http = evhttp_new(d->base);
    if (!d->metrics_http)
        return -ENOMEM;
    /* a scrape is small: cap what a client may send and how long it may take */
    evhttp_set_max_headers_size(d->metrics_http, 8192);
    evhttp_set_max_body_size(d->metrics_http, 0);
    evhttp_set_timeout(d->metrics_http, 10);
    evhttp_set_gencb(d->metrics_http, on_request, d);
    if (evhttp_bind_socket(d->metrics_http, addr, (ev_uint16_t)port) != 0) {
        rc = mos_errno_status();
        mos_err("mosd", "cannot serve metrics on %s: %s", d->cfg.metrics_listen,
                mos_strerror(rc));
        mosd_metrics_stop(d);
        return rc < 0 ? rc : -EADDRNOTAVAIL;
    }
    mos_info("mosd", "metrics for Prometheus on http://%s/metrics", d->cfg.metrics_listen);
    return 0;
}

void mosd_metrics_stop(struct mosd *d)
{
    if (d->metrics_http)
        evhttp_free(d->metrics_http);
    d->metrics_http = NULL;
}
