"""How much GPU memory a QLoRA/LoRA run needs, line by line, before it starts. Pure arithmetic: no torch.

It reads the run config itself (the settings it depends on are those marked ``memory`` in the schema) and a
``Target``: the device and GPU count the config alone does not fix. Counts that can be exact are exact and tested
against the real objects: parameters, LoRA parameters (PEFT), and the bytes bitsandbytes stores for 4-bit weights
with their quantization constants. Activations, logits and runtime overheads follow the shapes of transformers' LLaMA
implementation; their coefficients are calibrated on a GPU by bench/estimator_accuracy.py.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from engine.light.catalog import ModelSpec
from engine.light.config import DEFAULT_LOSS_CHUNK, RunConfig
from engine.light.units import GIB

NF4_BLOCK = 64  # bitsandbytes 4-bit block size: one absmax per 64 weights
NESTED_BLOCK = 256  # double quantization: the absmax values are quantized in blocks of 256
NF4_CODE_BYTES = 16 * 4  # the 16-value NF4 code table (fp32), stored per quantized layer
NESTED_CODE_BYTES = 256 * 4  # the 8-bit dynamic code table for the nested absmax, per layer
OPTIM8_BLOCK = 256  # bitsandbytes 8-bit optimizers keep one absmax per 256 values per state
CUDA_CONTEXT_BYTES = int(0.55 * GIB)  # CUDA context, cuBLAS/cuDNN workspaces: driver dependent, ~0.3-0.6 GiB
HEADROOM = 0.10  # the caching allocator's fragmentation on the changing-size buffers
FIT_SHARE = 0.9  # a run "fits" when it needs at most this share of the free memory
TARGETS_ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Target:
    """Where the run would train, as far as the config does not say: the estimate is for a CUDA GPU unless told."""

    device: str = "cuda"  # "cpu" leaves out the CUDA context and checkpoint offloading
    gpus: int = 1
    strategy: str = "ddp"  # with several GPUs: ddp (a whole model per GPU) or fsdp (weights and adapters sharded)
    attention: str = "sdpa"  # sdpa / flash_attention_2 keep O(sequence) memory; eager keeps the score matrix


CUDA = Target()


def target_for(c: RunConfig, strategy: str | None = None) -> Target:
    """The CUDA target of a config: as many GPUs as it selects, with ``strategy`` (default: the config's, auto
    read as ddp)."""
    gpus = max(1, len(c.distributed.gpus))
    chosen = strategy or c.distributed.strategy
    return Target(gpus=gpus, strategy="fsdp" if chosen == "fsdp" and gpus > 1 else "ddp")


# ---- what the config means on the target -------------------------------------------------------------------------

def compute_bytes(c: RunConfig, t: Target = CUDA) -> int:
    """2 for bf16/fp16, 4 for fp32 (``auto`` is fp32 on the CPU)."""
    return 4 if c.compute_dtype == "float32" or (c.compute_dtype == "auto" and t.device == "cpu") else 2


def sharded(t: Target) -> bool:
    return t.strategy == "fsdp" and t.gpus > 1


def optimizer_name(c: RunConfig, t: Target = CUDA) -> str:
    """The optimizer ``auto`` stands for: paged 8-bit AdamW on CUDA, AdamW on the CPU and under FSDP (whose
    checkpoints cannot hold an 8-bit optimizer's state; engine/heavy/sharding.py)."""
    if c.train.optimizer != "auto":
        return c.train.optimizer
    return "paged_adamw_8bit" if t.device == "cuda" and not sharded(t) else "adamw_torch"


def target_modules(c: RunConfig) -> tuple[str, ...]:
    return tuple(c.lora.target_modules) or TARGETS_ALL


def tokens(c: RunConfig) -> int:
    """Tokens in one micro-batch at the cutoff (the worst case)."""
    return c.train.micro_batch * c.data.cutoff


def offloading(c: RunConfig, t: Target = CUDA) -> bool:
    """Checkpoint offloading needs pinned host memory, so a GPU; elsewhere it is left out."""
    return c.train.checkpoint_offload and c.train.gradient_checkpointing and t.device == "cuda" and not sharded(t)


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

def estimate(spec: ModelSpec, c: RunConfig, t: Target | None = None) -> Estimate:
    """What one GPU holds (each of them, with several); the target is the config's GPUs unless given."""
    t = t or target_for(c)
    est = Estimate()
    a = compute_bytes(c, t)
    shards = t.gpus if t.strategy == "fsdp" and t.gpus > 1 else 1  # FSDP: each GPU keeps 1/N of these
    sharded = f", a {shards}th of it on each GPU (FSDP)." if shards > 1 else "."
    if c.quantization == "nf4":
        est.lines.append(Line("4-bit weights", quantized_bytes(spec, c.double_quant) // shards,
                              "Linear layers in NF4 (4 bits each) with their per-64 scaling constants"
                              + (", themselves quantized to 8 bits (double quantization)" if c.double_quant
                                 else " in fp32") + sharded, exact=shards == 1))
        width = 4 if c.train.fp32_frozen_layers else a
        est.lines.append(Line("16/32-bit layers", unquantized_params(spec) * width // shards,
                              "Embeddings, output head and norms stay unquantized"
                              + (", upcast to fp32" if width == 4 and a < 4 else f", at {8 * width} bits") + sharded,
                              exact=shards == 1))
        weights = quantized_bytes(spec, c.double_quant)
    else:
        est.lines.append(Line("base weights", spec.param_count * a // shards,
                              f"All {spec.param_count / 1e9:.2f}B parameters at {8 * a} bits (plain LoRA)" + sharded,
                              exact=shards == 1))
        weights = spec.param_count * a
    if shards > 1:
        est.lines.append(Line("FSDP gathered layers", 2 * weights // spec.num_hidden_layers,
                              "FSDP gathers each decoder layer's whole weights while it runs, and the next one "
                              "ahead of time."))
    adapters = lora_params(spec, c.lora.rank, target_modules(c))
    est.lines.append(Line("LoRA adapters", adapters * 4 // shards,
                          f"{adapters / 1e6:.1f}M trainable parameters (rank {c.lora.rank}) kept in fp32" + sharded,
                          exact=shards == 1))
    est.lines.append(Line("LoRA gradients", adapters * 4 // shards, "One fp32 gradient per trainable parameter"
                          + sharded, exact=shards == 1))
    est.lines.append(_optimizer_line(adapters // shards, optimizer_name(c, t)))
    if t.gpus > 1 and shards == 1:
        est.lines.append(Line("DDP gradient buckets", adapters * 4,
                              f"Each of the {t.gpus} GPUs keeps a copy of the gradients for the all-reduce."))
    est.lines.append(_activations_line(spec, c, t))
    est.lines.append(_logits_line(spec, c, t))
    if t.device == "cuda":
        est.lines.append(Line("CUDA context", CUDA_CONTEXT_BYTES,
                              "The CUDA runtime, cuBLAS and kernel images, loaded before anything else."))
        dynamic = sum(line.bytes for line in est.lines if line.name in ("activations", "logits and loss"))
        est.lines.append(Line("allocator headroom", int(dynamic * HEADROOM),
                              "PyTorch's caching allocator holds some freed blocks of the changing-size "
                              "buffers (about 10% of them)."))
    return est


def _optimizer_line(adapters: int, optimizer: str) -> Line:
    if optimizer in ("paged_adamw_8bit", "adamw_8bit"):
        blocks = math.ceil(adapters / OPTIM8_BLOCK)
        paged = " Paged: moved to CPU memory under pressure." if optimizer.startswith("paged") else ""
        return Line("optimizer states", 2 * adapters + 2 * blocks * 4,
                    "AdamW's two moments in 8 bits per parameter." + paged)
    return Line("optimizer states", 8 * adapters, "AdamW's two moments in fp32 (8 bytes per parameter).")


def layer_activation_bytes_per_token(spec: ModelSpec, c: RunConfig, t: Target = CUDA) -> int:
    """Bytes one decoder layer keeps for the backward pass, per token, following LlamaDecoderLayer with LoRA."""
    h, i, a = spec.hidden_size, spec.intermediate_size, compute_bytes(c, t)
    kv = spec.num_key_value_heads * spec.head_dim
    q = spec.num_attention_heads * spec.head_dim
    norms = 2 * (4 * h + a * h)  # RMSNorm keeps its fp32 input and passes on the output
    attention = a * (q + 2 * kv) + a * (q + kv) + a * q  # q/k/v, their rotary copies, the attention output
    mlp = 4 * a * i  # gate, up, the activation and the product fed to down_proj
    dropout = 0
    if c.lora.dropout > 0:  # a dropped-out copy of each adapted layer's input, plus its mask
        shapes = linear_shapes(spec)
        dropout = sum((a + 1) * shapes[m][0] for m in target_modules(c))
    scores = 0
    if t.attention == "eager":  # the full score matrix, heads × sequence, per query token
        scores = (a + 4) * spec.num_attention_heads * c.data.cutoff
    return norms + attention + mlp + dropout + scores


def checkpointed_layers(spec: ModelSpec, c: RunConfig, t: Target = CUDA) -> int:
    """How many decoder layers are checkpointed: layer 0 and every ``checkpoint_every``-th after it; every layer under
    FSDP, which checkpoints each wrapped layer itself."""
    if not c.train.gradient_checkpointing:
        return 0
    if sharded(t):
        return spec.num_hidden_layers
    return math.ceil(spec.num_hidden_layers / max(1, c.train.checkpoint_every))


def residual_bytes(c: RunConfig, t: Target = CUDA) -> int:
    """Bytes per value of the hidden states passed between layers: fp32 norms (the upcast) make them fp32."""
    return 4 if c.quantization == "nf4" and c.train.fp32_frozen_layers else compute_bytes(c, t)


def offloaded_bytes(spec: ModelSpec, c: RunConfig, t: Target = CUDA) -> int:
    """Host memory that checkpoint offloading holds instead of the GPU (0 when off)."""
    if not offloading(c, t):
        return 0
    return checkpointed_layers(spec, c, t) * tokens(c) * spec.hidden_size * residual_bytes(c, t)


def attention_mask_bytes(c: RunConfig, t: Target = CUDA) -> int:
    """The block-diagonal attention mask transformers builds when a row holds several examples (or padding): one
    boolean per query-key pair, and SDPA's copy of it in the compute dtype. A single example per row needs none."""
    if not c.data.packing and c.train.micro_batch == 1:
        return 0
    rows, length = (1, tokens(c)) if c.train.padding_free else (c.train.micro_batch, c.data.cutoff)
    return rows * length * length * (1 + compute_bytes(c, t))


def _activations_line(spec: ModelSpec, c: RunConfig, t: Target) -> Line:
    per_layer = layer_activation_bytes_per_token(spec, c, t) * tokens(c)
    mask = attention_mask_bytes(c, t)
    line = _layer_activations(spec, c, t, per_layer)
    if mask:
        line.bytes += mask
        line.explanation += f" Plus the attention mask that keeps examples apart ({mask / GIB:.2f} GiB)."
    return line


def _layer_activations(spec: ModelSpec, c: RunConfig, t: Target, per_layer: int) -> Line:
    batch, cutoff, layers = c.train.micro_batch, c.data.cutoff, spec.num_hidden_layers
    if not c.train.gradient_checkpointing:
        return Line("activations", (layers + 1) * per_layer,
                    f"Every layer keeps its intermediate results for the backward pass ({per_layer / GIB:.2f} GiB "
                    f"per layer at {batch}×{cutoff} tokens); checkpointing would cut this sharply.")
    checkpointed = checkpointed_layers(spec, c, t)
    inputs = checkpointed * tokens(c) * spec.hidden_size * residual_bytes(c, t)
    kept = 0 if offloading(c, t) else inputs
    plain = layers - checkpointed
    text = (f"Gradient checkpointing keeps only each layer's input ({batch}×{cutoff} tokens) and recomputes one "
            f"layer at a time in the backward pass.")
    if plain:
        text = (f"Gradient checkpointing on {checkpointed} of {layers} layers (one in {c.train.checkpoint_every}): "
                f"those keep only their input and are recomputed in the backward pass; the other {plain} keep "
                f"their activations ({per_layer / GIB:.2f} GiB each).")
    if offloading(c, t):
        text += f" The checkpointed inputs ({inputs / GIB:.2f} GiB) wait in pinned CPU memory instead."
    return Line("activations", kept + (plain + 2) * per_layer, text)


def _logits_line(spec: ModelSpec, c: RunConfig, t: Target) -> Line:
    a = compute_bytes(c, t)
    upcast = 4 if a < 4 else 0
    per = a + upcast + 4 + 4  # logits, fp32 copy for the loss, log-softmax, its gradient
    n = tokens(c)
    if c.train.loss_chunk_tokens:
        # One chunk's scores at a time (recomputed in the backward pass), plus the trained positions' hidden states.
        chunk = min(c.train.loss_chunk_tokens, n)
        return Line("logits and loss", chunk * spec.vocab_size * per + n * spec.hidden_size * a,
                    f"The loss is computed {chunk:,} tokens at a time, so only one chunk's {spec.vocab_size:,} "
                    "vocabulary scores (fp32, with their gradient) exist at once.")
    return Line("logits and loss", n * spec.vocab_size * per,
                f"{c.train.micro_batch}×{c.data.cutoff} tokens × {spec.vocab_size:,} vocabulary scores, upcast to "
                "fp32 for the loss, with the log-softmax and its gradient"
                + (" — large for Llama 3's 128k vocabulary." if spec.vocab_size > 100_000 else "."))


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
    status = "fits" if need <= FIT_SHARE * free else "tight" if need <= free else "won't fit"
    return Verdict(status, need, free)


@dataclass
class Suggestion:
    change: str  # what to change, in words
    overrides: dict  # the run config's dotted paths and their new values, the effective batch kept
    need_bytes: int


class _Planner:
    """Finds changes that make a run fit into ``free`` bytes; each candidate is the run config with overrides."""

    def __init__(self, spec: ModelSpec, config: RunConfig, free: int, target: Target):
        self.spec, self.config, self.free, self.target = spec, config, free, target

    def need(self, overrides: dict) -> int:
        return estimate(self.spec, self.config.with_values(overrides), self.target).total

    def fits(self, overrides: dict) -> bool:
        return self.need(overrides) <= FIT_SHARE * self.free

    def batch(self, overrides: dict, micro_batch: int) -> dict:
        """Overrides for a new micro-batch, with the gradient accumulation that keeps the effective batch."""
        t = self.config.train
        return {**overrides, "train.micro_batch": micro_batch,
                "train.grad_accum": max(1, t.grad_accum * t.micro_batch // micro_batch)}

    def largest_micro_batch(self, overrides: dict, limit: int = 256) -> int:
        """The largest power-of-two micro-batch that fits (0 if not even 1 does)."""
        best, batch = 0, 1
        while batch <= limit and self.fits({**overrides, "train.micro_batch": batch}):
            best, batch = batch, batch * 2
        return best

    def longest_sequence(self, overrides: dict, step: int = 256) -> int:
        """The longest cutoff (a multiple of ``step``, up to the model's context) that fits."""
        lo, hi = 0, self.spec.max_position_embeddings // step
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.fits({**overrides, "data.cutoff": mid * step}):
                lo = mid
            else:
                hi = mid - 1
        return lo * step


def largest_micro_batch(spec: ModelSpec, c: RunConfig, free: int, t: Target | None = None) -> int:
    return _Planner(spec, c, free, t or target_for(c)).largest_micro_batch({})


def longest_sequence(spec: ModelSpec, c: RunConfig, free: int, t: Target | None = None) -> int:
    return _Planner(spec, c, free, t or target_for(c)).longest_sequence({})


def suggestions(spec: ModelSpec, c: RunConfig, free: int, t: Target | None = None) -> list[Suggestion]:
    """Changes that make the run fit, each keeping the effective batch (micro-batch × accumulation) the same.

    First the fewest memory savers that leave the training itself unchanged (same batch, sequence and adapters);
    then, on top of all of them, the changes that do alter it, gentlest first."""
    t = t or target_for(c)
    plan = _Planner(spec, c, free, t)
    kept = []  # training unchanged
    savers = free_savers(c, t)
    for change, overrides in savers:
        if plan.fits(overrides):
            kept.append(Suggestion(change, overrides, plan.need(overrides)))
            break
    if kept:
        base, prefix = {}, ""  # the alternatives below change the training instead
    else:
        base, prefix = (savers[-1][1], savers[-1][0] + ", ") if savers else ({}, "")
    alternatives = [Suggestion(change, overrides, plan.need(overrides))
                    for change, overrides in _alternatives(plan, base, prefix) if plan.fits(overrides)]
    if not alternatives and not kept:
        change, overrides = _combined(plan, base, prefix)
        if plan.fits(overrides):
            alternatives.append(Suggestion(change, overrides, plan.need(overrides)))
    return kept + sorted(alternatives, key=lambda x: x.need_bytes, reverse=True)


def _alternatives(plan: _Planner, base: dict, prefix: str) -> list[tuple[str, dict]]:
    """Single changes that alter the training, each on top of ``base`` (the savers when those were not enough)."""
    current = plan.config.with_values(base)
    found = []
    if not current.train.gradient_checkpointing:
        found.append((prefix + "turn on gradient checkpointing", {**base, "train.gradient_checkpointing": True}))
    if optimizer_name(current, plan.target) == "adamw_torch" and not sharded(plan.target):
        found.append((prefix + "use the paged 8-bit AdamW optimizer", {**base, "train.optimizer": "paged_adamw_8bit"}))
    batch = plan.largest_micro_batch(base)
    if batch and batch < current.train.micro_batch:
        found.append((prefix + f"micro-batch {batch} with {current.train.micro_batch // batch}× the gradient "
                      "accumulation", plan.batch(base, batch)))
    length = plan.longest_sequence(base)
    if length and length < current.data.cutoff:
        found.append((prefix + f"shorten the cutoff to {length} tokens", {**base, "data.cutoff": length}))
    smaller = next((rank for rank in (32, 16, 8) if rank < current.lora.rank), None)
    if smaller:
        found.append((prefix + f"LoRA rank {smaller}", {**base, "lora.rank": smaller}))
    return found


def _combined(plan: _Planner, base: dict, prefix: str) -> tuple[str, dict]:
    """No single change is enough: the savers, checkpointing and the 8-bit optimizer, then batch, then sequence."""
    overrides = {**base, "train.gradient_checkpointing": True}
    steps = ([prefix.removesuffix(", ")] if prefix else []) + ["gradient checkpointing"]
    if not sharded(plan.target):  # an FSDP checkpoint cannot hold the 8-bit optimizer's state
        overrides["train.optimizer"] = "paged_adamw_8bit"
        steps.append("the paged 8-bit optimizer")
    more = free_savers(plan.config.with_values(overrides), plan.target)  # those that need checkpointing on
    if more:
        overrides = {**overrides, **more[-1][1]}
        steps.append(more[-1][0])
    batch = plan.largest_micro_batch(overrides)
    if batch == 0:
        overrides = plan.batch(overrides, 1)
        steps.append("micro-batch 1 with more gradient accumulation")
        length = plan.longest_sequence(overrides)
        if length:
            overrides["data.cutoff"] = length
            steps.append(f"a cutoff of {length} tokens")
    elif batch < plan.config.train.micro_batch:
        overrides = plan.batch(overrides, batch)
        steps.append(f"micro-batch {batch} with {plan.config.train.micro_batch // batch}× the gradient accumulation")
    return "together: " + ", ".join(steps), overrides


def free_savers(c: RunConfig, t: Target = CUDA) -> list[tuple[str, dict]]:
    """Memory savers that change nothing about what is trained on or learned, accumulated one after another:
    each entry is (all changes so far, in words; the overrides with them)."""
    found: list[tuple[str, dict]] = []
    steps: list[str] = []
    overrides: dict = {}

    def add(change: str, path: str, value) -> None:
        overrides[path] = value
        steps.append(change)
        found.append((", ".join(steps), dict(overrides)))

    if c.quantization == "nf4" and c.train.fp32_frozen_layers:
        add("keep the frozen layers in 16 bits", "train.fp32_frozen_layers", False)
    if not c.train.loss_chunk_tokens:
        add(f"compute the loss {DEFAULT_LOSS_CHUNK:,} tokens at a time", "train.loss_chunk_tokens", DEFAULT_LOSS_CHUNK)
    if sharded(t):  # FSDP checkpoints every layer itself and offloads nothing: those two settings do not apply
        return found
    if c.train.gradient_checkpointing and c.train.checkpoint_every > 1:
        add("checkpoint every layer", "train.checkpoint_every", 1)
    if c.train.gradient_checkpointing and not c.train.checkpoint_offload and t.device == "cuda":
        add("hold the checkpointed activations in CPU memory", "train.checkpoint_offload", True)
    return found
