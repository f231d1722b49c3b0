"""iVAE probe: a stand-alone training loop for experiments on the iVAE settings of issue 6.

Not the library's iVAE (that is ``crlkit.models.identifiable.IVAE``, trained by
``crlkit.train``): a loop with the knobs of the reference implementation (ilkhem/iVAE) to find
out *why* iVAE falls short on 2- and 3-layer leaky-ReLU mixing. Options (JSON, all optional):

  layers n M seed       data: mixing layers, latents, segments, data seed; means=[lo, hi] for
                        segment means U(lo, hi) (the paper's "uncentered" data)
  steps batch lr sched  training (sched: cosine | plateau | const), tseed: init/batch seed
  hidden depth act      MLP width, hidden layers, lrelu | xtanh; sep: separate mean/var encoders
  enc_u prior_mean      q(z|x,u) instead of q(z|x); learned prior mean
  dvar dvar_final       decoder variance (annealed geometrically to dvar_final if given);
  learn_dvar            learned per-dimension decoder variance
  mix_act slope         data activation: lrelu or xtanh (tanh(h) + slope h); slope 0.1 (iVAE)
  anneal                the reference code's annealed ELBO weights (a, b, c, d)
  post                  posterior: diag (mean-field, the paper's) or full (Gaussian with a
                        full covariance L L^T, L lower-triangular from its own MLP)
  iw K                  importance-weighted bound (Burda et al. 2016) with K samples per x
                        (1: the ELBO); evaluation reports the K-sample bound too
  oracle K              first K supervised steps towards the true latents / mixing / prior
                        (tests whether the ELBO keeps a solution near the truth)

Prints the held-out MCC and ELBO every ``eval_every`` steps. Example (results in
bench/RESULTS_identify.md):

    OMP_NUM_THREADS=1 .venv/bin/python bench/ivae_probe.py '{"oracle": 4000, "lr": 1e-3, "dvar": 0.001}'
"""
import json, sys, time, math
import numpy as np, torch
from torch import nn
torch.set_num_threads(1)
from crlkit.data import make_dataset
from crlkit.metrics import mcc_score

cfg = dict(layers=3, n=5, M=40, seed=0, steps=6000, batch=256, lr=1e-2, hidden=200, depth=2,
           sep=True, enc_u=True, prior_mean=False, anneal=False, sched="cosine", whiten=True,
           ntrain_per_seg=1000, xavier=True, dvar=0.01, eval_every=2000, act="lrelu", tseed=0, dvar_final=None, learn_dvar=False, anneal_frac=0.7, oracle=0, means=None, mix_act="lrelu", slope=0.1, post="diag", iw=1)
