"""How much GPU memory a QLoRA/LoRA run needs, line by line, before it starts. Pure arithmetic: no torch.

Counts that can be exact are exact and tested against the real objects: parameters, LoRA parameters (PEFT), and the
bytes bitsandbytes stores for 4-bit weights with their quantization constants. Activations, logits and runtime
overheads follow the shapes of transformers' LLaMA implementation; their coefficients are calibrated on a GPU by
bench/estimator_accuracy.py.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from engine.models.catalog import ModelSpec

GIB = 2**30
NF4_BLOCK = 64  # bitsandbytes 4-bit block size: one absmax per 64 weights
NESTED_BLOCK = 256  # double quantization: the absmax values are quantized in blocks of 256
NF4_CODE_BYTES = 16 * 4  # the 16-value NF4 code table (fp32), stored per quantized layer
NESTED_CODE_BYTES = 256 * 4  # the 8-bit dynamic code table for the nested absmax, per layer
OPTIM8_BLOCK = 256  # bitsandbytes 8-bit optimizers keep one absmax per 256 values per state
CUDA_CONTEXT_BYTES = int(0.55 * GIB)  # CUDA context, cuBLAS/cuDNN workspaces: driver dependent, ~0.3-0.6 GiB
HEADROOM = 0.10  # the caching allocator's fragmentation on the changing-size buffers
DEFAULT_LOSS_CHUNK = 1024  # tokens per chunk of the chunked loss: the run config's default, and the advice's
TARGETS_ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Settings:
    """What the estimate depends on besides the architecture."""

    quantization: str = "nf4"  # "nf4" or "none"
    double_quant: bool = True
    compute_bytes: int = 2  # 2 for bf16/fp16, 4 for fp32
    lora_rank: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = TARGETS_ALL
    micro_batch: int = 4
    seq_len: int = 1024
    gradient_checkpointing: bool = True
    checkpoint_every: int = 1  # checkpoint every Nth decoder layer; the others keep their activations
    checkpoint_offload: bool = False  # the checkpointed layer inputs wait in pinned CPU memory, not on the GPU
    fp32_frozen: bool = False  # 4-bit runs: embeddings, head and norms upcast to fp32 (PEFT's usual preparation)
    packing: bool = False  # several examples per sequence
    padding_free: bool = True  # a micro-batch is one row of its examples side by side, not padded rows
    optimizer: str = "paged_adamw_8bit"  # or adamw_8bit, adamw_torch
    attention: str = "sdpa"  # sdpa / flash_attention_2 keep O(sequence) memory; eager keeps the score matrix
    loss_chunk_tokens: int = 0  # 0: the model's loss over all positions; N: the chunked loss, N tokens at a time
    gpus: int = 1
    device: str = "cuda"  # "cpu" leaves out the CUDA context

    @property
    def tokens(self) -> int:
        return self.micro_batch * self.seq_len


@dataclass
class Line:
    name: str
    bytes: int
    explanation: str
    exact: bool = False


@dataclass
class Estimate:
    lines: list[Line] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(line.bytes for line in self.lines)

    def to_dict(self) -> dict:
        return {"total_bytes": self.total, "lines": [asdict(line) for line in self.lines]}

    def table(self) -> str:
        width = max(len(line.name) for line in self.lines)
        rows = [f"{line.name.ljust(width)}  {line.bytes / GIB:7.2f} GiB  {line.explanation}" for line in self.lines]
        rows.append(f"{'total'.ljust(width)}  {self.total / GIB:7.2f} GiB")
        return "\n".join(rows)


# ---- exact counts ------------------------------------------------------------------------------------------------

def linear_shapes(spec: ModelSpec) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each linear layer in one decoder layer."""
    h, i = spec.hidden_size, spec.intermediate_size
    q, kv = spec.num_attention_heads * spec.head_dim, spec.num_key_value_heads * spec.head_dim
    return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def lora_params(spec: ModelSpec, rank: int, targets: tuple[str, ...] = TARGETS_ALL) -> int:
    """Trainable LoRA parameters: A (rank × in) and B (out × rank) for each targeted layer."""
    shapes = linear_shapes(spec)
    return spec.num_hidden_layers * sum(rank * (shapes[t][0] + shapes[t][1]) for t in targets)


