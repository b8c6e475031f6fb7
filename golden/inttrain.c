/* The integer training rule of docs/integer-training.md in C: the fast path of
 * golden/inttrain.py. It must stay equal to the NumPy reference bit for bit
 * (tests/golden/test_inttrain_fast.py); the document is the specification of both.
 *
 * Two builds share the rule. The host library (golden/inttrain_fast.py) adds the float
 * local loss and train_samples, which allocates its own buffers. With
 * INTTRAIN_FREESTANDING defined (the training rows of `ffcl-hw bench`, on RV32IM and on
 * the host: ffcl_hw/cpu/training.py) only the rule is left: <stdint.h>, no libc, no
 * floating point; the caller carves the buffers of train_sample from its own memory
 * with work_init. */
#include <stdint.h>
#ifndef INTTRAIN_FREESTANDING
#include <math.h>
#include <stdlib.h>
#endif

typedef int64_t i64;
typedef uint32_t u32;
typedef uint64_t u64;

typedef struct {
    int L, T, K, D, goodness_mode, loss_last, nearest, f;
    int state_bits, S, Q, rsq_k, P1, lam, boost;
    const int *hidden, *src, *w_exp, *v_exp;
    i64 **Wc, **bc, **Uc, **Vc; /* stored */
    i64 **W, **b, **U, **V;     /* forward: stored >> f */
    const i64 *theta, *sig, *rsq;
    i64 wlo, whi, blo, bhi;
} Net;

static u32 word(u32 *state) {
    u32 s = *state;
    for (int i = 0; i < 32; i++) {
        u32 out = s & 1u;
        s >>= 1;
        if (out) s ^= 0x80200003u;
    }
    *state = s;
    return s;
}

static int bitlen(u64 v) { return v ? 64 - __builtin_clzll(v) : 0; }

/* round_shift for n >= 0 (half up), exact multiply for n < 0. */
static i64 rs(i64 v, int n) {
    if (n < 0) return v * ((i64)1 << -n);
    if (n == 0) return v;
    if (n >= 63) return 0;
    return (v + ((i64)1 << (n - 1))) >> n;
}

static i64 sat(const Net *net, i64 v) {
    i64 lim = (i64)1 << (net->state_bits - 1);
    return v < -lim ? -lim : (v > lim - 1 ? lim - 1 : v);
}

static void norm(const Net *net, const i64 *u, int n, i64 *r, int *sh) {
    i64 sq = 0;
    for (int j = 0; j < n; j++) sq += u[j] * u[j];
    int s = bitlen((u64)sq) - net->rsq_k;
    if (s < 0) s = 0;
    s += s & 1;
    *r = net->rsq[sq >> s];
    *sh = s;
}

static void product(const Net *net, const i64 *W, int rows, int cols, const i64 *u, int exp,
                    int normalise, i64 *out) {
    i64 r = (i64)1 << net->Q;
    int sh = 0;
    if (normalise) norm(net, u, cols, &r, &sh);
    int shift = sh / 2 + net->Q + exp - net->S;
    for (int i = 0; i < rows; i++) {
        const i64 *row = W + (i64)i * cols;
        i64 acc = 0;
        for (int j = 0; j < cols; j++) acc += row[j] * u[j];
        out[i] = rs(acc * r, shift);
    }
}

static i64 sigma(const Net *net, i64 m) {
    i64 index = (m >> (2 * net->S - 4)) + 128;
    if (index < 0) index = 0;
    if (index > 255) index = 255;
    return net->sig[index];
}

static i64 step(const Net *net, i64 p, u32 rho, u32 kappa, int k) {
    if (k <= 0) return p * ((i64)1 << -k);
    if (net->nearest) return (p + ((i64)1 << (k - 1))) >> k;
    u64 mask = (k >= 64) ? ~(u64)0 : (((u64)1 << k) - 1);
    i64 R = (i64)(((u64)rho + (u64)kappa) & mask);
    return (p + R) >> k;
}

