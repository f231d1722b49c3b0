"""iFlow probe: exact-likelihood flows on the iVAE data of issue 6 (a stand-alone loop).

Not the library's ``iflow`` (``crlkit.models.identifiable.IFlow``, trained by ``crlkit.train``):
the loop that found it (bench/RESULTS_identify.md, fifth session of 2026-11-28). A fixed training
set of M x 1,000 samples, whitened; a per-segment table of prior log-variances; options (JSON):

  layers n M seed slope mix_act   data (mixing layers, latents, segments, seed, leaky-ReLU slope)
  kind                            lrelu: `depth` invertible leaky-ReLU layers with learnable slopes
                                  (init_slope); coupling: `blocks` x [linear, affine coupling]
  blocks hidden act_layers        coupling flow size; act_layers adds learnable leaky-ReLU layers
  steps batch lr sched tseed      training

    OMP_NUM_THREADS=1 .venv/bin/python bench/iflow_probe.py '{"kind": "coupling", "lr": 1e-3, "steps": 20000}'
"""
import json, sys, time, math
import numpy as np, torch
from torch import nn
torch.set_num_threads(1)
from crlkit.data import make_dataset
from crlkit.metrics import mcc_score
cfg = dict(layers=3, n=5, M=40, seed=0, steps=6000, batch=256, lr=3e-3, depth=3, tseed=0, prior_mean=False,
           ntrain_per_seg=1000, slope=0.1, mix_act="lrelu", eval_every=1000, init_slope=1.0, sched="cosine", width=1, kind="lrelu", blocks=8, hidden=64, act_layers=False)
cfg.update(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
c = type("C", (), cfg)
ds = make_dataset("synthetic", latents=c.n, segments=c.M, segment_scale=(0.5, 3.0), mixing="mlp",
                  mixing_layers=c.layers, slope=c.slope, mixing_activation=c.mix_act, seed=c.seed)
rng = np.random.default_rng(c.seed + 123)
N = c.M * c.ntrain_per_seg
s = ds.sample_latents(N, rng)
X = torch.tensor(np.asarray(ds.observations_from_factors(s.z, rng)), dtype=torch.float32)
U = torch.tensor(np.asarray(s.u), dtype=torch.long)
rng2 = np.random.default_rng(c.seed + 999)
se = ds.sample_latents(5000, rng2)
Xe = torch.tensor(np.asarray(ds.observations_from_factors(se.z, rng2)), dtype=torch.float32)
Ue = torch.tensor(np.asarray(se.u), dtype=torch.long)
Ze = np.asarray(se.z)
m = X.mean(0); C = torch.cov(X.T); ev, evec = torch.linalg.eigh(C); W = evec @ torch.diag(ev.rsqrt()) @ evec.T
X = (X - m) @ W.T; Xe = (Xe - m) @ W.T
torch.manual_seed(c.tseed)
n = c.n
class Flow(nn.Module):
    def __init__(s_):
        super().__init__()
        s_.lin = nn.ModuleList()
        for k in range(c.depth):
            l = nn.Linear(n, n)
            q, _ = torch.linalg.qr(torch.randn(n, n))
            l.weight.data = q.clone(); l.bias.data.zero_()
            s_.lin.append(l)
        s_.log_slope = nn.Parameter(torch.full((c.depth - 1, n), math.log(c.init_slope)))
    def forward(s_, x):
        h, ld = x, torch.zeros(len(x))
        for k, l in enumerate(s_.lin):
            h = l(h)
            ld = ld + torch.linalg.slogdet(l.weight)[1]
            if k < c.depth - 1:
                a = s_.log_slope[k].exp()
                neg = h < 0
                h = torch.where(neg, h * a, h)
                ld = ld + (neg * s_.log_slope[k]).sum(-1)
        return h, ld

class Coupling(nn.Module):
    def __init__(s_):
        super().__init__()
        s_.lin = nn.ModuleList(); s_.nets = nn.ModuleList()
        k = n // 2
        s_.k = k
        for b in range(c.blocks):
            l = nn.Linear(n, n); q, _ = torch.linalg.qr(torch.randn(n, n)); l.weight.data = q.clone(); l.bias.data.zero_()
            s_.lin.append(l)
            net = nn.Sequential(nn.Linear(k, c.hidden), nn.LeakyReLU(0.1), nn.Linear(c.hidden, c.hidden), nn.LeakyReLU(0.1), nn.Linear(c.hidden, 2 * (n - k)))
            net[-1].weight.data.zero_(); net[-1].bias.data.zero_()
            s_.nets.append(net)
        s_.final = nn.Linear(n, n)
        q, _ = torch.linalg.qr(torch.randn(n, n)); s_.final.weight.data = q.clone(); s_.final.bias.data.zero_()
        s_.log_slope = nn.Parameter(torch.zeros(c.blocks, n)) if c.act_layers else torch.zeros(1, 1)
    def forward(s_, x):
        h, ld = x, torch.zeros(len(x))
        for i, (l, net) in enumerate(zip(s_.lin, s_.nets)):
            h = l(h); ld = ld + torch.linalg.slogdet(l.weight)[1]
            if c.act_layers:
                ls = s_.log_slope[i]
                neg = h < 0
                h = torch.where(neg, h * ls.exp(), h); ld = ld + (neg * ls).sum(-1)
            a, b = h[:, :s_.k], h[:, s_.k:]
            st = net(a); sc, sh = st.chunk(2, -1); sc = 2 * torch.tanh(sc / 2)
            b = b * sc.exp() + sh; ld = ld + sc.sum(-1)
            h = torch.cat([a, b], -1)
        h = s_.final(h); ld = ld + torch.linalg.slogdet(s_.final.weight)[1]
        return h, ld
f = Flow() if c.kind == "lrelu" else Coupling()
prior = nn.Parameter(torch.zeros(c.M, n)); pmean = nn.Parameter(torch.zeros(c.M, n))
params = list(f.parameters()) + [prior] + ([pmean] if c.prior_mean else [])
opt = torch.optim.Adam(params, lr=c.lr)
def nll(x, u):
    z, ld = f(x)
    lv = prior[u]; mu = pmean[u] if c.prior_mean else 0
    lp = -0.5 * (((z - mu) ** 2) / lv.exp() + lv + math.log(2 * math.pi)).sum(-1)
    return -(lp + ld).mean()
g = torch.Generator().manual_seed(c.tseed)
t0 = time.time()
for step in range(1, c.steps + 1):
    if c.sched == "cosine":
        for pg in opt.param_groups: pg["lr"] = c.lr * 0.5 * (1 + math.cos(math.pi * step / c.steps))
    idx = torch.randint(0, N, (c.batch,), generator=g)
    loss = nll(X[idx], U[idx])
    opt.zero_grad(); loss.backward(); opt.step()
    if step % c.eval_every == 0 or step == c.steps:
        with torch.no_grad():
            ze = f(Xe)[0].numpy(); le = -float(nll(Xe, Ue))
        print(f"step {step} loss {float(loss.detach()):.3f} heldout_ll {le:.3f} mcc {mcc_score(ze, Ze):.3f} slopes {f.log_slope.exp().mean(1).tolist()} t {time.time()-t0:.0f}", flush=True)