cfg.update(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
c = type("C", (), cfg)
ds = make_dataset("synthetic", latents=c.n, segments=c.M, segment_scale=(0.5, 3.0), mixing="mlp",
                  mixing_layers=c.layers, slope=c.slope, mixing_activation=c.mix_act, seed=c.seed,
                  segment_means=None if c.means is None else tuple(c.means))
rng = np.random.default_rng(c.seed + 123)
N = c.M * c.ntrain_per_seg
s = ds.sample_latents(N, rng)
X = torch.tensor(np.asarray(ds.observations_from_factors(s.z, rng)), dtype=torch.float32)
U = torch.tensor(np.asarray(s.u), dtype=torch.long)
Z = np.asarray(s.z)
rng2 = np.random.default_rng(c.seed + 999)
se = ds.sample_latents(5000, rng2)
Xe = torch.tensor(np.asarray(ds.observations_from_factors(se.z, rng2)), dtype=torch.float32)
Ue = torch.tensor(np.asarray(se.u), dtype=torch.long)
Ze = np.asarray(se.z)
if c.whiten:
    m = X.mean(0); C = torch.cov(X.T); ev, evec = torch.linalg.eigh(C); W = evec @ torch.diag(ev.rsqrt()) @ evec.T
    X = (X - m) @ W.T; Xe = (Xe - m) @ W.T
torch.manual_seed(c.tseed)
def act():
    return nn.LeakyReLU(0.1) if c.act == "lrelu" else XTanh()
class XTanh(nn.Module):
    def forward(self, x): return torch.tanh(x) + 0.1 * x
def mlp(i, o):
    layers, d = [], i
    for _ in range(c.depth):
        layers += [nn.Linear(d, c.hidden), act()]; d = c.hidden
    layers.append(nn.Linear(d, o))
    return nn.Sequential(*layers)
D = X.shape[1]; n = c.n
ein = D + (c.M if c.enc_u else 0)
if c.sep:
    g, lv = mlp(ein, n), mlp(ein, n)
else:
    gl = mlp(ein, 2 * n)
f = mlp(n, D)
tril = torch.tril_indices(n, n, offset=-1)
off = mlp(ein, tril.shape[1]) if c.post == "full" else None
pr = mlp(c.M, 2 * n if c.prior_mean else n)
mods = nn.ModuleList([m_ for m_ in ([g, lv] if c.sep else [gl]) + [f, pr] + ([off] if off is not None else [])])
if c.xavier:
    for mod in mods.modules():
        if isinstance(mod, nn.Linear): nn.init.xavier_uniform_(mod.weight)
opt = torch.optim.Adam(mods.parameters(), lr=c.lr)
def enc(x, u1h):
    inp = torch.cat([x, u1h], 1) if c.enc_u else x
    if c.sep: return g(inp), lv(inp)
    return gl(inp).chunk(2, -1)
def prior(u1h):
    h = pr(u1h)
    if c.prior_mean: return h.chunk(2, -1)
    return torch.zeros_like(h), h
LOG2PI = math.log(2 * math.pi)
def lognorm(x, mu, logv):
    return -0.5 * (LOG2PI + logv + (x - mu) ** 2 / logv.exp())
def weights(it):
    if not c.anneal: return None
    thr = int(c.steps / 1.6)
    if it > thr: return None
    a0 = 0.5 / c.dvar
    return (min(2 * a0, a0 + a0 * it / thr), max(1, a0 * .3 * (1 - it / thr)), min(1, it / thr), max(1, a0 * .5 * (1 - it / thr)))
log_dvar = nn.Parameter(torch.full((D,), math.log(c.dvar)))
if c.learn_dvar: opt.add_param_group({"params": [log_dvar]})
def cur_logdvar(it):
    # it == 0 is the held-out evaluation: scored with the final decoder variance
    if c.learn_dvar: return log_dvar
    if c.dvar_final is None or it == 0: return torch.tensor(math.log(c.dvar_final if (c.dvar_final and it == 0) else c.dvar))
    fr = min(1.0, it / (c.anneal_frac * c.steps))
    return torch.tensor(math.log(c.dvar) + fr * (math.log(c.dvar_final) - math.log(c.dvar)))
def scale_tril(x, u1h, logv):
    """L of the full posterior: diagonal exp(logv / 2), strictly lower part from ``off``."""
    inp = torch.cat([x, u1h], 1) if c.enc_u else x
    Lm = torch.diag_embed((0.5 * logv).exp())
    return Lm.index_put((torch.arange(len(x))[:, None], tril[0][None], tril[1][None]), off(inp))
def reparam(x, u1h, mu, logv, eps):
    """z = mu + L eps (L diagonal exp(logv / 2) for the mean-field posterior); eps (..., B, n)."""
    if off is None:
        return mu + eps * (0.5 * logv).exp()
    return mu + (scale_tril(x, u1h, logv) @ eps.unsqueeze(-1)).squeeze(-1)
def loss_fn(x, u, it, train=True):
    ldv = cur_logdvar(it)
    u1h = nn.functional.one_hot(u, c.M).float()
    mu, logv = enc(x, u1h)
    if c.iw > 1 and not (train and weights(it) is not None):
        return -_iw_bound(x, u1h, mu, logv, ldv)
    eps = torch.randn_like(mu)
    z = reparam(x, u1h, mu, logv, eps)
    if off is not None:  # full covariance: log q = log N(eps) - sum log diag L
        logqzx_full = (-0.5 * (LOG2PI + eps ** 2) - 0.5 * logv).sum(-1)
    logpx = (-0.5 * (LOG2PI + ldv + (f(z) - x) ** 2 / ldv.exp())).sum(-1)
    pm, pl = prior(u1h)
    logqzx = logqzx_full if off is not None else lognorm(z, mu, logv).sum(-1)
    logpz = lognorm(z, pm, pl).sum(-1)
    w = weights(it) if train else None
    if w is None:
        return -(logpx + logpz - logqzx).mean()
    a, b, cc, d = w
    B = z.shape[0]
    tmp = lognorm(z.unsqueeze(1), mu.unsqueeze(0), logv.unsqueeze(0))  # B,B,n
    logqz = torch.logsumexp(tmp.sum(-1), 1) - math.log(B * N)
    logqzi = (torch.logsumexp(tmp, 1) - math.log(B * N)).sum(-1)
    return -(a * logpx - b * (logqzx - logqz) - cc * (logqz - logqzi) - d * (logqzi - logpz)).mean()
def _iw_bound(x, u1h, mu, logv, ldv):
    """mean over x of log (1/K) sum_k p(x, z_k | u) / q(z_k | x), z_k ~ q(z|x)."""
    K = c.iw
    eps = torch.randn((K,) + tuple(mu.shape))
    z = reparam(x, u1h, mu, logv, eps)
    logq = (-0.5 * (LOG2PI + eps ** 2) - 0.5 * logv).sum(-1)
    logpx = (-0.5 * (LOG2PI + ldv + (f(z) - x) ** 2 / ldv.exp())).sum(-1)
    pm, pl = prior(u1h)
    logpz = lognorm(z, pm, pl).sum(-1)
    return (torch.logsumexp(logpx + logpz - logq, 0) - math.log(K)).mean()
def evaluate():
    with torch.no_grad():
        mu, _ = enc(Xe, nn.functional.one_hot(Ue, c.M).float())
        el = -float(loss_fn(Xe, Ue, 0, train=False))
    return mcc_score(Ze, mu.double().numpy()), el
gen = torch.Generator().manual_seed(c.tseed)
if c.oracle:
    Zt = torch.tensor(Z, dtype=torch.float32)
    scale_t = torch.tensor(np.asarray(ds.scm.segment_scale), dtype=torch.float32)
    opt_o = torch.optim.Adam(mods.parameters(), lr=1e-3)
    for it in range(c.oracle):
        idx = torch.randint(0, N, (256,), generator=gen)
        u1h = nn.functional.one_hot(U[idx], c.M).float()
        mu, logv = enc(X[idx], u1h)
        pm, pl = prior(u1h)
        lo = ((mu - Zt[idx]) ** 2).mean() + ((f(Zt[idx]) - X[idx]) ** 2).mean() + ((pl - 2 * scale_t[U[idx]].log()) ** 2).mean() + ((logv + 6) ** 2).mean()
        opt_o.zero_grad(); lo.backward(); opt_o.step()
        if it % 1000 == 0: print("oracle", it, float(lo), flush=True)
    print("after oracle", evaluate(), flush=True)
perm = torch.randperm(N, generator=gen); pos = 0
epoch_steps = N // c.batch; ep_loss = 0.0; best = float("inf"); bad = 0
t0 = time.time(); hist = []
for it in range(1, c.steps + 1):
    if pos + c.batch > N:
        perm = torch.randperm(N, generator=gen); pos = 0
    idx = perm[pos:pos + c.batch]; pos += c.batch
    loss = loss_fn(X[idx], U[idx], it)
    opt.zero_grad(); loss.backward(); opt.step()
    if c.sched == "cosine":
        for gr in opt.param_groups: gr["lr"] = c.lr * 0.5 * (1 + math.cos(math.pi * it / c.steps))
    elif c.sched == "plateau":
        ep_loss += float(loss.detach())
        if it % epoch_steps == 0:
            if ep_loss < best - 1e-4 * abs(best): best = ep_loss; bad = 0
            else:
                bad += 1
                if bad > 3:
                    for gr in opt.param_groups: gr["lr"] *= 0.1
                    bad = 0
            ep_loss = 0.0
    if it % c.eval_every == 0 or it == c.steps:
        mcc, el = evaluate()
        hist.append((it, round(mcc, 3), round(el, 2)))
        print(it, f"mcc={mcc:.3f} elbo={el:.2f} lr={opt.param_groups[0]['lr']:.1e} t={time.time()-t0:.0f}", flush=True)
print("FINAL", json.dumps({**cfg, "mcc": hist[-1][1], "elbo": hist[-1][2], "max_mcc": max(h[1] for h in hist), "sec": round(time.time()-t0)}))
