#!/usr/bin/env python3
"""transformers (PyTorch, bf16, CPU) as a peer: a 512-token chunk appended at depth D, and decode at depth D,
on random-weight models at exactly ctxbench's preset shapes (docs/peers.md, "transformers beside ctxbench").

The model is built from a config (LlamaForCausalLM for transformer-*, BambaForCausalLM for bamba-*), with
the preset's d, layers, heads / KV heads, head_dim, d_ff, vocab, Mamba2 heads x head_dim, state, groups,
conv, chunk 256 and attention layers (engines/model/presets.c), random weights in bf16, untied, eps 1e-5,
rope theta 10000 (Bamba: partial rotary 0.5). The depth is filled synthetically, as ctxbench's `fill:
synthetic` does: each attention layer's KV cache gets D random bf16 keys and values of the right shape (the
arithmetic does not depend on them); the Mamba2 layers' states have constant size. Each timed call starts
from that cache (its attention layers set back to the D tokens after every call; class Depth). A chunk is
one forward of 512 tokens with the cache (logits_to_keep=1, as generate's prefill and llama-bench's prompt test keep only the last row); decode is
one forward of 1 token. torch.inference_mode, torch.set_num_threads(T), bf16, sdpa attention; warm-up
calls, then repetitions; median seconds. One JSON line per point on stdout (and --out).

usage: hf_peer_bench.py MODEL [--depths 4096,16384,65536] [--threads 16] [--chunk 512] [--reps 3]
                         [--warmups 1] [--later-warmups N] [--decode-tokens 8] [--no-decode] [--out F.jsonl]
"""
import argparse
import datetime
import json
import statistics
import sys
import time

import torch
import transformers

from hf_bf16_yardstick import cpu_model  # beside this file

# d, layers, heads, kv_heads, head_dim, mamba_heads, mamba_head_dim, state, d_ff, vocab, attention layers
SCALES = {
    "s": (1024, 32, 8, 2, 128, 32, 64, 128, 3584, 32000, [9, 18, 27]),
    "xs": (512, 32, 4, 1, 128, 16, 64, 128, 1792, 32000, [9, 18, 27]),
}


def build(name):
    fam, scale = name.rsplit("-", 1)
    d, L, nh, nkv, hd, mh, mhd, N, ff, V, attn = SCALES[scale]
    common = dict(vocab_size=V, hidden_size=d, intermediate_size=ff, num_hidden_layers=L, num_attention_heads=nh,
                  num_key_value_heads=nkv, rms_norm_eps=1e-5, tie_word_embeddings=False,
                  max_position_embeddings=1 << 20, hidden_act="silu")
    if fam == "transformer":
        cfg = transformers.LlamaConfig(head_dim=hd, **common)  # rope theta: the default 10000
        cls, attn_layers = transformers.LlamaForCausalLM, list(range(L))
    elif fam == "bamba":
        cfg = transformers.BambaConfig(attn_layer_indices=attn, mamba_n_heads=mh, mamba_d_head=mhd,
                                       mamba_n_groups=1, mamba_d_state=N, mamba_d_conv=4, mamba_expand=mh * mhd // d,
                                       mamba_chunk_size=256, mamba_conv_bias=True, mamba_proj_bias=False,
                                       **common)  # partial rotary 0.5 and theta 10000: the defaults
        cls, attn_layers = transformers.BambaForCausalLM, attn
    else:
        raise SystemExit(f"{name}: unknown family (transformer-xs|s, bamba-xs|s)")
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(1)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # parameters created in bf16 (no fp32 copy)
    try:
        model = cls(cfg)
    finally:
        torch.set_default_dtype(prev)
    model = model.to(torch.bfloat16).eval()
    return model, cfg, attn_layers, (nkv, hd)


def attn_kv(cache, i):
    """(keys, values) of attention layer i, in either cache layout transformers uses."""
    if hasattr(cache, "layers"):
        return cache.layers[i].keys, cache.layers[i].values
    return cache.key_cache[i], cache.value_cache[i]


def set_attn_kv(cache, i, k, v):
    if hasattr(cache, "layers"):
        cache.layers[i].keys, cache.layers[i].values = k, v
    else:
        cache.key_cache[i], cache.value_cache[i] = k, v


