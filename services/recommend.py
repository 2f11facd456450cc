"""The recommendations and personalized-search use cases, written once for both APIs.

``recommend``: one kNN per taste cluster (its medoid's vector, the request's
filters inside the query, engaged items excluded, one photo per product: the
index's own collapse; all of them in one ``Index.search_many`` round trip),
scored per cluster with its attribute affinities, items near a disliked one
pushed out; the list's slots are dealt to the clusters by importance and each
slot takes its cluster's best item by maximal marginal relevance, so one
style does not fill the page.
Each item says why ("because you liked ..."). A shopper without positive
taste yet gets the cold-start list: the most engaged items across shoppers,
filled up with a spread of the catalog (a typical item per type, in several
colors), marked ``personal: false`` with a note.

``personalize``: the same taste re-ranks search hits (disliked ones dropped).
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from eyepic.schema import Filters, Hit, Item
from eyepic.settings import Settings
from indexer.base import Index, KnnQuery, normalise
from services.events import USER_ID, USER_ID_RULE
from services.requests import InvalidRequest, Problems, parse_filters, parse_k
from services.search import SearchResult, SimilarResult
from taste.events import EventStore
from taste.profile import ATTRIBUTES, KIND_WEIGHTS, ProfileCache, TasteCluster, TasteModel, TasteParams, TasteProfile

COLD_START_NOTE = ("not personal yet: popular and varied items; like, save or buy a few and this list "
                   "learns your taste")
IMPORTANCE_BONUS = 0.15  # how much a cluster's importance lifts its items' relevance
DISLIKE_SOFT_FROM = 0.6  # below the hard cut, items this close to a dislike sink gradually
DISLIKE_SOFT_WEIGHT = 1.0
FOCUS_SHARE = 0.5  # a cluster whose type and color hold this share of its weight also asks for exactly them
MAX_FETCH = 500  # the widest per-cluster kNN when dislikes remove most candidates (2000: same quality, slower tail)
SPREAD_PER_TYPE = 24  # items fetched per type to find a typical one (cold start)
Query = TypeVar("Query")


@dataclasses.dataclass(frozen=True)
class RecommendQuery:
    user_id: str
    k: int
    filters: Filters


@dataclasses.dataclass(frozen=True)
class Recommendation:
    item: Item
    score: float  # relevance to the shopper's taste (cosine scale, boosts included)
    reason: str
    cluster: int | None  # the taste cluster it came from; None at cold start


@dataclasses.dataclass(frozen=True)
class RecommendResult:
    query: RecommendQuery
    personal: bool
    note: str  # empty when personal
    items: list[Recommendation]
    clusters: list[dict[str, object]]  # id, importance, item_id of each taste cluster


def parse_user_id(raw: str | None, problems: Problems, name: str = "user_id") -> str:
    """A shopper id, by the events API's rule (``services.events.USER_ID``), so every id a
    session or an event can carry can be asked for."""
    value = (raw or "").strip()
    if not USER_ID.fullmatch(value):
        problems.add(name, f"must be {USER_ID_RULE}")
    return value


def taste_params(settings: Settings) -> TasteParams:
    return TasteParams(half_life_s=settings.taste_half_life_days * 86400.0, max_clusters=settings.taste_max_clusters,
                       cluster_similarity=settings.taste_cluster_similarity)


class RecommendService:
    """Recommendations and personalization over one Index and one EventStore (shared by both APIs).

    Hold one per process: it caches profiles, item vectors and the cold-start lists.
    """

    def __init__(self, settings: Settings, index: Index, events: EventStore):
        self.settings = settings
        self.index = index
        self.events = events
        self.model = TasteModel(index.get, taste_params(settings))
        self.profiles = ProfileCache(self.model, events)
        self._lock = threading.Lock()
        self._popular: tuple[float, dict[str, float]] | None = None
        self._spread: dict[Filters, list[Item]] = {}
        self._dims = 0

    # -- validation -------------------------------------------------------
    def recommend_query(self, *, user_id: str | None, k: str | int | None,
                        filters: Mapping[str, Iterable[str]]) -> RecommendQuery:
        problems = Problems()
        uid = parse_user_id(user_id, problems)
        chosen_k = parse_k(k, self.settings.default_k, self.settings.max_k, problems)
        chosen_filters = parse_filters(filters, problems)
        problems.raise_if_any()
        return RecommendQuery(user_id=uid, k=chosen_k, filters=chosen_filters)

    def personalize_user(self, raw: str | None) -> str | None:
        """The ``personalize`` field of a search: absent -> None, else a valid shopper id."""
        if raw is None or not raw.strip():
            return None
        problems = Problems()
        uid = parse_user_id(raw, problems, name="personalize")
        problems.raise_if_any()
        return uid

    def with_personalize(self, validate: Callable[[], Query], raw: str | None) -> tuple[Query, str | None]:
        """A search or similar-items query and its ``personalize`` shopper, validated together:
        one InvalidRequest names every bad field of both."""
        problems: list = []
        user = None
        try:
            user = self.personalize_user(raw)
        except InvalidRequest as exc:
            problems = exc.problems
        try:
            query = validate()
        except InvalidRequest as exc:
            raise InvalidRequest([*exc.problems, *problems]) from None
        if problems:
            raise InvalidRequest(problems)
        return query, user

    # -- use cases --------------------------------------------------------
    def personalize_search(self, result: SearchResult, user_id: str | None) -> SearchResult:
        """Each garment's hits re-ranked by this shopper's taste (unchanged without one)."""
        if user_id is None:
            return result
        garments = [dataclasses.replace(g, hits=self.personalize(user_id, g.hits)) for g in result.garments]
        return dataclasses.replace(result, garments=garments)

    def personalize_similar(self, result: SimilarResult, user_id: str | None) -> SimilarResult:
        if user_id is None:
            return result
        return dataclasses.replace(result, hits=self.personalize(user_id, result.hits))

    def outfit_reranker(self, user_id: str, group: str, suggestions: list[Any]) -> list[Any]:
        """Complete-the-look's taste seam (``services.outfits.Reranker``): the suggestions of one
        partner group re-ranked by this shopper's taste, disliked ones dropped."""
        ranked = self.personalize(user_id, [Hit(item=s.item, score=s.score) for s in suggestions])
        by_id = {s.item.id: s for s in suggestions}
        return [by_id[h.item.id] for h in ranked]

    def profile(self, user_id: str) -> TasteProfile:
        return self.profiles.get(user_id)

    def recommend(self, query: RecommendQuery) -> RecommendResult:
        profile = self.profile(query.user_id)
        clusters = [{"id": c.id, "importance": round(c.importance, 4), "item_id": c.medoid.id}
                    for c in profile.clusters]
        if not profile.personal:
            items = self.cold_start(query.k, query.filters, profile)
            return RecommendResult(query, False, COLD_START_NOTE, items, clusters)
        return RecommendResult(query, True, "", self._personal(profile, query.k, query.filters), clusters)

    def personalize(self, user_id: str, hits: Sequence[Hit]) -> list[Hit]:
        """Search hits re-ranked by taste: disliked items and their near-duplicates dropped,
        then by the search score plus the taste's relevance (the returned scores stay the search's)."""
        profile = self.profile(user_id)
        if not profile.events or not hits:
            return list(hits)
        vectors = normalise(np.stack([h.item.embedding for h in hits]))
        keep = self._not_disliked(profile, [h.item for h in hits], vectors)
        taste = self._taste(profile, [h.item for h in hits], vectors)
        order = sorted((i for i in range(len(hits)) if keep[i]), key=lambda i: -(hits[i].score + taste[i]))
        return [hits[i] for i in order]

    # -- personal -----------------------------------------------------------
    def _personal(self, profile: TasteProfile, k: int, filters: Filters) -> list[Recommendation]:
        """Retrieve per cluster, then fill the list slot by slot: each slot belongs to a cluster
        (a smooth weighted round robin over the importances), which takes its best item by MMR."""
        items, vectors = self._candidates(profile, k, filters)
        if not items:
            return self.cold_start(k, filters, profile)
        relevance = self._per_cluster(profile, items, vectors)
        lam = self.settings.taste_mmr_lambda
        chosen: list[tuple[int, int]] = []
        products: set[str] = set()
        closest = np.full(len(items), -np.inf)
        usable = np.ones(len(items), dtype=bool)
        for c in _schedule([cl.importance for cl in profile.clusters], k):
            if not usable.any():
                break
            redundancy = np.where(np.isfinite(closest), closest, 0.0)
            gain = np.where(usable, lam * relevance[:, c] - (1 - lam) * redundancy, -np.inf)
            j = int(np.argmax(gain))
            chosen.append((j, c))
            products.add(items[j].product_id)
            usable &= np.array([it.product_id not in products for it in items])
            closest = np.maximum(closest, vectors @ vectors[j])
        out = []
        for j, c in chosen:
            cluster = profile.clusters[int(np.argmax(relevance[j]))]  # the reason: the cluster it fits best
            out.append(Recommendation(items[j], float(relevance[j, c]),
                                      f"because you liked {describe(cluster.medoid)}", cluster.id))
        return out

    def _candidates(self, profile: TasteProfile, k: int, filters: Filters) -> tuple[list[Item], np.ndarray]:
        """Each cluster's nearest items under the filters, engaged products and dislikes (and their
        near-duplicates) left out; the kNN widens while too few survive and the index has more."""
        exclude = sorted(profile.engaged)
        fetch = max(3 * k, 30)
        while True:
            queries = [KnnQuery(c.vector, fetch, filters) for c in profile.clusters]
            # and each cluster's own type and color: the embedding alone blurs colors
            queries += [KnnQuery(c.vector, max(k, 10), focused) for c in profile.clusters
                        if (focused := _focus(c, filters)) is not None]
            answers = self.index.search_many(queries, exclude_ids=exclude)  # one round trip on Elasticsearch
            exhausted = all(len(hits) < fetch for hits in answers[: len(profile.clusters)])
            found: dict[str, Item] = {}
            for hits in answers:
                for hit in hits:
                    found.setdefault(hit.item.id, hit.item)
            items = [it for it in found.values() if it.product_id not in profile.engaged_products]
            vectors = normalise(np.stack([it.embedding for it in items])) if items else np.zeros((0, 1))
            keep = self._not_disliked(profile, items, vectors)
            items = [it for it, ok in zip(items, keep) if ok]
            vectors = vectors[keep]
            if len({it.product_id for it in items}) >= 2 * k or exhausted or fetch >= MAX_FETCH:
                return items, vectors
            fetch = min(MAX_FETCH, fetch * 4)

    def _per_cluster(self, profile: TasteProfile, items: Sequence[Item], vectors: np.ndarray) -> np.ndarray:
        """(items x clusters): similarity to the medoid plus the cluster's attribute affinities,
        minus closeness to a dislike."""
        medoids = normalise(np.stack([c.vector for c in profile.clusters]))
        fit = vectors @ medoids.T + self.settings.taste_affinity_weight * _affinities(profile, items)
        return fit - self._repulsion(profile, vectors)[:, None]

    def _relevance(self, profile: TasteProfile, items: Sequence[Item],
                   vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each item's fit to its best cluster (similarity to the medoid, the cluster's importance and
        its attribute affinities) minus closeness to a dislike; and which cluster that is."""
        importance = np.array([c.importance for c in profile.clusters])
        per_cluster = self._per_cluster(profile, items, vectors) + IMPORTANCE_BONUS * importance
        return per_cluster.max(axis=1), per_cluster.argmax(axis=1)

    def _repulsion(self, profile: TasteProfile, vectors: np.ndarray) -> np.ndarray:
        """How far closeness to a disliked item (below the hard cut) pushes an item down."""
        dislikes = profile.dislike_matrix()
        if not len(dislikes):
            return np.zeros(len(vectors))
        return DISLIKE_SOFT_WEIGHT * np.clip((vectors @ dislikes.T).max(axis=1) - DISLIKE_SOFT_FROM, 0, None)

    def _taste(self, profile: TasteProfile, items: Sequence[Item], vectors: np.ndarray) -> np.ndarray:
        """How much each item fits the taste, to add to a search score (half the relevance)."""
        if profile.clusters:
            return 0.5 * self._relevance(profile, items, vectors)[0]
        negative = np.array([profile.affinity(it) for it in items]) * self.settings.taste_affinity_weight
        return negative - self._repulsion(profile, vectors)

    def _not_disliked(self, profile: TasteProfile, items: Sequence[Item], vectors: np.ndarray) -> np.ndarray:
        """False for disliked items and those within ``taste_dislike_cosine`` of one."""
        disliked = {d.id for d in profile.disliked}
        keep = np.array([it.id not in disliked for it in items], dtype=bool)
        dislikes = profile.dislike_matrix()
        if len(dislikes) and len(items):
            keep &= (vectors @ dislikes.T).max(axis=1) <= self.settings.taste_dislike_cosine
        return keep

    # -- cold start ----------------------------------------------------------
    def cold_start(self, k: int, filters: Filters, profile: TasteProfile | None = None) -> list[Recommendation]:
        """Popular items first (most engaged across shoppers), then a spread of the catalog; diversified."""
        popular = self.popularity()
        items: dict[str, Item] = {}
        scores: dict[str, float] = {}
        top = max(popular.values(), default=1.0)
        for item_id, weight in sorted(popular.items(), key=lambda kv: -kv[1])[: 10 * k]:
            item = self.model.item(item_id)
            if item is not None and filters.matches(item):
                items[item.id] = item
                scores[item.id] = 1.0 + weight / top  # popular ones rank above the spread
        for rank, item in enumerate(self.spread(filters)):
            if item.id not in items:
                items[item.id] = item
                scores[item.id] = 1.0 - rank / (1000.0 + rank)
        candidates = [it for it in items.values()
                      if profile is None or (it.id not in profile.engaged and it.product_id not in
                                             profile.engaged_products)]
        if not candidates:
            return []
        vectors = normalise(np.stack([it.embedding for it in candidates]))
        if profile is not None:
            keep = self._not_disliked(profile, candidates, vectors)
            candidates = [it for it, ok in zip(candidates, keep) if ok]
            vectors = vectors[keep]
        relevance = np.array([scores[it.id] for it in candidates])
        picked = _one_per_product(candidates, relevance)
        chosen = mmr(vectors[picked], relevance[picked], k, 0.5)
        out = []
        for j in chosen:
            item = candidates[picked[j]]
            why = "popular with shoppers" if item.id in popular else f"a popular kind: {describe(item)}"
            out.append(Recommendation(item, float(relevance[picked[j]]), why, None))
        return out

    def popularity(self) -> dict[str, float]:
        """Item id -> positive engagement across every shopper (recounted every ``taste_popular_ttl_s``)."""
        now = time.monotonic()
        with self._lock:
            if self._popular is not None and now - self._popular[0] < self.settings.taste_popular_ttl_s:
                return self._popular[1]
        counts: dict[str, float] = {}
        disliked: set[str] = set()
        for user in self.events.users():
            for event in self.events.events(user):
                weight = KIND_WEIGHTS[event.kind]
                if weight > 0:
                    counts[event.item_id] = counts.get(event.item_id, 0.0) + weight
                else:
                    disliked.add(event.item_id)
        counts = {i: w for i, w in counts.items() if w >= 1.0}
        with self._lock:
            self._popular = (now, counts)
            self._spread.clear()  # the catalog may have changed too
        return counts

    def spread(self, filters: Filters) -> list[Item]:
        """A varied walk through the catalog under these filters: per type (largest first) a
        typical item, then the same types in other colors, then more of each. Cached per filters,
        renewed with popularity."""
        with self._lock:
            cached = self._spread.get(filters)
        if cached is not None:
            return cached
        facets = self.index.facets()
        types = sorted(facets.get("type", {}).items(), key=lambda kv: -kv[1])
        rounds: list[list[Item]] = []
        for type_name, _ in types:
            if filters.type and type_name not in filters.type:
                continue
            scoped = dataclasses.replace(filters, type=(type_name,))
            hits = self.index.search(_probe(type_name, self._dim()), SPREAD_PER_TYPE, scoped)
            if not hits:
                continue
            vectors = normalise(np.stack([h.item.embedding for h in hits]))
            centre = normalise(vectors.mean(axis=0))
            order = np.argsort(-(vectors @ centre))
            by_color: dict[str, Item] = {}
            for i in order:
                by_color.setdefault(hits[int(i)].item.color, hits[int(i)].item)
            firsts = {item.id for item in by_color.values()}
            rest = [hits[int(i)].item for i in order if hits[int(i)].item.id not in firsts]
            for n, item in enumerate([*by_color.values(), *rest]):
                while len(rounds) <= n:
                    rounds.append([])
                rounds[n].append(item)
        walk = [item for r in rounds for item in r]
        with self._lock:
            if len(self._spread) > 256:
                self._spread.clear()
            self._spread[filters] = walk
        return walk

    def _dim(self) -> int:
        """The catalog's vector size (a probe vector must have it), from any one item; asked once."""
        with self._lock:
            if self._dims:
                return self._dims
        ids = self.index.ids()
        item = self.model.item(min(ids)) if ids else None
        with self._lock:
            self._dims = len(item.embedding) if item is not None else 0
            return self._dims or 1


