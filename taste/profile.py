"""A shopper's taste, learned from their events: clusters, attribute affinities, dislikes.

Why this shape (after Pinterest's PinnerSage and Stitch Fix's thumbs-down):

* One vector per shopper averages two styles into a third nobody wants, so
  the engaged items are grouped into a few **taste clusters**, each
  represented by a real item (its weighted medoid, so retrieval queries
  with a real catalog vector) and an **importance** (its share of the
  shopper's decayed positive weight).
* Each event weighs by its kind (``KIND_WEIGHTS``: a view counts less than
  a click, a like or save more, a purchase most, a dislike negative) and
  by its age (``0.5 ** (age / half_life)``). Exponential decay keeps the
  *ratios* between events fixed as time passes, and every number the model
  uses is a ratio (importances, affinities), so a cached profile never goes
  stale by the clock, only by new events.
* **Attribute affinities** (group, type, color) in -1..1 carry what the
  embedding does not: "never red" or "mostly denim".
* **Dislikes** keep their item vectors: the recommender drops the item and
  pushes its near-duplicates out.

``ProfileCache`` keeps one profile per user and folds in only the events
newer than the cached state; a user whose stored events no longer start
with the cached ones (forgotten, or rewritten) is rebuilt from scratch, and
one with no events has no cache entry.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable, Sequence

import numpy as np

from eyepic.schema import Item
from taste.events import Event, EventStore

# How much one event of each kind says about taste; negative: "less like this".
KIND_WEIGHTS: dict[str, float] = {
    "view": 0.25, "click": 1.0, "like": 3.0, "save": 3.0, "purchase": 5.0, "dislike": -4.0,
}
ATTRIBUTES = ("group", "type", "color")
# An explicit verdict; the latest one on an item decides whether it is disliked.
VERDICTS = {"like", "save", "purchase", "dislike"}


@dataclasses.dataclass(frozen=True)
class TasteParams:
    """The knobs of the taste model (``eyepic.settings.Settings.taste_params`` builds them)."""

    half_life_s: float = 30 * 86400.0
    max_clusters: int = 5
    # A new cluster starts at an item less similar than this to every medoid so far; similarity is
    # (1 - color_weight) * cosine + color_weight * [same color]: the catalog embedding separates types
    # far better than colors, and "blue t-shirts" and "brown t-shirts" are two tastes.
    cluster_similarity: float = 0.7
    color_weight: float = 0.35
    min_importance: float = 0.02  # clusters lighter than this are dropped
    max_items: int = 200  # the heaviest engaged items the clusters are built from


@dataclasses.dataclass(frozen=True)
class TasteCluster:
    """One style a shopper likes: a real item stands for it."""

    id: int
    medoid: Item
    importance: float  # share of the positive weight, clusters sum to 1
    size: int  # engaged items in the cluster
    # attribute -> value -> share of the cluster's weight: "black jeans" and "white tops" stay apart
    # (global affinities would lift black tops too)
    affinities: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)

    @property
    def vector(self) -> np.ndarray:
        return self.medoid.embedding


@dataclasses.dataclass(frozen=True)
class TasteProfile:
    """What the recommender needs to know about one shopper."""

    user_id: str
    clusters: tuple[TasteCluster, ...]
    affinities: dict[str, dict[str, float]]  # attribute -> value -> -1..1
    engaged: frozenset[str]  # item ids with any event: never recommended again
    engaged_products: frozenset[str]
    disliked: tuple[Item, ...]  # items whose latest verdict is a dislike
    events: int  # how many events this profile has seen

    @property
    def personal(self) -> bool:
        return bool(self.clusters)

    def dislike_matrix(self) -> np.ndarray:
        """The disliked items' vectors as rows (0 rows when none)."""
        if not self.disliked:
            return np.zeros((0, 0), dtype=np.float32)
        return normalise(np.stack([d.embedding for d in self.disliked]))

    def affinity(self, item: Item, cluster: TasteCluster | None = None) -> float:
        """Mean attribute affinity of an item, -1..1: the cluster's positive ones (or, without a
        cluster, the shopper's), plus the shopper's negative ones (what they dislike)."""
        total = 0.0
        for a in ATTRIBUTES:
            value = getattr(item, a)
            overall = self.affinities.get(a, {}).get(value, 0.0)
            total += min(overall, 0.0)
            total += cluster.affinities.get(a, {}).get(value, 0.0) if cluster is not None else max(overall, 0.0)
        return total / len(ATTRIBUTES)