class Depth:
    """A cache holding `depth` synthetic tokens in every attention layer, and a way back to it after a call.

    Llama: a DynamicCache filled through update(). Bamba: the cache is the one the model makes itself (its
    class and layout change between transformers versions), from a real forward over one token; then each
    attention layer's keys / values are replaced by `depth` random ones (the Mamba2 layers keep the states
    of that token: constant size). Positions are passed explicitly (cache_position = depth..), since a hybrid
    cache's get_seq_length may count its first (Mamba2) layer."""

    def __init__(self, model, cfg, attn_layers, kv, depth, gen):
        nkv, hd = kv
        self.attn_layers, self.depth = attn_layers, depth
        if isinstance(model, transformers.LlamaForCausalLM):
            try:
                self.cache = transformers.DynamicCache(config=cfg)
            except TypeError:
                self.cache = transformers.DynamicCache()
        else:
            with torch.inference_mode():
                self.cache = forward(model, torch.tensor([[1]], dtype=torch.long), None).past_key_values
        self.saved = {}
        for i in attn_layers:
            k = torch.randn(1, nkv, depth, hd, generator=gen).to(torch.bfloat16)
            v = torch.randn(1, nkv, depth, hd, generator=gen).to(torch.bfloat16)
            if isinstance(model, transformers.LlamaForCausalLM):
                self.cache.update(k, v, i)
            else:
                set_attn_kv(self.cache, i, k, v)
            self.saved[i] = attn_kv(self.cache, i)
        print(f"#   cache {type(self.cache).__name__}: get_seq_length() = {self.cache.get_seq_length()}, "
              f"attention layer {attn_layers[0]} keys {tuple(self.held_shape())}", flush=True)

    def held_shape(self):
        return attn_kv(self.cache, self.attn_layers[0])[0].shape

    def held(self):
        return self.held_shape()[-2]

    def reset(self):
        for i, (k, v) in self.saved.items():
            set_attn_kv(self.cache, i, k, v)


def forward(model, ids, cache, start=None):
    kw = {}
    if start is not None:
        pos = torch.arange(start, start + ids.shape[1], dtype=torch.long)
        kw = dict(cache_position=pos, position_ids=pos.reshape(1, -1))
    try:
        return model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1, **kw)
    except TypeError:
        return model(input_ids=ids, past_key_values=cache, use_cache=True, num_logits_to_keep=1, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--depths", default="4096,16384,65536")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmups", type=int, default=1, help="warm-up chunks at the first depth")
    ap.add_argument("--later-warmups", type=int, default=None, help="warm-up chunks at later depths (default --warmups)")
    ap.add_argument("--decode-tokens", type=int, default=8)
    ap.add_argument("--no-decode", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    later = a.warmups if a.later_warmups is None else a.later_warmups
    t0 = time.time()
    model, cfg, attn_layers, kv = build(a.model)
    nparams = sum(p.numel() for p in model.parameters())
    meta = dict(peer="transformers", transformers=transformers.__version__, torch=torch.__version__,
                cpu=cpu_model(), cpu_capability=torch.backends.cpu.get_cpu_capability(), threads=torch.get_num_threads(),
                model=a.model, n_params=nparams, dtype="bf16", attn_implementation=cfg._attn_implementation,
                fill="synthetic", label="measured",
                date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    print(f"# {a.model}: {nparams} parameters, built in {time.time() - t0:.1f} s; {json.dumps(meta)}", flush=True)
    out = open(a.out, "a") if a.out else None
    gen = torch.Generator().manual_seed(1)
    V = cfg.vocab_size
    chunk_ids = (torch.arange(a.chunk, dtype=torch.long) * 7919 + 13).remainder(V).reshape(1, -1)
    for n, depth in enumerate(int(x) for x in a.depths.split(",")):
        dep = Depth(model, cfg, attn_layers, kv, depth, gen)
        cache = dep.cache
        assert dep.held() == depth, (dep.held(), depth)
        with torch.inference_mode():
            times = []
            nw = a.warmups if n == 0 else later
            for r in range(nw + a.reps):
                t = time.perf_counter()
                forward(model, chunk_ids, cache, depth)
                dt = time.perf_counter() - t
                assert dep.held() == depth + a.chunk, (dep.held(), depth + a.chunk)
                dep.reset()
                if r >= nw:
                    times.append(dt)
                print(f"#   {a.model} chunk@{depth} call {r}: {dt:.3f} s", flush=True)
            med = statistics.median(times)
            rec = dict(meta, phase="prefill_chunk", context=depth, tokens=a.chunk, samples_s=times, median_s=med,
                       tokens_per_s=a.chunk / med)
            print(json.dumps(rec), flush=True)
            if out:
                out.write(json.dumps(rec) + "\n"); out.flush()
            if a.no_decode:
                continue
            tok = torch.tensor([[17]], dtype=torch.long)
            forward(model, tok, cache, depth)  # warm-up token
            dep.reset()
            times = []
            for i in range(a.decode_tokens):
                t = time.perf_counter()
                forward(model, tok, cache, depth + i)
                times.append(time.perf_counter() - t)
            assert dep.held() == depth + a.decode_tokens, (dep.held(), depth + a.decode_tokens)
            med = statistics.median(times)
            rec = dict(meta, phase="decode", context=depth, tokens=a.decode_tokens, samples_s=times, median_s=med,
                       ms_per_token=1e3 * med, tokens_per_s=1.0 / med)
            print(json.dumps(rec), flush=True)
            if out:
                out.write(json.dumps(rec) + "\n"); out.flush()
        del cache, dep
    if out:
        out.close()


if __name__ == "__main__":
    sys.exit(main())