def nf4_layer_bytes(n: int, double_quant: bool) -> int:
    """Bytes bitsandbytes stores for one 4-bit linear weight of n values, constants and code tables included."""
    blocks = math.ceil(n / NF4_BLOCK)
    packed = math.ceil(n / 2)
    if not double_quant:
        return packed + blocks * 4 + NF4_CODE_BYTES
    nested = math.ceil(blocks / NESTED_BLOCK)
    return packed + blocks + NF4_CODE_BYTES + nested * 4 + NESTED_CODE_BYTES + 4  # +4: the nested offset


def quantized_bytes(spec: ModelSpec, double_quant: bool) -> int:
    per_layer = sum(nf4_layer_bytes(i * o, double_quant) for i, o in linear_shapes(spec).values())
    return spec.num_hidden_layers * per_layer


def unquantized_params(spec: ModelSpec) -> int:
    """Parameters bitsandbytes leaves unquantized: embeddings, the output head (unless tied) and the norms."""
    embed = spec.vocab_size * spec.hidden_size
    head = 0 if spec.tie_word_embeddings else embed
    return embed + head + (2 * spec.num_hidden_layers + 1) * spec.hidden_size


# ---- the estimate ------------------------------------------------------------------------------------------------

def estimate(spec: ModelSpec, s: Settings) -> Estimate:
    est = Estimate()
    a = s.compute_bytes
    if s.quantization == "nf4":
        est.lines.append(Line("4-bit weights", quantized_bytes(spec, s.double_quant),
                              "Linear layers in NF4 (4 bits each) with their per-64 scaling constants"
                              + (", themselves quantized to 8 bits (double quantization)." if s.double_quant
                                 else " in fp32."), exact=True))
        width = 4 if s.fp32_frozen else a
        est.lines.append(Line("16/32-bit layers", unquantized_params(spec) * width,
                              "Embeddings, output head and norms stay unquantized"
                              + (", upcast to fp32." if width == 4 and a < 4 else f", at {8 * width} bits."),
                              exact=True))
    else:
        est.lines.append(Line("base weights", spec.param_count * a,
                              f"All {spec.param_count / 1e9:.2f}B parameters at {8 * a} bits (plain LoRA).",
                              exact=True))
    adapters = lora_params(spec, s.lora_rank, s.target_modules)
    est.lines.append(Line("LoRA adapters", adapters * 4,
                          f"{adapters / 1e6:.1f}M trainable parameters (rank {s.lora_rank}) kept in fp32.",
                          exact=True))
    est.lines.append(Line("LoRA gradients", adapters * 4, "One fp32 gradient per trainable parameter.", exact=True))
    est.lines.append(_optimizer_line(adapters, s))
    if s.gpus > 1:
        est.lines.append(Line("DDP gradient buckets", adapters * 4,
                              f"Each of the {s.gpus} GPUs keeps a copy of the gradients for the all-reduce."))
    est.lines.append(_activations_line(spec, s))
    est.lines.append(_logits_line(spec, s))
    if s.device == "cuda":
        est.lines.append(Line("CUDA context", CUDA_CONTEXT_BYTES,
                              "The CUDA runtime, cuBLAS and kernel images, loaded before anything else."))
        dynamic = sum(line.bytes for line in est.lines if line.name in ("activations", "logits and loss"))
        est.lines.append(Line("allocator headroom", int(dynamic * HEADROOM),
                              "PyTorch's caching allocator holds some freed blocks of the changing-size "
                              "buffers (about 10% of them)."))
    return est


