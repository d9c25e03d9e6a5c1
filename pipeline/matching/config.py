"""Configuration of the cross-camera matcher (validated once, at the entry point).

Distances are cosine distances ``1 - cos`` in [0, 2] between L2-normalised
vectors; times are seconds on the common clock of all cameras.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.core.configio import StrictModel
from pipeline.core.errors import ConfigError


class TransitLink(StrictModel):
    """Cameras ``a`` and ``b`` are adjacent: a person leaving one appears in the other
    between ``min_s`` and ``max_s`` seconds later (both directions unless ``bidirectional`` is false)."""

    a: str
    b: str
    min_s: float = Field(0.0, ge=0.0)
    max_s: float = Field(120.0, gt=0.0)
    bidirectional: bool = True

    @model_validator(mode="after")
    def _check_window(self) -> TransitLink:
        if self.max_s < self.min_s:
            raise ValueError(f"max_s ({self.max_s}) < min_s ({self.min_s})")
        return self


class TopologyConfig(StrictModel):
    """Camera adjacency with transit-time windows.

    non_adjacent: what a hand-over between two cameras without a link gets;
    outside_window: what a transit time outside [min_s, max_s] gets.
    "forbid" = no match; "penalize" = ``penalty`` added to the distance.
    """

    links: list[TransitLink] = Field(default_factory=list)
    non_adjacent: Literal["forbid", "penalize"] = "forbid"
    outside_window: Literal["forbid", "penalize"] = "forbid"
    penalty: float = Field(0.1, ge=0.0)

    @model_validator(mode="after")
    def _one_window_per_direction(self) -> TopologyConfig:
        """Each direction between two cameras has one window: a link of a camera to itself, or a second link
        covering a direction already covered (the matcher would keep one of them per direction, silently), is
        refused. ``a -> b`` and ``b -> a`` with ``bidirectional: false`` are two directions."""
        covered: dict[tuple[str, str], int] = {}
        for i, link in enumerate(self.links):
            if link.a == link.b:
                raise ValueError(f"links.{i} links camera {link.a!r} to itself (a re-entry in one camera never"
                                 " consults the topology; matching.reentry_max_gap_s bounds it)")
            for edge in [(link.a, link.b)] + ([(link.b, link.a)] if link.bidirectional else []):
                if edge in covered:
                    raise ValueError(f"links.{i} ({link.a} -> {link.b}) repeats the direction {edge[0]} -> {edge[1]}"
                                     f" of links.{covered[edge]}: give one window per direction")
                covered[edge] = i
        return self


class AutoThresholdConfig(StrictModel):
    """Label-free threshold calibration (:mod:`pipeline.matching.calibration`).

    false_match_rate: the threshold is this quantile of the distances between
        tracklets and identities known to be different people (seen at the same
        time in one camera, or in two non-overlapping cameras).
    reference_identities: the gallery size ``false_match_rate`` is meant for. A person not yet in
        the gallery is compared with every identity in it, so with G identities the chance that one
        of them falls within the threshold grows about G-fold (a union bound over G comparisons).
        With more than ``reference_identities`` identities the quantile taken is
        ``false_match_rate * reference_identities / G`` (G: :meth:`CrossCameraMatcher.gallery_size`,
        memory and pager), which keeps that chance about constant as the gallery grows; smaller
        galleries use ``false_match_rate`` itself. null: ``false_match_rate`` at any size (the rule
        before 2026-12-07). Below ``1 / max_negatives`` the quantile is the smallest kept sample.
    min_negatives: samples needed before the calibrated value is used.
    warmup: until then, "no-link" (the default: fresh tracklets open new identities, continuations
        of a track keep theirs; with revision on, the window's re-solve links them once the
        calibration has its samples) or "threshold" (the fixed ``threshold``, an uncalibrated scale).
        A restarted run continues the stored calibration, so it does not go through the warm-up.
    max_negatives: the most recent samples kept (the estimate follows the scene).
    min_threshold / max_threshold: bounds of the calibrated value.
    sample_interval_s: with the ANN index in force (a large gallery, typically many cameras and a high
        tracklet rate) and ``max_negatives`` samples held, the known-different pairs are sampled in at most
        one matcher call per this many seconds of stream time (0: every call). At 1,000 tracklets/s a call
        comes every ~20 ms and sampling every call was a fifth of the matcher's CPU, while the kept samples
        are still renewed within seconds. Until the calibration is full, and below the index (every
        gallery that fits in memory), every call samples.
    """

    false_match_rate: float = Field(0.02, gt=0.0, lt=0.5)
    reference_identities: int | None = Field(50, ge=1)
    min_negatives: int = Field(50, ge=1)
    warmup: Literal["threshold", "no-link"] = "no-link"
    max_negatives: int = Field(5000, ge=10)
    min_threshold: float = Field(0.0, ge=0.0, le=2.0)
    max_threshold: float = Field(2.0, ge=0.0, le=2.0)
    sample_interval_s: float = Field(1.0, ge=0.0)

    @model_validator(mode="after")
    def _check_bounds(self) -> AutoThresholdConfig:
        if self.max_threshold < self.min_threshold:
            raise ValueError(f"max_threshold ({self.max_threshold}) < min_threshold ({self.min_threshold})")
        return self


class ReviseConfig(StrictModel):
    """Revisable online identities (:mod:`pipeline.matching.revise`).

    enabled: tracklets that ended within the last ``window_s`` seconds (matcher clock) are tentative;
        every matcher call re-solves their assignment (to the settled identities and to each other)
        under the same space-time constraints; older tracklets are settled and never move again.
    window_s: the tentative window; the default equals the default transit window of a camera link
        (``TransitLink.max_s`` 120 s): evidence that a person went from one camera to another arrives
        within that time, so a decision that old has seen what could revise it.
    max_tracklets: at most this many tentative tracklets (the oldest settle early beyond it): the
        re-solve costs O(N^2 log N) in the window's tracklets N.
    incremental: re-solve only the part of the window a call can change: the connected components of
        the candidate graph (tentative tracklets linked within the window's threshold, to the identities
        they belong to and to their candidate identities) that hold a new or longer tracklet or an
        identity whose settled part changed. The other components keep their ids. The same result as
        re-solving the whole window while the threshold does not move between calls (average linkage
        never joins clusters of two components); ``false``: the whole window every call.
    threshold_tolerance: with ``incremental``, the whole window is re-solved when the re-solve's
        (calibrated) threshold has moved by more than this since the last whole re-solve, so no
        component keeps clusters made under a threshold further than this from the one in force.
    settled_candidates: with the ANN index in force, each tentative tracklet brings at most this many
        settled identities into the re-solve and the candidate graph: its nearest index candidates within
        the loosest threshold (plus the identity it belongs to). None (the default): all of them. A scale
        option (configs/scale.example.yaml): it bounds the re-solve by the window, not by how many
        identities a calibrated threshold admits in a large gallery.
    hysteresis: a dead band against flip-flops, as a fraction of the re-solve's threshold. The calibrated
        threshold moves a little with every new sample, and a tracklet whose distance to its identity sits at
        the threshold would leave and rejoin it with each move (each time a ``split`` and a ``merge`` event).
        The re-solve therefore counts the distances between a tentative tracklet and the members (and settled
        part) of the identity it belongs to now as ``hysteresis * threshold`` shorter: it leaves only when it
        is that much beyond the threshold, and others join by the plain rule. Reported distances are the
        real ones. 0 (the default): no dead band, each re-solve depends on the distances and the threshold
        alone. Measured at 0.1 (docs/pipeline.md, "Revision churn"): about half the merge / split events on
        the PETS layouts, for 0.1-1.7 points of global IDF1 there; an option for operators who want fewer
        revision events, not the default.
    announce_after_s: a revision is *announced* (the ``merge`` / ``split`` event in events.jsonl, the store's
        events feed and MQTT) only once the moved track has kept its new id for this many seconds of the
        matcher's clock; a track that returns to the id last announced for it before then is never announced,
        and a -> b -> c within the delay is announced as a -> c (:mod:`pipeline.runner.announce`). The store's
        assignments and its ``identity_changes`` history still follow every re-solve at once, and the decisions
        do not change: only the notifications wait. The end of a run announces whatever still waits. 0: every
        revision is announced when it is made.
    """

    enabled: bool = True
    window_s: float = Field(120.0, gt=0.0)
    max_tracklets: int = Field(200, ge=2)
    incremental: bool = True
    threshold_tolerance: float = Field(0.0, ge=0.0)
    settled_candidates: int | None = Field(None, ge=1)
    hysteresis: float = Field(0.0, ge=0.0, lt=1.0)
    announce_after_s: float = Field(30.0, ge=0.0)


class IndexConfig(StrictModel):
    """Nearest-identity search at scale (:mod:`pipeline.matching.gallery_index`, docs/gallery.md).

    kind: "exact" (every in-memory identity is a candidate; beyond ``max_gallery`` identities are
        dropped: the matcher as it always was), "faiss" (a faiss IVF-PQ index over every identity,
        in memory or paged out to the store, proposes ``candidates`` identities per tracklet once the
        gallery holds ``min_gallery`` identities; below that every in-memory identity is a candidate,
        as with "exact") or "auto" (= "faiss" when faiss-cpu is installed, else "exact"). The index only
        proposes: distances, thresholds and every space-time constraint are computed exactly on the
        candidates' full-precision prototypes.
    min_gallery: the gallery size (in memory + paged out) from which the index is searched. With the identity
        store attached (the runner) the index is also built as soon as the gallery exceeds ``max_gallery``
        (at least 256 identities): the identities beyond it are paged out and only the index finds them again
        (2026-12-08; before, they could not be matched until the gallery reached ``min_gallery``).
    candidates: identities the index proposes per tracklet (re-ranked exactly).
    nlist / pq_m / nprobe: IVF cells (0: about sqrt(gallery size) at training, 64..4096, at most the training sample / 39), PQ bytes per
        identity (must divide the embedding dimension, or ``pca_dim``), cells visited per search.
    pca_dim: null (codes of the full embedding, inner product) or the dimension a PCA fitted at training
        reduces prototypes to before the IVF-PQ (L2 on unit vectors; the candidates are still re-ranked
        on full prototypes): cheaper searches and re-encodes (docs/gallery.md, "PCA before the index").
    train_size: at most this many prototypes train the index (a random sample of the gallery).
    cache_size: identities the store's pager keeps in RAM beyond the hot set (``max_gallery``): whole
        identities (prototype + spans, ~5.5 KB at 1280-d) paged out or read, and prototypes read for the
        re-rank, each an LRU of this size (:class:`~pipeline.store.prototypes.PrototypeTable`). The candidates
        a tracklet re-ranks come back from it without SQLite; a gallery that fits in it is never read twice.
    warm_cache: at start, fill that LRU with the store's most recently seen identities beyond the hot set
        (:meth:`~pipeline.store.prototypes.PrototypeTable.warm`: the rows a later read would read, so no
        decision changes), so a restarted deployment does not read its candidates from SQLite one call at a
        time while the cache refills. Nothing to load when the store fits in ``max_gallery``.
    """

    kind: Literal["auto", "exact", "faiss"] = "auto"
    min_gallery: int = Field(20000, ge=0)
    candidates: int = Field(32, ge=1)
    nlist: int = Field(0, ge=0)
    pq_m: int = Field(64, ge=1)
    pca_dim: int | None = Field(None, ge=1)
    nprobe: int = Field(16, ge=1)
    train_size: int = Field(65536, ge=256)
    cache_size: int = Field(20000, ge=0)
    warm_cache: bool = True

    @model_validator(mode="after")
    def _pq_m_divides_pca_dim(self) -> IndexConfig:
        if self.pca_dim is not None and self.pca_dim % self.pq_m:
            raise ValueError(f"pq_m ({self.pq_m}) must divide pca_dim ({self.pca_dim})")
        return self


#: fewest prototypes that train the index (PQ codebooks have 256 centroids; pipeline.matching.paging)
MIN_INDEX_TRAIN = 256


def first_training_size(index: IndexConfig, max_gallery: int) -> int:
    """The fewest prototypes the index can be first trained on: it is built once the gallery reaches
    ``min_gallery``, or exceeds ``max_gallery`` with the identity store as pager (paging needs it), and never
    below :data:`MIN_INDEX_TRAIN`; at most ``train_size`` of them train it."""
    return min(index.train_size, max(MIN_INDEX_TRAIN, min(index.min_gallery, max_gallery + 1)))


def check_index_dims(index: IndexConfig, dim: int) -> None:
    """``matching.index.pca_dim`` / ``pq_m`` against the encoder's embedding dimension ``dim`` (known once the
    encoder, or the store's first prototype, is): a one-line :class:`ConfigError` naming the key at start, not
    a traceback when the index is first trained (possibly days into a deployment)."""
    if index.pca_dim is not None and not 0 < index.pca_dim < dim:
        raise ConfigError(f"matching.index.pca_dim ({index.pca_dim}) must be below the embedding dimension ({dim})")
    coded = index.pca_dim or dim
    if coded % index.pq_m:
        what = f"matching.index.pca_dim ({coded})" if index.pca_dim else f"the embedding dimension ({dim})"
        raise ConfigError(f"matching.index.pq_m ({index.pq_m}) must divide {what}")


class MatcherConfig(StrictModel):
    """Thresholds and constraints of :class:`pipeline.matching.matcher.CrossCameraMatcher`.

    threshold: max cosine distance tracklet <-> identity prototype for a match
        (with ``auto_threshold``: only during its warm-up, when ``warmup: threshold``).
    auto_threshold: calibrate the threshold on the deployed cameras without labels
        (on by default; ``null`` = always use ``threshold``).
    reentry_threshold / reentry_max_gap_s: the same for a person re-entering
        the camera where they were last seen (None = ``threshold`` / no limit).
    momentum: prototype EMA weight of the old prototype (p = m p + (1-m) v, renormalised).
    max_gallery / ttl_s: gallery ageing; identities unseen for ``ttl_s`` seconds
        (matcher clock = latest tracklet end) or beyond ``max_gallery`` (oldest
        first) leave the in-memory gallery (they stay in the store).
    overlapping_cameras: groups of cameras whose views overlap; only between
        those may one identity be seen in two cameras at the same time.
    time_slack_s: two tracklets overlap in time when they share at least this
        many seconds (0: any common instant).
    max_spans: recent member spans kept per identity for the constraints.
    topology: optional adjacency and transit-time windows.
    revise: the sliding-window re-solve that makes recent decisions revisable (merge / split).
    index: nearest-identity search at scale (:class:`IndexConfig`). With an index in force and the
        identity store attached as the matcher's pager, ``max_gallery`` bounds only the identities held
        in memory: older ones are paged out to the store and paged back in when the index proposes them.
    """

    threshold: float = Field(0.35, ge=0.0, le=2.0)
    auto_threshold: AutoThresholdConfig | None = Field(default_factory=AutoThresholdConfig)
    reentry_threshold: float | None = Field(None, ge=0.0, le=2.0)
    reentry_max_gap_s: float | None = Field(None, gt=0.0)
    momentum: float = Field(0.8, ge=0.0, lt=1.0)
    max_gallery: int = Field(5000, ge=1)
    ttl_s: float | None = Field(3600.0, gt=0.0)
    overlapping_cameras: list[list[str]] = Field(default_factory=list)
    time_slack_s: float = Field(0.0, ge=0.0)
    max_spans: int = Field(16, ge=1)
    topology: TopologyConfig | None = None
    revise: ReviseConfig = Field(default_factory=ReviseConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)

    @model_validator(mode="after")
    def _nlist_fits_first_training(self) -> MatcherConfig:
        """A fixed ``index.nlist`` needs at least that many prototypes to train on (checked here, not when the
        index is first trained: with the defaults that is when the store reaches 20,000 identities)."""
        first = first_training_size(self.index, self.max_gallery)
        if self.index.nlist > first:
            raise ValueError(f"index.nlist ({self.index.nlist}) must be <= {first}, the prototypes the index is first "
                             f"trained on (min(index.train_size, max({MIN_INDEX_TRAIN}, min(index.min_gallery, "
                             "max_gallery + 1)))); lower it (0: sized to the gallery) or raise index.min_gallery "
                             "and max_gallery")
        return self

    @model_validator(mode="after")
    def _overlap_groups_declare_pairs(self) -> MatcherConfig:
        """Each overlapping_cameras group names two or more different cameras (``[[left, left]]`` for
        ``[[left, right]]`` would leave the real overlap undeclared, silently)."""
        for i, group in enumerate(self.overlapping_cameras):
            if len(set(group)) < 2:
                raise ValueError(f"overlapping_cameras.{i} ({group}) must name two or more different cameras")
        return self
