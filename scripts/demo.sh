#!/usr/bin/env bash
# The main job end to end on the embedded default: set up, index the packaged demo corpus with the
# packaged default model, run a few searches (one as JSON), then serve it over HTTP and ask it once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
R=.venv/bin/retriever
$R index retriever/data/demo.jsonl --index indexes/demo --overwrite
$R info --index indexes/demo
$R search --index indexes/demo -k 3 "why does lava come out of a mountain" "how do bees make honey"
$R search --index indexes/demo -k 3 --mode sparse "fix a flat bike tire"
$R search --index indexes/demo -k 3 --mode lexical "insulin and blood sugar"
$R search --index indexes/demo -k 1 --json "first man on the moon"
# the same index served over HTTP: started on a free loopback port, asked once, stopped with SIGTERM
.venv/bin/python - <<'PY'
import json
import urllib.request

from retriever.serve.server import ServerProcess

with ServerProcess(["--index", "indexes/demo", "--quiet"]) as server:
    body = json.dumps({"query": "coffee and sleep", "k": 2}).encode()
    ask = urllib.request.Request(server.url + "/search", data=body, headers={"content-type": "application/json"})
    hits = json.load(urllib.request.urlopen(ask))["hits"]
    print(f"retriever serve at {server.url}: POST /search 'coffee and sleep' ->",
          ", ".join(f"{h['id']} ({h['score']:.3f})" for h in hits))
    print(f"  the search page: {server.url}/ (run `retriever serve --index indexes/demo` to keep it up)")
PY
