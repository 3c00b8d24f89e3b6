"""The GPU check: what the engine does on a CUDA machine, in one command sized for a borrowed accelerator.

    python scripts/gpu_check.py prepare [--out .gpu]        # here: what travels beside the checkout (~30 MB)
    bash scripts/gpu_check.sh [.gpu]                        # there: installs the carried wheels, runs `check`
    python scripts/gpu_check.py check --data .gpu [--device cpu --quick]   # a dry run on a CPU

`prepare` (on a machine with both presets installed) writes into --out: configs/<preset>.json (each
preset's exact transformers config: `check` builds random-weight models from them, since speed does not
depend on the weights and the weights are too big to carry), tokenizer/ (smollm2-135m's; token ids only
feed the models), scifact/ (the first --docs documents, the test queries and judgments) and wheels/ (what
the GPU image lacks: faiss-cpu, bm25s, PyStemmer, pytrec-eval-terrier, for Python 3.12).

`check` prints one JSON report:
- the GPU's bf16 matmul rate: the median of many single 4096-8192 square products;
- per preset shape at 512 tokens: the bare forward pass (equal-length batches, no hooks) and the indexer
  (build_index on the SciFact slice, every leg) in tokens/s, their MFU against that rate, and their ratio;
- CPU against GPU on a tiny random Llama in fp32: the smallest cosine between a text's dense vectors
  from the two devices, and how many queries get the same dense top-10 ids;
- query latency on the smollm2 shape: one query at a time (median, p95) and a batch of queries (ms per
  query), and the bf16 GPU agreement of a query alone and inside a batch;
- faiss-gpu flat search against faiss-cpu, when faiss-gpu imports.
MFU = tokens x 2 x decoder-layer parameters / seconds / matmul rate (attention's own FLOPs not counted).
The goal on a GPU: the indexer >= 0.5 MFU for gemma3-270m's shape at 512 tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

from common import ROOT, SCIFACT  # isort: skip (first: the offline environment)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from costs import flops_per_token, matmul_rate  # scripts/ is on the path when a script runs

PRESETS = ("smollm2-135m", "gemma3-270m")
WHEELS = ("faiss-cpu==1.15.1", "bm25s==0.3.16", "PyStemmer==3.1.0", "pytrec-eval-terrier==0.5.11")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


def prepare(out: Path, docs: int) -> None:
    from retriever.models.backbones import resolve

    (out / "configs").mkdir(parents=True, exist_ok=True)
    for preset in PRESETS:
        _, _, folder = resolve(preset, quiet=True)
        config = json.loads((Path(folder) / "config.json").read_text())
        (out / "configs" / f"{preset}.json").write_text(json.dumps(config, indent=1))
        if preset == PRESETS[0]:
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(folder).save_pretrained(out / "tokenizer")
    scifact, target = SCIFACT, out / "scifact"
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    with (scifact / "corpus.jsonl").open() as src, (target / "corpus.jsonl").open("w") as dst:
        dst.writelines(islice(src, docs))
    shutil.copyfile(scifact / "queries.jsonl", target / "queries.jsonl")
    shutil.copyfile(scifact / "qrels" / "test.tsv", target / "qrels" / "test.tsv")
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(out / "wheels"),
                    *WHEELS], check=True)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {size / 1e6:.1f} MB to carry")


def random_model(config: dict, tokenizer_dir: Path, folder: Path, layers: int | None = None) -> Path:
    """A preset's architecture with random weights, saved as a transformers folder load_backbone reads."""
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = {k: v for k, v in config.items() if k not in ("architectures", "transformers_version", "dtype")}
    if layers is not None:
        fields["num_hidden_layers"] = layers
        if "layer_types" in fields:
            fields["layer_types"] = fields["layer_types"][:layers]
    cfg = AutoConfig.for_model(**fields)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, folder / f.name)
    return folder


