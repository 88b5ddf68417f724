#!/usr/bin/env python3
"""Fast mode's yardstick: transformers' own bf16 full forward against a fixture's fp32 reference logits.

For each checkpoint folder (default: the four tests/fixtures/*-tiny) and each reference file in it
(reference.safetensors, reference-long.safetensors where present: input_ids I32 [T], logits F32 [T, vocab]),
load the checkpoint with AutoModelForCausalLM in bf16 (torch_dtype=torch.bfloat16), run one full forward
over input_ids (no cache, every position), and report max |logit - reference| and the fraction of positions
whose argmax agrees. That pair is the bar `ctxbench verify --mode fast` judges a checkpoint by when the
folder holds bf16_yardstick.json (docs/engines.md, "The fast-mode bar"); --write-dir D writes one such file
per fixture under D/NAME/bf16_yardstick.json (copy it beside the checkpoint to adopt it).

Needs torch, transformers and safetensors; runs on CPU. No model is downloaded: the checkpoints are local.
usage: hf_bf16_yardstick.py [--threads N] [--json OUT.jsonl] [--write-dir D] [DIR ...]
"""
import argparse
import datetime
import json
import os
import platform
import sys

import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

FIXTURES = ["tests/fixtures/llama-tiny", "tests/fixtures/mamba2-tiny", "tests/fixtures/bamba-tiny",
            "tests/fixtures/granite-tiny"]
REFERENCES = ["reference.safetensors", "reference-long.safetensors"]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_bf16(path):
    try:
        return AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16)
    except TypeError:  # a transformers without the torch_dtype alias
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="*", default=FIXTURES)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own)")
    ap.add_argument("--json", help="append one JSON line per (fixture, reference) here")
    ap.add_argument("--write-dir", help="write NAME/bf16_yardstick.json per fixture under this folder")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with_text = (f"transformers {transformers.__version__}, torch {torch.__version__}, bf16 full forward on CPU "
                 f"({cpu_model()}, {torch.get_num_threads()} threads), {when}, scripts/hf_bf16_yardstick.py")
    print(f"# {with_text}", flush=True)
    print(f"{'fixture':<14} {'reference':<28} {'T':>5} {'max_abs':>9} {'argmax':>8}  attn", flush=True)
    out = open(a.json, "a") if a.json else None
    rc = 0
    for d in a.dirs:
        name = os.path.basename(os.path.normpath(d))
        refs = [r for r in REFERENCES if os.path.exists(os.path.join(d, r))]
        if not refs:
            print(f"{d}: no reference file ({', '.join(REFERENCES)})", file=sys.stderr)
            rc = 1
            continue
        model = load_bf16(d).eval()
        attn = getattr(model.config, "_attn_implementation", None) or "default"
        entries = {}
        for r in refs:
            ref = load_file(os.path.join(d, r))
            ids = ref["input_ids"].to(torch.long).reshape(1, -1)
            want = ref["logits"].to(torch.float32)
            with torch.inference_mode():
                got = model(input_ids=ids, use_cache=False).logits[0].to(torch.float32)
            if got.shape != want.shape:
                print(f"{d}/{r}: logits {tuple(got.shape)} vs reference {tuple(want.shape)}", file=sys.stderr)
                rc = 1
                continue
            max_abs = (got - want).abs().max().item()
            agree = (got.argmax(-1) == want.argmax(-1)).to(torch.float64).mean().item()
            entries[r] = {"max_abs": round(max_abs, 6), "argmax_agreement": round(agree, 6)}
            print(f"{name:<14} {r:<28} {ids.shape[1]:>5} {max_abs:>9.4f} {100 * agree:>7.2f}%  {attn}", flush=True)
            if out:
                out.write(json.dumps({"fixture": name, "reference": r, "T": ids.shape[1], "max_abs": max_abs,
                                      "argmax_agreement": agree, "attn_implementation": attn,
                                      "measured_with": with_text}) + "\n")
        if a.write_dir and entries:
            os.makedirs(os.path.join(a.write_dir, name), exist_ok=True)
            with open(os.path.join(a.write_dir, name, "bf16_yardstick.json"), "w") as f:
                json.dump({"measured_with": with_text, "references": entries}, f, indent=2)
                f.write("\n")
        del model
    if out:
        out.close()
    return rc


if __name__ == "__main__":
    sys.exit(main())
