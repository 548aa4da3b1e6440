/* The analytical age model of Amar, Barak, Drezner and Okun (CCPE 2009), in the closed form
 * their public daemon uses; the simulator and the tests compare measured ages with it. */
#include "mos/gossip.h"

#include <errno.h>
#include <math.h>

int mos_gossip_model(unsigned n, unsigned window, struct mos_gossip_age_model *model)
{
    if (n < 2 || window < 1 || window >= n || !model)
        return -EINVAL;
    double N = n, W = window;
    double T = ((N - 1) / N) * log(W * (N - 1) / (N - W));
    double E = exp(N * T / (N - 1));
    double X = N * E / (N - 1 + E);
    double aw = T - ((N - 1) / X) * (log(N - 1 + E) - log(N));
    double q = 1.0 - 1.0 / (N - 1);

    model->window_age = aw;
    model->avg_age = 1.0 / (1.0 - pow(q, X)) + aw;
    /* Euler-Mascheroni constant: expected maximum of n geometric waiting times. */
    model->max_age = -(log(N) + 0.5772156649) / (X * log(q));
    return 0;
}
