"""Training configuration (``configs/reid/*.yaml``), validated once by ``reid-pipeline train``.

Paths are used as written (relative ones are relative to the working
directory, normally the repository root). ``data.datasets`` are dataset
folders written by ``reid-pipeline make-triplets`` (``index.csv`` etc., see
INTERFACES.md) or, with ``data.format: market``, Market-1501-style folders.
Several datasets are trained together with BH-switch or BH-merge batches.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from pipeline.core.configio import StrictModel


class ModelSpec(StrictModel):
    """Network: a ``build_model`` name and its constructor arguments.

    pretrained: "default" = the shared ImageNet MobileNetV2 file (MobileNet models
    only), a path to such a file, or null for random initialisation.
    """

    name: str = "mobilenetv2_fc"
    pretrained: str | None = "default"
    kwargs: dict[str, Any] = Field(default_factory=dict)


class LossSpec(StrictModel):
    """kind:
    batch_hard      batch-hard triplet over P x K (seed 002), ``margin`` float or "soft"
    triplet         one random triplet per anchor of the P x K batch (seed 000), ``margin``
    contrastive     Siamese cost on balanced in-batch pairs (seed 001), ``contrastive_margin``;
                    with ``id_weight`` > 0 plus identification, and attribute heads weighted
                    by label entropy when ``attributes`` name index.csv columns (multi-task)
    identification  softmax over training identities
    (identification terms: ``label_smoothing`` eps; ``bnneck``: BatchNorm between embedding and
    classifier, Luo et al. "Bag of tricks"; batch_hard / identification engines)
    fusion          lambda * verification (2-way softmax on squared difference) + identification
                    of both images (seed 003, lambda = 3)
    """

    kind: Literal["batch_hard", "triplet", "contrastive", "identification", "fusion"] = "batch_hard"
    margin: float | Literal["soft"] = "soft"
    contrastive_margin: float = Field(2.0, gt=0)
    id_weight: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    bnneck: bool = False
    fusion_lambda: float = Field(3.0, ge=0)
    feature_dropout: float = Field(0.5, ge=0, lt=1)
    attributes: list[str] = Field(default_factory=list)


class SamplerSpec(StrictModel):
    """P identities x K crops per batch; several datasets: BH-switch or BH-merge (seed 002)."""

    p: int = Field(18, ge=1)
    k: int = Field(4, ge=1)
    multi_dataset: Literal["switch", "merge"] = "switch"
    batches_per_epoch: int | None = Field(None, ge=1)


class OptimSpec(StrictModel):
    name: Literal["adam", "sgd", "rmsprop"] = "adam"
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0)


class ScheduleSpec(StrictModel):
    """Learning rate per epoch.

    constant; exp_decay: constant until ``decay_start`` then exponential to ``final_lr``
    at the last epoch (seed 002); linear: from lr to ``final_lr`` (seed 001).
    ``warmup_epochs`` W: the factor is further multiplied by (e + 1) / (W + 1) for epochs e < W
    (linear warm-up, Luo et al. "Bag of tricks").
    """

    kind: Literal["constant", "exp_decay", "linear"] = "constant"
    decay_start: int = Field(0, ge=0)
    final_lr: float = Field(1e-7, gt=0)
    warmup_epochs: int = Field(0, ge=0)


class DatasetEntry(StrictModel):
    """One training dataset when it needs more than a path.

    format: its reader (null = ``data.format``); ``holdout_ids`` > 0 holds that many identities out
    as split "test" (seeded by ``holdout_seed``, identity-disjoint, the rest are "train"), e.g. the
    Market-1501 benchmark split: ``{path: .../bounding_box_train, format: market, holdout_ids: 250}``.
    ``val_ids`` > 0 then moves that many of the remaining training identities (seeded by ``holdout_seed``) to
    split "val": a validation split drawn from the training identities only, so that choices made on it never
    see a test identity (the "test" identities are the same with or without it).
    """

    path: str
    format: Literal["index", "market", "cuhk03", "cuhk01", "cameras", "mars"] | None = None
    holdout_ids: int = Field(0, ge=0)
    holdout_seed: int = 0
    val_ids: int = Field(0, ge=0)


class DataSpec(StrictModel):
    """Training data. ``datasets``: folder paths (read with ``format``) or :class:`DatasetEntry` objects;
    each dataset keeps its own identities (BH-switch batches come from one dataset each)."""

    datasets: list[str | DatasetEntry] = Field(default_factory=list, min_length=1)
    format: Literal["index", "market", "cuhk03", "cuhk01", "cameras", "mars"] = "index"
    train_split: str = "train"
    val_split: str | None = "val"
    val_min_gap: int = Field(25, ge=0)
    val_max_items: int = Field(600, ge=2)
    flip: bool = True
    random_crop: bool = True
    pad: int = Field(10, ge=0)
    color_jitter: float = Field(0.0, ge=0)
    # Probability of simulating a low-resolution camera (reid_models.transforms.RandomLowResolution): shrink
    # by s ~ U(low_resolution_min_scale, 1), enlarge back.
    low_resolution: float = Field(0.0, ge=0, le=1)
    low_resolution_min_scale: float = Field(0.25, gt=0, le=1)
    random_erasing: float = Field(0.0, ge=0, le=1)
    # Probability of turning a training crop to grayscale (reid_models.transforms.build_train_transform).
    grayscale: float = Field(0.0, ge=0, le=1)
    cache_images: bool = True
    num_workers: int = Field(0, ge=0)
    # Virtual identities: the upper part of one training identity's crop over the lower part of another's
    # (same dataset), each a class of its own with ``part_swap_crops`` crops (see reid_models/train_data.py).
    part_swap_ids: int = Field(0, ge=0)
    part_swap_crops: int = Field(40, ge=2)
    # Train on a seeded random subset of this many identities per dataset (null = all): for learning curves
    # ("how many identities does this need?", tools/bench_reid_curve.py).
    max_identities: int | None = Field(None, ge=2)
    subset_seed: int = 0

    def entries(self) -> list[DatasetEntry]:
        """Every dataset as a DatasetEntry with its format resolved."""
        out = []
        for d in self.datasets:
            e = DatasetEntry(path=d) if isinstance(d, str) else d
            out.append(e.model_copy(update={"format": e.format or self.format}))
        return out


class TransferSpec(StrictModel):
    """Seed 000 §4.2: copy the first ``l_t`` layers from ``source`` (a checkpoint of the same
    architecture), Xavier-initialise the rest, update only the last ``l_u`` layers.
    ``source: null`` with l_t / l_u set: the model's own initialisation (e.g. ImageNet for the
    MobileNet models) plays the pre-trained model, e.g. ``l_t: 21, l_u: 5`` keeps all ImageNet
    layers and trains only the last 5. Both l_t and l_u null = no transfer step (all layers trained).
    ``keep_heads``: also copy the source's training heads (identification classifier, BNNeck, ...) instead of
    starting them at random, for a fine-tune on the classes the source was trained on (same data sets, same
    hold-out): a fresh classifier's large early gradients otherwise disturb the copied layers."""

    source: str | None = None
    l_t: int | None = Field(None, ge=0)
    l_u: int | None = Field(None, ge=0)
    keep_heads: bool = False