def _optimizer_line(adapters: int, s: Settings) -> Line:
    if s.optimizer in ("paged_adamw_8bit", "adamw_8bit"):
        blocks = math.ceil(adapters / OPTIM8_BLOCK)
        paged = " Paged: moved to CPU memory under pressure." if s.optimizer.startswith("paged") else ""
        return Line("optimizer states", 2 * adapters + 2 * blocks * 4,
                    "AdamW's two moments in 8 bits per parameter." + paged)
    return Line("optimizer states", 8 * adapters, "AdamW's two moments in fp32 (8 bytes per parameter).")


def layer_activation_bytes_per_token(spec: ModelSpec, s: Settings) -> int:
    """Bytes one decoder layer keeps for the backward pass, per token, following LlamaDecoderLayer with LoRA."""
    h, i, a = spec.hidden_size, spec.intermediate_size, s.compute_bytes
    kv = spec.num_key_value_heads * spec.head_dim
    q = spec.num_attention_heads * spec.head_dim
    norms = 2 * (4 * h + a * h)  # RMSNorm keeps its fp32 input and passes on the output
    attention = a * (q + 2 * kv) + a * (q + kv) + a * q  # q/k/v, their rotary copies, the attention output
    mlp = 4 * a * i  # gate, up, the activation and the product fed to down_proj
    dropout = 0
    if s.lora_dropout > 0:  # a dropped-out copy of each adapted layer's input, plus its mask
        shapes = linear_shapes(spec)
        dropout = sum((a + 1) * shapes[t][0] for t in s.target_modules)
    scores = 0
    if s.attention == "eager":  # the full score matrix, heads × sequence, per query token
        scores = (a + 4) * spec.num_attention_heads * s.seq_len
    return norms + attention + mlp + dropout + scores


def checkpointed_layers(spec: ModelSpec, s: Settings) -> int:
    """How many decoder layers are checkpointed: layer 0 and every ``checkpoint_every``-th after it."""
    return math.ceil(spec.num_hidden_layers / max(1, s.checkpoint_every)) if s.gradient_checkpointing else 0


def residual_bytes(s: Settings) -> int:
    """Bytes per value of the hidden states passed between layers: fp32 norms (the upcast) make them fp32."""
    return 4 if s.quantization == "nf4" and s.fp32_frozen else s.compute_bytes


def offloaded_bytes(spec: ModelSpec, s: Settings) -> int:
    """Host memory that checkpoint offloading holds instead of the GPU (0 when off)."""
    if not (s.checkpoint_offload and s.gradient_checkpointing):
        return 0
    return checkpointed_layers(spec, s) * s.tokens * spec.hidden_size * residual_bytes(s)


def attention_mask_bytes(s: Settings) -> int:
    """The block-diagonal attention mask transformers builds when a row holds several examples (or padding): one
    boolean per query-key pair, and SDPA's copy of it in the compute dtype. A single example per row needs none."""
    rows, length = (1, s.tokens) if s.padding_free else (s.micro_batch, s.seq_len)
    if not s.packing and s.micro_batch == 1:
        return 0
    return rows * length * length * (1 + s.compute_bytes)


def _activations_line(spec: ModelSpec, s: Settings) -> Line:
    per_layer = layer_activation_bytes_per_token(spec, s) * s.tokens
    mask = attention_mask_bytes(s)
    line = _layer_activations(spec, s, per_layer)
    if mask:
        line.bytes += mask
        line.explanation += f" Plus the attention mask that keeps examples apart ({mask / GIB:.2f} GiB)."
    return line