static i64 clampi(i64 v, i64 lo, i64 hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* The buffers of train_sample, all of them vectors of at most `width` = max(D, N_l). */
typedef struct {
    int width;
    i64 *hp, *hn, *dp, *dn, *d, *vw, *vf; /* one update's h, errors and inputs v */
    i64 *act;                             /* two banks of L activation vectors */
    i64 *pre, *s, *sff, *sfb;             /* one layer's forward pass */
    u32 *kappa, *rho;                     /* one update's rounding words */
    i64 g_pos, g_neg;                     /* goodness of the last update (the loss) */
#ifndef INTTRAIN_FREESTANDING
    double *loss;                         /* NULL, or each layer's local loss, added */
#endif
} Work;

/* Sizes of the two buffers work_init carves: i64 words and u32 words. kappa takes up to
 * two widths + 3 (W's and V's columns, b, U+, U-), rho one width behind it. */
#define WORK_I64(width, L) ((long)(width) * (11 + 2 * (long)(L)))
#define WORK_U32(width) ((long)(width) * 3 + 8)

int work_width(const Net *net) {
    int width = net->D;
    for (int l = 0; l < net->L; l++)
        if (net->hidden[l] > width) width = net->hidden[l];
    return width;
}

void work_init(const Net *net, Work *w, i64 *mem, u32 *words) {
    int n = w->width = work_width(net);
    i64 *p = mem;
    i64 **vectors[] = {&w->hp, &w->hn, &w->dp, &w->dn, &w->d, &w->vw, &w->vf,
                       &w->pre, &w->s, &w->sff, &w->sfb};
    for (unsigned v = 0; v < sizeof vectors / sizeof vectors[0]; v++, p += n) *vectors[v] = p;
    w->act = p;
    w->kappa = words;
    w->rho = words + 2 * n + 4;
#ifndef INTTRAIN_FREESTANDING
    w->loss = NULL;
#endif
}

static void update(const Net *net, Work *w, int l, const i64 *u, int n_in, const i64 *fb,
                   int n_src, const i64 *pre, int y, int yn, u32 *lfsr) {
    int N = net->hidden[l], K = net->K, f = net->f;
    const i64 *U = net->U[l];
    i64 gp = 0, gn = 0, mp = 0, mn = 0;
    for (int i = 0; i < N; i++) {
        i64 a = pre[i] + U[i * K + y], c = pre[i] + U[i * K + yn];
        w->hp[i] = a > 0 ? a : 0;
        w->hn[i] = c > 0 ? c : 0;
        gp += w->hp[i] * w->hp[i];
        gn += w->hn[i] * w->hn[i];
        if (w->hp[i] > mp) mp = w->hp[i];
        if (w->hn[i] > mn) mn = w->hn[i];
    }
    i64 theta = net->theta[l];
    i64 sp = sigma(net, theta - gp), sn = sigma(net, gn - theta);
    i64 largest = sp * mp > sn * mn ? sp * mp : sn * mn;
    int z = bitlen((u64)largest) - 14;
    if (z < 0) z = 0;
    for (int i = 0; i < N; i++) {
        w->dp[i] = rs(-sp * w->hp[i], z);
        w->dn[i] = rs(sn * w->hn[i], z);
        w->d[i] = w->dp[i] + w->dn[i];
    }
    if (l == 0) {
        for (int j = 0; j < n_in; j++) w->vw[j] = u[j];
    } else {
        i64 r; int sh;
        norm(net, u, n_in, &r, &sh);
        for (int j = 0; j < n_in; j++) w->vw[j] = rs(u[j] * r, sh / 2 + net->Q - 14);
    }
    if (fb) {
        i64 r; int sh;
        norm(net, fb, n_src, &r, &sh);
        for (int j = 0; j < n_src; j++) w->vf[j] = rs(fb[j] * r, sh / 2 + net->Q - 14);
    }
    int n_cols = n_in + (fb ? n_src : 0) + 3;
    for (int c = 0; c < n_cols; c++) w->kappa[c] = word(lfsr);
    for (int i = 0; i < N; i++) w->rho[i] = word(lfsr);
    int base = net->lam - (l > 0 ? net->boost : 0) + 8 - 1 - f - z;
    int P = l == 0 ? net->P1 : 14;
    int kW = base + net->S + P - net->w_exp[l];
    int kV = fb ? base + net->S + 14 - net->v_exp[l] : 0;
    i64 *Wc = net->Wc[l], *W = net->W[l];
    for (int i = 0; i < N; i++) {
        u32 rho = w->rho[i];
        i64 di = w->d[i];
        i64 *crow = Wc + (i64)i * n_in, *frow = W + (i64)i * n_in;
        for (int j = 0; j < n_in; j++) {
            i64 c = clampi(crow[j] + step(net, -di * w->vw[j], rho, w->kappa[j], kW),
                           net->wlo, net->whi);
            crow[j] = c;
            frow[j] = c >> f;
        }
        if (fb) {
            i64 *vc = net->Vc[l] + (i64)i * n_src, *vr = net->V[l] + (i64)i * n_src;
            for (int j = 0; j < n_src; j++) {
                i64 c = clampi(vc[j] + step(net, -di * w->vf[j], rho, w->kappa[n_in + j], kV),
                               net->wlo, net->whi);
                vc[j] = c;
                vr[j] = c >> f;
            }
        }
        int col = n_in + (fb ? n_src : 0);
        i64 c = clampi(net->bc[l][i] + step(net, -di, rho, w->kappa[col], base), net->blo,
                       net->bhi);
        net->bc[l][i] = c;
        net->b[l][i] = c >> f;
        c = clampi(net->Uc[l][i * K + y] + step(net, -w->dp[i], rho, w->kappa[col + 1], base),
                   net->wlo, net->whi);
        net->Uc[l][i * K + y] = c;
        net->U[l][i * K + y] = c >> f;
        c = clampi(net->Uc[l][i * K + yn] + step(net, -w->dn[i], rho, w->kappa[col + 2], base),
                   net->wlo, net->whi);
        net->Uc[l][i * K + yn] = c;
        net->U[l][i * K + yn] = c >> f;
    }
    w->g_pos = gp;
    w->g_neg = gn;
}

static int draw_negative(u32 *lfsr, int y, int K) {
    u32 mask = (u32)((1u << bitlen((u64)(K - 2))) - 1u);
    u32 r;
    do {
        r = word(lfsr) & mask;
    } while (r >= (u32)(K - 1));
    int wrong = y + 1 + (int)r;
    return wrong >= K ? wrong - K : wrong;
}

#ifndef INTTRAIN_FREESTANDING
static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

/* The float local loss of a layer's update, for the host's reports only. */
static double local_loss(const Net *net, int l, i64 gp, i64 gn) {
    double scale = ldexp(1.0, -2 * net->S);
    i64 theta = net->theta[l];
    return softplus((double)(theta - gp) * scale) + softplus((double)(gn - theta) * scale);
}

#endif

/* One sample (image xs of D pixels, class label), in the rule's order: draw y', then
 * for t = 1..T and l = 1..L the forward pass of layer l and, if iteration t is trained,
 * its update at once. Only the weights and the two generators' states change. */
void train_sample(Net *net, Work *w, const i64 *xs, int label, u32 *lfsr_round,
                  u32 *lfsr_label) {
    int L = net->L, width = w->width;
    int yn = draw_negative(lfsr_label, label, net->K);
    /* Bank `prev` holds a^(t-1) (zero before the first iteration), the other a^(t). */
    int prev = 0;
    for (long j = 0; j < (long)width * L; j++) w->act[j] = 0;
    for (int t = 0; t < net->T; t++) {
        int trained = !net->loss_last || t == net->T - 1;
        i64 *before = w->act + (long)width * L * prev, *now = w->act + (long)width * L * !prev;
        for (int l = 0; l < L; l++) {
            int N = net->hidden[l];
            int n_in = l == 0 ? net->D : net->hidden[l - 1];
            const i64 *u = l == 0 ? xs : now + (long)width * (l - 1);
            int srcl = net->src[l];
            const i64 *fb = srcl >= 0 ? before + (long)width * srcl : 0;
            int n_src = srcl >= 0 ? net->hidden[srcl] : 0;
            i64 *s = w->s, *pre = w->pre, *a = now + (long)width * l;
            product(net, net->W[l], N, n_in, u, net->w_exp[l], l > 0, w->sff);
            if (fb) product(net, net->V[l], N, n_src, fb, net->v_exp[l], 1, w->sfb);
            for (int i = 0; i < N; i++) {
                i64 fbv = fb ? w->sfb[i] : 0;
                if (net->goodness_mode) {
                    s[i] = sat(net, w->sff[i] + net->b[l][i]);
                    pre[i] = sat(net, s[i] + fbv);
                } else {
                    s[i] = pre[i] = sat(net, w->sff[i] + fbv + net->b[l][i]);
                }
                a[i] = s[i] > 0 ? s[i] : 0;
            }
            if (trained) {
                update(net, w, l, u, n_in, fb, n_src, pre, label, yn, lfsr_round);
#ifndef INTTRAIN_FREESTANDING
                if (w->loss) w->loss[l] += local_loss(net, l, w->g_pos, w->g_neg);
#endif
            }
        }
        prev = !prev;
    }
}

#ifndef INTTRAIN_FREESTANDING
/* Train on samples order[0..n) of x (rows of D pixels); adds each layer's loss to loss[]. */
int train_samples(Net *net, const i64 *x, const i64 *y, const i64 *order, i64 n,
                  u32 *lfsr_round, u32 *lfsr_label, double *loss) {
    Work w;
    int width = work_width(net);
    i64 *mem = calloc((size_t)WORK_I64(width, net->L), sizeof(i64));
    u32 *words = calloc((size_t)WORK_U32(width), sizeof(u32));
    if (!mem || !words) {
        free(mem);
        free(words);
        return -1;
    }
    work_init(net, &w, mem, words);
    w.loss = loss;
    for (i64 q = 0; q < n; q++) {
        i64 m = order[q];
        train_sample(net, &w, x + m * net->D, (int)y[m], lfsr_round, lfsr_label);
    }
    free(mem);
    free(words);
    return 0;
}
#endif