def _probe(seed: str, dim: int) -> np.ndarray:
    """A fixed pseudo-random direction per name: an unbiased way into a filtered slice of the catalog."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little"))
    return normalise(rng.normal(size=dim))


def describe(item: Item) -> str:
    """How a reason names an item: its title, else its color and type."""
    return item.title.strip() or f"{item.color} {item.type}".strip()


def _affinities(profile: TasteProfile, items: Sequence[Item]) -> np.ndarray:
    """(items x clusters) ``profile.affinity``, looked up once per distinct attribute value."""
    out = np.zeros((len(items), len(profile.clusters)))
    for attribute in ATTRIBUTES:
        values = [getattr(it, attribute) for it in items]
        overall = profile.affinities.get(attribute, {})
        negative = np.array([min(overall.get(v, 0.0), 0.0) for v in values])
        for c, cluster in enumerate(profile.clusters):
            shares = cluster.affinities.get(attribute, {})
            out[:, c] += negative + np.array([shares.get(v, 0.0) for v in values])
    return out / len(ATTRIBUTES)


def _focus(cluster: TasteCluster, filters: Filters) -> Filters | None:
    """The request's filters narrowed to the cluster's dominant type and color (when most of the
    cluster shares them and the request allows them); None when the cluster has no clear one."""
    narrowed = {}
    for attribute in ("type", "color"):
        shares = cluster.affinities.get(attribute, {})
        value, share = max(shares.items(), key=lambda kv: kv[1], default=("", 0.0))
        wanted = getattr(filters, attribute)
        if share < FOCUS_SHARE or (wanted and value not in wanted):
            return None
        narrowed[attribute] = (value,)
    return dataclasses.replace(filters, **narrowed)


def _schedule(weights: Sequence[float], k: int) -> list[int]:
    """Which cluster fills each of ``k`` slots: a smooth weighted round robin, so each cluster
    gets slots in proportion to its weight, spread through the list rather than bunched; a
    cluster too light for any slot takes the last one of the heaviest (every taste shows once)."""
    current = [0.0] * len(weights)
    total = sum(weights)
    order = []
    for _ in range(k):
        current = [c + w for c, w in zip(current, weights)]
        pick = max(range(len(weights)), key=lambda i: current[i])
        current[pick] -= total
        order.append(pick)
    for missing in [i for i in range(len(weights)) if i not in order]:
        counts = [order.count(i) for i in range(len(weights))]
        heaviest = max(range(len(weights)), key=lambda i: counts[i])
        if counts[heaviest] < 2:
            break
        order[len(order) - 1 - order[::-1].index(heaviest)] = missing
    return order


def _one_per_product(items: Sequence[Item], relevance: np.ndarray) -> list[int]:
    """Indices of the best item of each product, best first."""
    best: dict[str, int] = {}
    for i in np.argsort(-relevance):
        best.setdefault(items[int(i)].product_id, int(i))
    return list(best.values())


def mmr(vectors: np.ndarray, relevance: np.ndarray, k: int, lam: float) -> list[int]:
    """Maximal marginal relevance: each pick maximises lam * relevance - (1 - lam) * similarity
    to the closest item already picked (Carbonell & Goldstein, 1998)."""
    n = len(relevance)
    if n == 0:
        return []
    chosen: list[int] = []
    closest = np.full(n, -np.inf)
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        redundancy = np.where(np.isfinite(closest), closest, 0.0)
        gain = np.where(available, lam * relevance - (1 - lam) * redundancy, -np.inf)
        j = int(np.argmax(gain))
        chosen.append(j)
        available[j] = False
        closest = np.maximum(closest, vectors @ vectors[j])
    return chosen