def _layer_activations(spec: ModelSpec, s: Settings, per_layer: int) -> Line:
    if s.gradient_checkpointing:
        checkpointed = checkpointed_layers(spec, s)
        inputs = checkpointed * s.tokens * spec.hidden_size * residual_bytes(s)
        kept = 0 if s.checkpoint_offload else inputs
        plain = spec.num_hidden_layers - checkpointed
        total = kept + (plain + 2) * per_layer
        text = (f"Gradient checkpointing keeps only each layer's input ({s.micro_batch}×{s.seq_len} tokens) and "
                f"recomputes one layer at a time in the backward pass.")
        if plain:
            text = (f"Gradient checkpointing on {checkpointed} of {spec.num_hidden_layers} layers (one in "
                    f"{s.checkpoint_every}): those keep only their input and are recomputed in the backward pass; "
                    f"the other {plain} keep their activations ({per_layer / GIB:.2f} GiB each).")
        if s.checkpoint_offload:
            text += f" The checkpointed inputs ({inputs / GIB:.2f} GiB) wait in pinned CPU memory instead."
    else:
        total = (spec.num_hidden_layers + 1) * per_layer
        text = (f"Every layer keeps its intermediate results for the backward pass ({per_layer / GIB:.2f} GiB "
                f"per layer at {s.micro_batch}×{s.seq_len} tokens); checkpointing would cut this sharply.")
    return Line("activations", total, text)


def _logits_line(spec: ModelSpec, s: Settings) -> Line:
    upcast = 4 if s.compute_bytes < 4 else 0
    per = s.compute_bytes + upcast + 4 + 4  # logits, fp32 copy for the loss, log-softmax, its gradient
    if s.loss_chunk_tokens:
        # One chunk's scores at a time (recomputed in the backward pass), plus the trained positions' hidden states.
        chunk = min(s.loss_chunk_tokens, s.tokens)
        return Line("logits and loss", chunk * spec.vocab_size * per + s.tokens * spec.hidden_size * s.compute_bytes,
                    f"The loss is computed {chunk:,} tokens at a time, so only one chunk's {spec.vocab_size:,} "
                    "vocabulary scores (fp32, with their gradient) exist at once.")
    elements = s.tokens * spec.vocab_size
    return Line("logits and loss", elements * per,
                f"{s.micro_batch}×{s.seq_len} tokens × {spec.vocab_size:,} vocabulary scores, upcast to fp32 for "
                "the loss, with the log-softmax and its gradient" + (" — large for Llama 3's 128k vocabulary."
                                                                    if spec.vocab_size > 100_000 else "."))


# ---- fit and auto-fit -----------------------------------------------------------------------------------------

@dataclass
class Verdict:
    status: str  # "fits", "tight" or "won't fit"
    need_bytes: int
    free_bytes: int

    @property
    def margin_bytes(self) -> int:
        return self.free_bytes - self.need_bytes


def verdict(need: int, free: int) -> Verdict:
    """Against free memory, not total: what other programs hold is not available. Tight: within the last 10%."""
    status = "fits" if need <= 0.9 * free else "tight" if need <= free else "won't fit"
    return Verdict(status, need, free)


@dataclass
class Suggestion:
    change: str  # what to change, in words
    settings: Settings
    need_bytes: int