def bare_forward(backbone, length: int, rows: int, repeats: int = 5) -> float:
    """Tokens/s of the decoder alone over rows x length random tokens: no padding, no hooks."""
    ids = torch.randint(100, 40000, (rows, length), device=backbone.device)
    with torch.inference_mode():
        backbone.decoder(input_ids=ids, use_cache=False)
        _sync(backbone.device)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            backbone.decoder(input_ids=ids, use_cache=False)
            _sync(backbone.device)
            times.append(time.perf_counter() - started)
    return rows * length / statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def shape_run(preset: str, args, data: Path, tmp: Path, rate: float) -> dict:
    from retriever.corpus.readers import read_corpus
    from retriever.indexing.indexer import build_index
    from retriever.models.backbones import load_backbone
    from retriever.settings import IndexSettings

    config = json.loads((data / "configs" / f"{preset}.json").read_text())
    folder = random_model(config, data / "tokenizer", tmp / preset, 2 if args.quick else None)
    backbone = load_backbone(str(folder), dtype="bfloat16", device=args.device, quiet=True)
    flops = flops_per_token(backbone)
    rows = 2 if args.quick else 64
    bare = bare_forward(backbone, 512, rows)
    documents = list(islice(read_corpus(data / "scifact" / "corpus.jsonl"), args.docs))
    started = time.perf_counter()
    settings = IndexSettings(max_tokens=512, dense_model=None)  # the LLM's legs: MiniLM does not travel
    manifest = build_index(documents, tmp / f"{preset}-index", backbone, settings)
    wall = time.perf_counter() - started
    tokens = manifest["tokens_embedded"]
    return {"preset_shape": preset, "layers": backbone.num_layers, "gflop_per_token": round(flops / 1e9, 4),
            "bare_forward": {"rows": rows, "length": 512, "tokens_per_s": round(bare),
                             "mfu": round(bare * flops / rate, 3)},
            "indexer": {"documents": manifest["documents"], "tokens": tokens, "wall_s": round(wall, 2),
                        "tokens_per_s": round(tokens / wall), "mfu": round(tokens * flops / wall / rate, 3),
                        "vs_bare_forward": round(tokens / wall / bare, 3),
                        "stage_seconds": manifest["stage_seconds"]},
            "index": str(tmp / f"{preset}-index"), "model": str(folder)}