class AggregatorSpec(StrictModel):
    """For ``task: lstm``: train the LSTM tracklet aggregator on per-frame embeddings
    of the datasets' tracklets, computed once by ``encoder_checkpoint`` (null = the default).
    residual: mean pooling + a learned, zero-initialised gate times the LSTM's pooled output.
    chunks_per_id: 0 = batches of random chunks (seed 004); k > 0 = batches of batch_size // k identities with
    k chunks each (P x K, what a batch-hard loss needs). triplet_weight: adds that weight times a batch-hard
    soft-margin triplet loss over the batch's L2-normalised video and image features together, i.e. trains the
    space for the Euclidean retrieval that the pipeline and eval-reid use (seed 004's losses alone train it through
    a verification layer and a classifier). pooling: ``mean`` (seed 004: the mean of the LSTM outputs) or
    ``attention`` (the LSTM scores each frame; the result is the weighted mean of the frame embeddings,
    :class:`reid_models.aggregation.LSTMNet`). contaminate: the share of training chunks whose last frames
    (1 to a third of them) are replaced by another identity's, labels unchanged: a tracker's identity switch,
    which is what a tracklet aggregator meets and mean pooling cannot discount; contaminate_where: ``tail`` or
    ``anywhere`` (a block of consecutive frames at a random place). bidirectional: attention pooling scores each
    frame from the frames on both sides."""

    encoder_checkpoint: str | None = None
    hidden_dim: int | None = Field(None, ge=1)
    residual: bool = False
    max_len: int = Field(16, ge=2)
    min_len: int = Field(2, ge=1)
    batch_size: int = Field(32, ge=2)
    chunks_per_id: int = Field(0, ge=0)
    triplet_weight: float = Field(0.0, ge=0)
    pooling: Literal["mean", "attention"] = "mean"
    contaminate: float = Field(0.0, ge=0.0, le=1.0)
    contaminate_where: Literal["tail", "anywhere"] = "tail"
    bidirectional: bool = False

    @model_validator(mode="after")
    def _check_lengths(self) -> "AggregatorSpec":
        if self.min_len > self.max_len:
            raise ValueError(f"aggregator.min_len {self.min_len} is above aggregator.max_len {self.max_len}: "
                             "no chunk of at most max_len frames can have min_len frames")
        return self


