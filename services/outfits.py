"""Complete the look: for a catalog item or a garment in a photo, the catalog items that go with it.

Written once for the web and gRPC APIs. For the anchor garment (a catalog
item, or one garment the Analyzer found in an uploaded photo), each
complementary group (``outfits.model.PARTNERS``: top <-> bottom, outer over
both, shoes; a one-piece takes outer and shoes) gets its ``k`` best items:

1. retrieve: the anchor mapped into the partner group's embedding space
   (``CompatibilityModel.query_vector``) searches the index with a group
   filter, ``settings.outfit_candidates`` products (one photo each);
2. re-score every candidate with the whole model (projection + prior);
3. diversify with MMR (``outfits.diversify.mmr``) so the row is not five
   copies of one look; ties break by item id, so both index backends give
   the same items;
4. a short reason per item (``CompatibilityModel.reason``).

``user`` is validated and handed to the optional ``reranker`` (the seam the
taste profile plugs into: ``Reranker(user, group, suggestions) ->
suggestions``, given ``RERANK_POOL`` x k diversified suggestions and cut to
k); without one the answer is the same for every user and says
``personalised: False``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from eyepic.exports import ModelUnavailable
from eyepic.schema import Box, Filters, Garment, Item
from eyepic.settings import Settings
from indexer.base import Index
from outfits.diversify import mmr
from outfits.model import PARTNERS, CompatibilityModel, ModelFileError
from services.events import USER_ID, USER_ID_RULE
from services.requests import (
    FieldProblem,
    InvalidRequest,
    ItemNotFound,
    Problems,
    parse_box,
    parse_garment,
    parse_image,
    parse_k,
)
from services.search import AnalyzerLike

DEFAULT_LOOK_K = 6  # items per complementary group when k is not given
RERANK_POOL = 3  # a taste re-ranker sees this many times k suggestions per group


@dataclasses.dataclass(frozen=True)
class Suggestion:
    item: Item
    score: float  # the compatibility model's score (higher: goes better)
    reason: str


@dataclasses.dataclass(frozen=True)
class GroupLook:
    """One complementary group and its items, best first."""

    group: str
    items: list[Suggestion]


# The taste seam: (user id, partner group, suggestions best first) -> suggestions re-ranked for that user.
Reranker = Callable[[str, str, list[Suggestion]], list[Suggestion]]


@dataclasses.dataclass(frozen=True)
class LookQuery:
    """A validated complete-the-look request: an item id, or a photo (with a garment index or box)."""

    k: int
    item_id: str | None = None
    image: bytes | None = None
    box: Box | None = None
    garment: int | None = None
    user: str | None = None


@dataclasses.dataclass(frozen=True)
class GarmentLook:
    index: int
    garment: Garment
    groups: list[GroupLook]


@dataclasses.dataclass(frozen=True)
class LookResult:
    query: LookQuery
    item: Item | None  # the anchor item (item requests)
    groups: list[GroupLook]  # item requests
    garments: list[GarmentLook]  # photo requests: each garment (or the chosen one)
    personalised: bool
    width: int = 0
    height: int = 0
    detector_used: bool = False
    model_version: str = ""


def look_query(*, item_id: str | None, image: bytes | None, k: str | int | None, box=None,
               garment: str | int | None = None, user: str | None = None, max_k: int,
               max_image_bytes: int) -> LookQuery:
    """A request from raw fields, or InvalidRequest naming every bad one."""
    problems = Problems()
    if item_id and image is not None:
        problems.add("image", "give either an item id or a photo, not both")
    chosen_image = None
    if not item_id:
        chosen_image = parse_image(image, max_image_bytes, problems)
    chosen_k = parse_k(k, min(DEFAULT_LOOK_K, max_k), max_k, problems)
    chosen_box = parse_box(box, problems)
    chosen_garment = parse_garment(garment, problems)
    if chosen_box is not None and chosen_garment is not None:
        problems.add("garment", "give either 'garment' or 'box', not both")
    if item_id and (chosen_box is not None or chosen_garment is not None):
        problems.add("garment" if chosen_garment is not None else "box", "only for a photo, not for an item")
    chosen_user = None
    if user is not None and user != "":
        if USER_ID.fullmatch(user):
            chosen_user = user
        else:
            problems.add("user", f"must be {USER_ID_RULE}")
    problems.raise_if_any()
    return LookQuery(k=chosen_k, item_id=item_id or None, image=chosen_image, box=chosen_box,
                     garment=chosen_garment, user=chosen_user)


class OutfitService:
    """Complete-the-look over one Analyzer, one Index and one compatibility model (both APIs)."""

    def __init__(self, settings: Settings, analyzer: AnalyzerLike, index: Index,
                 model: CompatibilityModel | Callable[[], CompatibilityModel],
                 reranker: Reranker | None = None):
        """``model``: the model, or a loader called on first use (a missing file is then a 503,
        not a failed start). ``reranker``: the taste seam (None: no personalisation)."""
        self.settings = settings
        self.analyzer = analyzer
        self.index = index
        self._model = model
        self.reranker = reranker

    @property
    def model(self) -> CompatibilityModel:
        if not isinstance(self._model, CompatibilityModel):
            self._model = self._model()
        return self._model

    def query(self, *, item_id: str | None = None, image: bytes | None = None, k: str | int | None = None,
              box=None, garment: str | int | None = None, user: str | None = None) -> LookQuery:
        return look_query(item_id=item_id, image=image, k=k, box=box, garment=garment, user=user,
                          max_k=self.settings.max_k, max_image_bytes=self.settings.max_upload_bytes)

    def complete(self, query: LookQuery) -> LookResult:
        """The look for the query's item or for its photo's garments (all, or the chosen one)."""
        personalised = bool(query.user and self.reranker)
        if query.item_id:
            item = self.index.get(query.item_id)
            if item is None:
                raise ItemNotFound(query.item_id)
            groups = self.looks(item.group, item.embedding, item.type, item.color, query.k, query.user,
                                exclude=item)
            return LookResult(query, item, groups, [], personalised)
        if query.image is None:
            raise InvalidRequest([FieldProblem("image", "missing")])
        analysis = self.analyzer.analyze(query.image, box=query.box)
        n = len(analysis.garments)
        indices = list(range(n))
        if query.garment is not None:
            if query.garment >= n:
                raise InvalidRequest([FieldProblem("garment", f"the photo has {n} garment{'s' if n != 1 else ''}; "
                                                              f"use an index from 0 to {n - 1}, not {query.garment}")])
            indices = [query.garment]
        garments = []
        for i in indices:
            g = analysis.garments[i]
            garments.append(GarmentLook(i, g, self.looks(g.group, g.embedding, g.type, g.color, query.k, query.user)))
        return LookResult(query, None, [], garments, personalised, analysis.width, analysis.height,
                          analysis.detector_used, self.analyzer.model_version)

    def looks(self, group: str, embedding: np.ndarray, type_name: str, color: str, k: int,
              user: str | None = None, exclude: Item | None = None) -> list[GroupLook]:
        """Each complementary group of ``group`` with its ``k`` items (a group with no model pair is skipped)."""
        model = self.model
        if len(np.asarray(embedding).reshape(-1)) != model.embedding_dim:
            raise ModelUnavailable(f"the compatibility model takes {model.embedding_dim}-d embeddings, "
                                   f"not {len(np.asarray(embedding).reshape(-1))}-d: retrain it for this classifier")
        out = []
        for partner in PARTNERS.get(group, ()):
            if not model.has_pair(group, partner):
                continue
            if user and self.reranker is not None:
                # the taste profile chooses among a wider, still diversified, list
                wide = self.partner_items(group, embedding, type_name, color, partner, RERANK_POOL * k, exclude)
                items = self.reranker(user, partner, wide)[:k]
            else:
                items = self.partner_items(group, embedding, type_name, color, partner, k, exclude)
            out.append(GroupLook(partner, items))
        return out

    def partner_items(self, group: str, embedding: np.ndarray, type_name: str, color: str, partner: str, k: int,
                      exclude: Item | None = None) -> list[Suggestion]:
        """Retrieve, re-score, diversify and explain the items of ``partner`` that go with the anchor."""
        model = self.model
        vector = model.query_vector(group, embedding, type_name, color, partner)
        hits = self.index.search(vector, max(self.settings.outfit_candidates, k), Filters(group=(partner,)),
                                 exclude_ids=[exclude.id] if exclude else ())
        items = sorted((h.item for h in hits if not exclude or h.item.product_id != exclude.product_id),
                       key=lambda item: item.id)  # a fixed order before scoring: ties break alike on every backend
        if not items:
            return []
        vectors = np.stack([np.asarray(i.embedding, np.float32).reshape(-1) for i in items])
        scores = model.score(group, embedding, type_name, color, partner, vectors, [i.type for i in items],
                             [i.color for i in items])
        chosen = mmr(scores, vectors, k, self.settings.outfit_diversity)
        return [Suggestion(items[i], round(float(scores[i]), 4),
                           model.reason(group, type_name, color, partner, items[i].type, items[i].color))
                for i in chosen]


def load_compatibility(settings: Settings) -> CompatibilityModel:
    """The served compatibility model (``settings.outfits_model_path``); a missing or unreadable
    file is ModelUnavailable (the APIs answer 503, as for a missing classifier)."""
    path = settings.outfits_model_path
    if not path.is_file():
        raise ModelUnavailable(f"no compatibility model at {path} (git checkout models/, or eyepic train outfits)")
    try:
        return CompatibilityModel.load(path)
    except ModelFileError as exc:
        raise ModelUnavailable(str(exc)) from None


def suggestion_groups(groups: Sequence[GroupLook]) -> list[str]:
    """The groups answered, in order (for logs and tests)."""
    return [g.group for g in groups]