def agreement(args, data: Path, tmp: Path) -> dict:
    """A tiny random Llama in fp32 on the CPU and on the device: the same vectors, the same top-10."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from retriever.corpus.readers import read_corpus
    from retriever.eval.beir import read_split
    from retriever.legs.dense.leg import normalize
    from retriever.models.backbones import load_backbone
    from retriever.models.encoders import Encoder, make_method

    folder = tmp / "tiny"
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder)
    for f in (data / "tokenizer").iterdir():
        shutil.copy(f, folder / f.name)
    docs = [d.content for d in islice(read_corpus(data / "scifact" / "corpus.jsonl"), 300)]
    queries = list(read_split(data / "scifact", "test").queries.values())[:50]
    vectors = {}
    for device in ("cpu", args.device):
        backbone = load_backbone(str(folder), dtype="float32", device=device, quiet=True)
        encoder = Encoder(backbone, make_method("prompteol"), max_tokens=256)
        vectors[device] = (normalize(encoder.encode(docs).dense), normalize(encoder.encode(queries).dense))
    (cpu_d, cpu_q), (dev_d, dev_q) = vectors["cpu"], vectors[args.device]
    cosines = np.concatenate([(cpu_d * dev_d).sum(1), (cpu_q * dev_q).sum(1)])
    top = [np.argsort(-(q @ d.T), axis=1, kind="stable")[:, :10] for d, q in ((cpu_d, cpu_q), (dev_d, dev_q))]
    same = int(sum(np.array_equal(a, b) for a, b in zip(*top, strict=True)))
    return {"texts": len(cosines), "min_cosine": round(float(cosines.min()), 6),
            "queries_with_same_top10": f"{same}/{len(queries)}", "ok": bool(cosines.min() >= 0.999 and same == 50)}


def latency(args, data: Path, run: dict) -> dict:
    from retriever import Retriever
    from retriever.eval.beir import read_split
    from retriever.models.backbones import load_backbone

    backbone = load_backbone(run["model"], dtype="bfloat16", device=args.device, quiet=True)
    retriever = Retriever.load(run["index"], backbone=backbone)
    queries = list(read_split(data / "scifact", "test").queries.values())[: 20 if args.quick else 100]
    retriever.search(queries[0], explain=False)
    single = []
    for q in queries:
        started = time.perf_counter()
        retriever.search(q, k=10, explain=False)
        single.append(1000 * (time.perf_counter() - started))
    started = time.perf_counter()
    batched = retriever.search_batch(queries, k=10)
    batch_ms = 1000 * (time.perf_counter() - started) / len(queries)
    same = sum([h.id for h in retriever.search(q, k=10, explain=False)] == [h.id for h in hits]
               for q, hits in zip(queries, batched, strict=True))
    alone = retriever.searcher.encoder.encode(queries[:1]).residual[0]
    inside = retriever.searcher.encoder.encode(queries).residual[0]
    return {"queries": len(queries), "single_median_ms": round(statistics.median(single), 2),
            "single_p95_ms": round(float(np.percentile(single, 95)), 2), "batched_ms_per_query": round(batch_ms, 3),
            "alone_vs_batch_same_top10": f"{same}/{len(queries)}",
            "alone_vs_batch_residual_cosine": round(float(alone @ inside / np.linalg.norm(alone)
                                                          / np.linalg.norm(inside)), 6)}


def faiss_gpu(args) -> dict:
    import faiss

    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        return {"skipped": "faiss-gpu is not installed here (faiss-cpu has no GPU index)"}
    rng = np.random.default_rng(0)
    base = rng.standard_normal((200_000, 576), dtype=np.float32)
    queries = rng.standard_normal((1000, 576), dtype=np.float32)
    cpu = faiss.IndexFlatIP(576)
    cpu.add(base)
    gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, cpu)
    out = {}
    for name, index in (("cpu", cpu), ("gpu", gpu)):
        index.search(queries[:10], 100)
        started = time.perf_counter()
        index.search(queries, 100)
        out[f"{name}_ms_per_1000_queries"] = round(1000 * (time.perf_counter() - started), 2)
    return out


def check(args) -> None:
    data = args.data.resolve()
    device = torch.device(args.device)
    report: dict = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu (dry run)",
                    "torch": torch.__version__}
    import transformers

    report["transformers"] = transformers.__version__
    sizes, rounds = ((512, 1024), 2) if args.quick else ((4096, 8192), 10)
    rate = matmul_rate(torch.bfloat16, sizes=sizes, rounds=rounds, device=args.device)
    report["bf16_matmul_tflops"] = round(rate / 1e12, 1)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [shape_run(p, args, data, Path(tmp), rate) for p in PRESETS]
        report["shapes"] = [{k: v for k, v in r.items() if k not in ("index", "model")} for r in runs]
        report["cpu_vs_gpu"] = agreement(args, data, Path(tmp))
        report["query_latency"] = latency(args, data, runs[0])
    report["faiss_gpu"] = faiss_gpu(args)
    gemma = report["shapes"][1]["indexer"]["mfu"]
    report["goal_indexer_mfu_0.5_gemma3_512"] = "met" if gemma >= 0.5 else f"missed ({gemma})"
    print(json.dumps(report, indent=1), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, default=ROOT / ".gpu")
    p.add_argument("--docs", type=int, default=2000)
    c = sub.add_parser("check")
    c.add_argument("--data", type=Path, default=ROOT / ".gpu")
    c.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    c.add_argument("--docs", type=int, default=2000)
    c.add_argument("--quick", action="store_true", help="Tiny sizes: a dry run of every step on a CPU.")
    args = parser.parse_args()
    prepare(args.out, args.docs) if args.command == "prepare" else check(args)


if __name__ == "__main__":
    main()