def suggestions(spec: ModelSpec, s: Settings, free: int) -> list[Suggestion]:
    """Changes that make the run fit, each keeping the effective batch (micro-batch × accumulation) the same.

    First the fewest memory savers that leave the training itself unchanged (same batch, sequence and adapters);
    then, on top of all of them, the changes that do alter it, gentlest first."""
    kept: list[Suggestion] = []  # training unchanged
    alternatives: list[Suggestion] = []  # training changed

    def fits(change: str, candidate: Settings, into: list[Suggestion]) -> bool:
        need = estimate(spec, candidate).total
        if need <= 0.9 * free:
            into.append(Suggestion(change, candidate, need))
            return True
        return False

    def consider(change: str, candidate: Settings) -> None:
        fits(change, candidate, alternatives)

    savers = _free_savers(s)
    if any(fits(change, candidate, kept) for change, candidate in savers):
        base, prefix = s, ""  # the alternatives below change the training instead
    else:
        base, prefix = (savers[-1][1], savers[-1][0] + ", ") if savers else (s, "")
    if not base.gradient_checkpointing:
        consider(prefix + "turn on gradient checkpointing", replace(base, gradient_checkpointing=True))
    if base.optimizer == "adamw_torch":
        consider(prefix + "use the paged 8-bit AdamW optimizer", replace(base, optimizer="paged_adamw_8bit"))
    batch = largest_micro_batch(spec, base, free)
    if batch and batch < base.micro_batch:
        consider(prefix + f"micro-batch {batch} with {base.micro_batch // batch}× the gradient accumulation",
                 replace(base, micro_batch=batch))
    length = longest_sequence(spec, base, free)
    if length and length < base.seq_len:
        consider(prefix + f"shorten the cutoff to {length} tokens", replace(base, seq_len=length))
    for rank in (32, 16, 8):
        if rank < base.lora_rank:
            consider(prefix + f"LoRA rank {rank}", replace(base, lora_rank=rank))
            break
    if not alternatives and not kept:  # no single change is enough: combine the savers, then batch, then sequence
        plan = replace(base, gradient_checkpointing=True, optimizer="paged_adamw_8bit")
        steps = ([prefix.removesuffix(", ")] if prefix else []) + ["gradient checkpointing",
                                                                 "the paged 8-bit optimizer"]
        more = _free_savers(plan)  # those that need checkpointing on
        if more:
            plan = more[-1][1]
            steps.append(more[-1][0])
        batch = largest_micro_batch(spec, plan, free)
        if batch == 0:
            plan = replace(plan, micro_batch=1)
            steps.append("micro-batch 1 with more gradient accumulation")
            length = longest_sequence(spec, plan, free)
            if length:
                plan = replace(plan, seq_len=length)
                steps.append(f"a cutoff of {length} tokens")
        elif batch < s.micro_batch:
            plan = replace(plan, micro_batch=batch)
            steps.append(f"micro-batch {batch} with {s.micro_batch // batch}× the gradient accumulation")
        consider("together: " + ", ".join(steps), plan)
    return kept + sorted(alternatives, key=lambda x: x.need_bytes, reverse=True)


def _free_savers(s: Settings) -> list[tuple[str, Settings]]:
    """Memory savers that change nothing about what is trained on or learned, accumulated one after another:
    each entry is (all changes so far, in words; the settings with them)."""
    found: list[tuple[str, Settings]] = []
    steps: list[str] = []
    current = s

    def add(change: str, **fields) -> None:
        nonlocal current
        current = replace(current, **fields)
        steps.append(change)
        found.append((", ".join(steps), current))

    if s.quantization == "nf4" and s.fp32_frozen:
        add("keep the frozen layers in 16 bits", fp32_frozen=False)
    if not s.loss_chunk_tokens:
        add(f"compute the loss {DEFAULT_LOSS_CHUNK:,} tokens at a time", loss_chunk_tokens=DEFAULT_LOSS_CHUNK)
    if s.gradient_checkpointing and s.checkpoint_every > 1:
        add("checkpoint every layer", checkpoint_every=1)
    if s.gradient_checkpointing and not s.checkpoint_offload and s.device == "cuda":
        add("hold the checkpointed activations in CPU memory", checkpoint_offload=True)
    return found


def largest_micro_batch(spec: ModelSpec, s: Settings, free: int, limit: int = 256) -> int:
    """The largest power-of-two micro-batch that fits (0 if not even 1 does)."""
    best, batch = 0, 1
    while batch <= limit and estimate(spec, replace(s, micro_batch=batch)).total <= 0.9 * free:
        best, batch = batch, batch * 2
    return best


def longest_sequence(spec: ModelSpec, s: Settings, free: int, step: int = 256) -> int:
    """The longest sequence (a multiple of ``step``, up to the model's context) that fits."""
    lo, hi = 0, spec.max_position_embeddings // step
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate(spec, replace(s, seq_len=mid * step)).total <= 0.9 * free:
            lo = mid
        else:
            hi = mid - 1
    return lo * step