def input_size_error(value: Any) -> str | None:
    """Why ``value`` is not a valid ``model.kwargs.input_size`` ([height, width], two positive integers), or None."""
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value))
    return None if ok else f"model.kwargs.input_size: expected [height, width] (two positive integers), got {value!r}"


#: Keys of a stored training config that may differ when a run is resumed: they do not change what the next
#: epochs compute (``epochs``: extending a run is legitimate; the rest: where and how fast it runs).
RESUME_FREE_KEYS = ("name", "epochs", "device", "threads", "output_dir", "eval_every", "channels_last",
                    "data.num_workers", "data.cache_images")


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: d}


def resume_differences(stored: dict[str, Any], current: "TrainConfig") -> list[tuple[str, Any, Any]]:
    """(dotted key, stored value, current value) for every setting that defines a run (model, loss, sampler,
    optim, schedule, data, transfer, distill, aggregator, seed, task) and differs between a checkpoint's
    stored config and ``current``; keys missing from an older checkpoint count as their defaults."""
    new = _flat(current.model_dump(mode="json"))
    old = _flat(stored or {})
    defaults = _flat(TrainConfig(data=current.data).model_dump(mode="json"))
    free = lambda k: any(k == f or k.startswith(f + ".") for f in RESUME_FREE_KEYS)  # noqa: E731
    diffs = []
    for key in sorted(set(new) | set(old)):
        if free(key) or key not in new:  # a key this version no longer has cannot change what it computes
            continue
        before = old[key] if key in old else defaults.get(key)
        if before != new[key]:
            diffs.append((key, before, new[key]))
    return diffs


class DistillSpec(StrictModel):
    """Knowledge distillation (FastReID's ``projects/FastDistill``): a frozen ``teacher`` checkpoint embeds the
    same augmented batch at its own input size and the student also minimises ``weight`` times
    :func:`reid_models.losses.distillation` of ``kind``. When the sizes differ the batch is made at the
    teacher's size and shrunk (antialiased) for the student, so a fast 128x64 student learns from a 256x128
    teacher what the teacher sees. ``teacher: null`` = no distillation."""

    teacher: str | None = None
    weight: float = Field(1.0, ge=0)
    kind: Literal["feature", "relation"] = "feature"


class TrainConfig(StrictModel):
    """One training run (``reid-pipeline train --config ...``)."""

    name: str = "reid"
    task: Literal["image", "lstm"] = "image"
    model: ModelSpec = Field(default_factory=ModelSpec)
    loss: LossSpec = Field(default_factory=LossSpec)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    optim: OptimSpec = Field(default_factory=OptimSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    data: DataSpec
    transfer: TransferSpec = Field(default_factory=TransferSpec)
    aggregator: AggregatorSpec = Field(default_factory=AggregatorSpec)
    distill: DistillSpec = Field(default_factory=DistillSpec)
    epochs: int = Field(10, ge=1)
    seed: int = 0
    device: str = "auto"
    threads: int | None = Field(None, ge=1)
    output_dir: str = "runs/reid"
    eval_every: int = Field(1, ge=1)
    #: train the network and its input batches in the NHWC memory format: same results up to float rounding;
    #: on a 2-core CPU the BatchNorm MobileNetV2 step went 0.68-0.85 -> 0.59 s, no gain with IBN (its
    #: instance-norm half needs NCHW), so it is a per-config choice (docs/reid_models.md)
    channels_last: bool = False

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        t = self.transfer
        if (t.l_t is None) != (t.l_u is None):
            raise ValueError("transfer: give both l_t and l_u, or neither")
        if t.keep_heads and not t.source:
            raise ValueError("transfer.keep_heads: needs transfer.source (a checkpoint saved with its heads)")
        if self.loss.kind in ("batch_hard", "triplet", "contrastive", "fusion") and self.sampler.k < 2:
            raise ValueError(f"sampler.k must be >= 2 for loss {self.loss.kind}")
        # a batch of one identity has no negative: triplet / contrastive / fusion pairs then give a NaN loss,
        # and the batch-hard triplet term is 0 for every anchor (nothing learnt from it)
        if self.task == "image" and self.loss.kind in ("batch_hard", "triplet", "contrastive", "fusion") \
                and self.sampler.p < 2:
            raise ValueError(f"sampler.p must be >= 2 for loss {self.loss.kind} (a batch of one identity has "
                             "no negative pair)")
        if "input_size" in self.model.kwargs:
            err = input_size_error(self.model.kwargs["input_size"])
            if err:
                raise ValueError(err)
        if self.data.part_swap_ids and self.loss.attributes:
            raise ValueError("data.part_swap_ids cannot be combined with attribute heads (loss.attributes): "
                             "virtual identities have no attribute labels")
        if self.distill.teacher and self.task != "image":
            raise ValueError("distill.teacher: distillation trains image models (task: image) only")
        return self