def normalise(vector: np.ndarray) -> np.ndarray:
    """L2-normalised float32 rows (the index's own rule; the stages do not import each other)."""
    v = np.asarray(vector, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def empty_profile(user_id: str) -> TasteProfile:
    return TasteProfile(user_id, (), {}, frozenset(), frozenset(), (), 0)


ItemLookup = Callable[[str], "Item | None"]


@dataclasses.dataclass
class _State:
    """The running sums a profile is derived from (what incremental updates add to)."""

    first_event_id: str = ""
    count: int = 0
    last_event_id: str = ""
    reference_at: float = 0.0  # weights are relative to this moment (decay ratios are timeless)
    weights: dict[str, float] = dataclasses.field(default_factory=dict)  # item id -> signed decayed weight
    verdicts: dict[str, tuple[float, str]] = dataclasses.field(default_factory=dict)  # item id -> (at, kind)


class TasteModel:
    """Builds profiles from events; ``lookup`` resolves item ids to catalog items (``Index.get``)."""

    def __init__(self, lookup: ItemLookup, params: TasteParams | None = None, item_cache: int = 50_000):
        self.lookup = lookup
        self.params = params or TasteParams()
        self._items: collections.OrderedDict[str, Item | None] = collections.OrderedDict()
        self._item_cache = item_cache
        self._lock = threading.Lock()

    # -- items ----------------------------------------------------------
    def item(self, item_id: str) -> Item | None:
        """The catalog item (cached: an item's vector changes only on re-index with another model)."""
        with self._lock:
            if item_id in self._items:
                self._items.move_to_end(item_id)
                return self._items[item_id]
        item = self.lookup(item_id)
        with self._lock:
            self._items[item_id] = item
            while len(self._items) > self._item_cache:
                self._items.popitem(last=False)
        return item

    # -- state ----------------------------------------------------------
    def fold(self, state: _State, events: Sequence[Event]) -> _State:
        """Add events (oldest first) to the running sums."""
        for event in events:
            if not state.count:
                state.first_event_id = event.event_id
                state.reference_at = event.at
            exponent = (event.at - state.reference_at) / self.params.half_life_s
            if exponent > 500:  # keep the numbers finite: rebase every weight to this event
                scale = 0.5 ** exponent
                state.weights = {k: v * scale for k, v in state.weights.items()}
                state.reference_at, exponent = event.at, 0.0
            weight = KIND_WEIGHTS[event.kind] * 2.0 ** exponent
            state.weights[event.item_id] = state.weights.get(event.item_id, 0.0) + weight
            if event.kind in VERDICTS:
                state.verdicts[event.item_id] = (event.at, event.kind)
            state.count += 1
            state.last_event_id = event.event_id
        return state

    def profile(self, user_id: str, state: _State) -> TasteProfile:
        """The profile the running sums describe (clusters recomputed: cheap at <= max_items)."""
        if not state.count:
            return empty_profile(user_id)
        disliked_ids = {i for i, (_, kind) in state.verdicts.items() if kind == "dislike"}
        items = {i: self.item(i) for i in state.weights}
        known = {i: it for i, it in items.items() if it is not None}
        positive = sorted(((w, i) for i, w in state.weights.items()
                           if w > 0 and i in known and i not in disliked_ids), reverse=True)
        positive = positive[: self.params.max_items]
        clusters = self._clusters([known[i] for _, i in positive], np.array([w for w, _ in positive]))
        return TasteProfile(
            user_id=user_id,
            clusters=tuple(clusters),
            affinities=self._affinities(state.weights, known),
            engaged=frozenset(state.weights),
            engaged_products=frozenset(it.product_id for it in known.values()),
            disliked=tuple(known[i] for i in sorted(disliked_ids) if i in known),
            events=state.count,
        )

    def build(self, user_id: str, events: Sequence[Event]) -> TasteProfile:
        """A profile from scratch."""
        return self.profile(user_id, self.fold(_State(), events))

    # -- the model --------------------------------------------------------
    def _clusters(self, items: list[Item], weights: np.ndarray) -> list[TasteCluster]:
        """Weighted k-medoids on cosine (plus color agreement); the count by a threshold rule.

        Seeds greedily (farthest-first from the heaviest item) while some item
        is less similar than ``cluster_similarity`` to every medoid so far, up
        to ``max_clusters``; then two rounds of assign -> weighted medoid.
        """
        if not items:
            return []
        vectors = normalise(np.stack([it.embedding for it in items]))
        colors = np.array([it.color for it in items], dtype=object)
        same_color = (colors[:, None] == colors[None, :]).astype(np.float32)
        w = self.params.color_weight
        # Rounded, so near-ties (two liked photos of equal weight) break by the items' fixed order and not
        # by float noise: Elasticsearch hands back vectors a few ulps off the embedded index's.
        sims = np.round((1 - w) * (vectors @ vectors.T) + w * same_color, 4)
        medoids = [0]
        while len(medoids) < self.params.max_clusters:
            nearest = sims[:, medoids].max(axis=1)
            candidate = int(np.argmin(nearest - 1e-6 * weights))  # ties: the heavier item
            if nearest[candidate] >= self.params.cluster_similarity:
                break
            medoids.append(candidate)
        for _ in range(2):
            assign = np.argmax(sims[:, medoids], axis=1)
            new = []
            for c in range(len(medoids)):
                members = np.flatnonzero(assign == c)
                if len(members) == 0:
                    new.append(medoids[c])
                    continue
                within = sims[np.ix_(members, members)] @ weights[members]
                new.append(int(members[np.argmax(within)]))
            medoids = new
        assign = np.argmax(sims[:, medoids], axis=1)
        total = float(weights.sum())
        raw = [(float(weights[assign == c].sum()) / total, c) for c in range(len(medoids))]
        kept = [(imp, c) for imp, c in raw if imp >= self.params.min_importance] or [max(raw)]
        norm = sum(imp for imp, _ in kept)
        kept.sort(key=lambda pair: -pair[0])
        return [TasteCluster(id=n, medoid=items[medoids[c]], importance=imp / norm, size=int((assign == c).sum()),
                             affinities=self._affinities({items[i].id: float(weights[i])
                                                          for i in np.flatnonzero(assign == c)},
                                                         {it.id: it for it in items}))
                for n, (imp, c) in enumerate(kept)]

    @staticmethod
    def _affinities(weights: dict[str, float], items: dict[str, Item]) -> dict[str, dict[str, float]]:
        """Per attribute value: its signed weight over all the weight, -1..1."""
        total = sum(abs(w) for i, w in weights.items() if i in items)
        out: dict[str, dict[str, float]] = {a: {} for a in ATTRIBUTES}
        if total <= 0:
            return out
        for item_id, weight in weights.items():
            item = items.get(item_id)
            if item is None:
                continue
            for attribute in ATTRIBUTES:
                value = getattr(item, attribute)
                out[attribute][value] = out[attribute].get(value, 0.0) + weight / total
        return out


class ProfileCache:
    """One profile per user, updated from the events newer than the cached state.

    Each read lists the user's events (the store is the truth) and compares
    them with the cached state: the same count and last event id -> the
    cached profile; more events that begin with the cached ones -> fold in
    only the new ones; anything else (forgotten, rewritten) -> rebuild. A
    user with no events leaves no entry. At most ``size`` users are held.
    """

    def __init__(self, model: TasteModel, store: EventStore, size: int = 10_000):
        self.model = model
        self.store = store
        self.size = size
        self._entries: collections.OrderedDict[str, tuple[_State, TasteProfile]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, user_id: str) -> TasteProfile:
        events = self.store.events(user_id)
        if not events:
            self.forget(user_id)
            return empty_profile(user_id)
        with self._lock:
            cached = self._entries.get(user_id)
        if cached is not None:
            state, profile = cached
            n = state.count
            if (len(events) >= n and events[0].event_id == state.first_event_id
                    and events[n - 1].event_id == state.last_event_id):
                if len(events) == n:
                    with self._lock:
                        self._entries.move_to_end(user_id)
                    return profile
                state = dataclasses.replace(state, weights=dict(state.weights), verdicts=dict(state.verdicts))
                state = self.model.fold(state, events[n:])
            else:
                state = self.model.fold(_State(), events)
        else:
            state = self.model.fold(_State(), events)
        profile = self.model.profile(user_id, state)
        with self._lock:
            self._entries[user_id] = (state, profile)
            self._entries.move_to_end(user_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return profile

    def forget(self, user_id: str) -> None:
        """Drop the user's cached profile (the store's ``forget`` is the caller's job)."""
        with self._lock:
            self._entries.pop(user_id, None)

    def __contains__(self, user_id: str) -> bool:
        with self._lock:
            return user_id in self._entries

