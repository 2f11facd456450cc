"""Simulated shoppers for ``eyepic evaluate recommender``: no I/O, any catalog.

Each shopper has 1-3 hidden taste modes (attribute combinations the catalog
holds, e.g. type=jeans & color=blue) and 1-2 disliked attribute values that
no mode uses. Every round they are shown a list by the system under test
and scan its first ``patience`` items: they dislike what has a disliked
attribute (often), click or like what matches a mode (often), and click a
random item now and then (noise). When a list gives them nothing (and
sometimes anyway) they browse the catalog for the mode they have found
least of so far, as a shopper does with search and filter chips, and click
what they find there:
the taste model learns from every event, wherever it happened.

One event is one interaction. The lists are measured when the shopper has
made exactly 0, 3, 10 and 20 interactions. Three systems face the same
shoppers with the same random draws: the non-personalized list (the cold
start: items popular with a crowd of other simulated shoppers, the same for
every system, then a diverse spread of the catalog), a single-vector
Rocchio profile, and the taste model.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Callable, Sequence

import numpy as np

from eyepic import taxonomy
from eyepic.schema import Filters, Item
from eyepic.settings import Settings
from indexer.base import Index, normalise
from services.recommend import RecommendService
from taste.events import Event, MemoryEventStore
from taste.profile import KIND_WEIGHTS, TasteProfile

CHECKPOINTS = (0, 3, 10, 20)
LIST_K = 12  # precision@12
WIDE_K = 24  # modes hit in the top 24
NEAR_DUPLICATE = 0.8  # cosine to a disliked item that counts as "the same thing again"
SYSTEMS = ("baseline", "rocchio", "taste")
CROWD_EVENTS = 10  # events of each crowd shopper, whose engagement makes items popular


class NoModes(ValueError):
    """The catalog is too small or too uniform for any taste mode."""


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """How simulated shoppers act (fixed before any tuning; not tuned)."""

    patience: tuple[int, int] = (4, 12)  # items scanned per list, uniform
    p_positive: float = 0.7  # a matching item gets a click or like
    p_like: float = 0.4  # ... of which likes
    p_dislike: float = 0.6  # an item with a disliked attribute gets a dislike
    p_noise: float = 0.03  # a click on an item that matches nothing
    p_browse: float = 1.0  # each visit also searches for the want found least so far (0.25: see the report)
    min_mode_products: int = 40  # a mode the catalog holds at least this many products of (20 clicks can't exhaust it)
    max_rounds: int = 80


@dataclasses.dataclass(frozen=True)
class Shopper:
    user_id: str
    modes: tuple[tuple[tuple[str, str], ...], ...]  # each mode: ((attr, value), ...)
    disliked: tuple[tuple[str, str], ...]

    def matches(self, item: Item, mode: tuple[tuple[str, str], ...]) -> bool:
        return all(getattr(item, a) == v for a, v in mode)

    def dislikes(self, item: Item) -> bool:
        return any(getattr(item, a) == v for a, v in self.disliked)

    def relevant(self, item: Item) -> bool:
        return not self.dislikes(item) and any(self.matches(item, m) for m in self.modes)


def candidate_modes(items: Sequence[Item], min_products: int) -> list[tuple[tuple[str, str], ...]]:
    """type+color and group+color combinations with at least ``min_products`` products."""
    counts: dict[tuple[tuple[str, str], ...], set[str]] = {}
    for item in items:
        for first in ("type", "group"):
            counts.setdefault(((first, getattr(item, first)), ("color", item.color)), set()).add(item.product_id)
    return sorted(m for m, products in counts.items() if len(products) >= min_products)


def make_shopper(user_id: str, modes: Sequence[tuple[tuple[str, str], ...]], rng: random.Random) -> Shopper:
    """1-3 modes of different types or groups; 1-2 disliked values (a color, maybe a type) no mode
    uses (a disliked type is outside every mode's group too: "shoes" would empty a gray-shoes mode)."""
    wanted = rng.choice((1, 2, 3))
    chosen: list[tuple[tuple[str, str], ...]] = []
    for mode in rng.sample(list(modes), len(modes)):
        kind = dict(mode).get("type") or dict(mode).get("group")
        if kind not in {dict(m).get("type") or dict(m).get("group") for m in chosen}:
            chosen.append(mode)
        if len(chosen) == wanted:
            break
    used = {(a, v) for m in chosen for a, v in m}
    colors = sorted({v for m in modes for a, v in m if a == "color"} - {v for a, v in used if a == "color"})
    groups = {v for a, v in used if a == "group"} | {taxonomy.group_of(v) for a, v in used if a == "type"}
    types = sorted({v for m in modes for a, v in m if a == "type"
                    if v not in {u for a2, u in used if a2 == "type"} and taxonomy.group_of(v) not in groups})
    disliked = [("color", rng.choice(colors))] if colors else []
    if types and rng.random() < 0.5:
        disliked.append(("type", rng.choice(types)))
    return Shopper(user_id, tuple(chosen), tuple(disliked))


class Rocchio:
    """One vector per shopper: the decayed, weighted mean of liked items minus half the disliked."""

    def __init__(self, service: RecommendService):
        self.service = service

    def recommend(self, user_id: str, k: int) -> list[Item]:
        profile = self.service.profile(user_id)
        events = self.service.events.events(user_id)
        vector = None
        for event in events:
            item = self.service.model.item(event.item_id)
            if item is None:
                continue
            weight = KIND_WEIGHTS[event.kind] * (0.5 if event.kind == "dislike" else 1.0)
            contribution = weight * normalise(item.embedding)
            vector = contribution if vector is None else vector + contribution
        if not profile.personal or vector is None or not np.any(vector):
            return [r.item for r in self.service.cold_start(k, Filters(), profile)]
        hits = self.service.index.search(vector, k + 8, exclude_ids=sorted(profile.engaged))
        return [h.item for h in hits if h.item.product_id not in profile.engaged_products][:k]


def list_metrics(items: Sequence[Item], shopper: Shopper, profile: TasteProfile, k: int = LIST_K) -> dict[str, float]:
    """What one shown list says: precision, disliked and near-duplicate counts, diversity, duplicates."""
    top = list(items[:k])
    out = {"precision": sum(shopper.relevant(i) for i in top) / k, "shown": float(len(top)),
           "disliked_shown": float(sum(i.id in {d.id for d in profile.disliked} for i in top)),
           "near_disliked": 0.0, "duplicates": float(len(top) - len({i.product_id for i in top})),
           "diversity": 0.0}
    if top:
        vectors = normalise(np.stack([i.embedding for i in top]))
        if profile.disliked:
            near = (vectors @ profile.dislike_matrix().T).max(axis=1)
            out["near_disliked"] = float((near > NEAR_DUPLICATE).sum())
        if len(top) > 1:
            sims = vectors @ vectors.T
            n = len(top)
            out["diversity"] = float((1 - sims[~np.eye(n, dtype=bool)]).mean())
    return out


def simulate(items: Sequence[Item], index: Index, settings: Settings, seeds: Sequence[int], shoppers: int,
             behaviour: Behaviour | None = None, systems: Sequence[str] = SYSTEMS,
             progress: Callable[[str], None] | None = None) -> dict[str, object]:
    """Run every system against the same shoppers; the report's numbers (JSON-ready)."""
    behaviour = behaviour or Behaviour()
    # Popularity comes from a crowd of other shoppers (the same events for every system) and stays
    # fixed through the run, so every system starts from the very same cold-start list.
    settings = dataclasses.replace(settings, taste_popular_ttl_s=1e9)
    by_mode = candidate_modes(items, behaviour.min_mode_products)
    if not by_mode:
        raise NoModes(f"no type or group with a color has {behaviour.min_mode_products} products in this "
                      f"catalog of {len(items)} items: too small to simulate shoppers on")
    curves = {s: {c: [] for c in CHECKPOINTS} for s in systems}
    wide_hits: dict[str, list[float]] = {s: [] for s in systems}
    expressed_hits: dict[str, list[float]] = {s: [] for s in systems}  # modes the shopper clicked at least once
    totals = {s: dict.fromkeys(("shown", "disliked_shown", "near_disliked", "duplicates"), 0.0) for s in systems}
    diversity: dict[str, list[float]] = {s: [] for s in systems}
    coverage: dict[str, set[str]] = {s: set() for s in systems}
    lists_with_duplicates = dict.fromkeys(systems, 0)
    lists = dict.fromkeys(systems, 0)
    for seed in seeds:
        rng = random.Random(seed)  # nosec B311: a reproducible simulation, not security
        people = [make_shopper(f"s{seed}-{n}", by_mode, rng) for n in range(shoppers)]
        crowd = crowd_events(items, [make_shopper(f"crowd{seed}-{n}", by_mode, rng) for n in range(shoppers)], rng)
        for system in systems:
            service = RecommendService(settings, index, MemoryEventStore(crowd))
            rocchio = Rocchio(service)

            def shown(user_id: str, k: int, system: str = system, service: RecommendService = service,
                      rocchio: Rocchio = rocchio) -> list[Item]:
                if system == "taste":
                    query = service.recommend_query(user_id=user_id, k=k, filters={})
                    return [r.item for r in service.recommend(query).items]
                if system == "rocchio":
                    return rocchio.recommend(user_id, k)
                return [r.item for r in service.cold_start(k, Filters(), service.profile(user_id))]

            for n, shopper in enumerate(people):
                run = _shop(shopper, items, service, shown, behaviour, random.Random(seed * 100_003 + n))  # nosec B311
                for checkpoint, precision in run["precision"].items():
                    curves[system][checkpoint].append(precision)
                wide_hits[system].extend(run["modes_hit"])
                expressed_hits[system].extend(h for h, e in zip(run["modes_hit"], run["expressed"]) if e)
                for name in totals[system]:
                    totals[system][name] += run["totals"][name]
                diversity[system].extend(run["diversity"])
                coverage[system].update(run["shown_ids"])
                lists_with_duplicates[system] += run["lists_with_duplicates"]
                lists[system] += run["lists"]
            if progress:
                progress(f"seed {seed} {system}: p@12 after 10 = {np.mean(curves[system][10]):.3f}")
    result: dict[str, object] = {"seeds": list(seeds), "shoppers_per_seed": shoppers, "catalog_items": len(items),
                                 "modes_available": len(by_mode), "behaviour": dataclasses.asdict(behaviour),
                                 "systems": {}}
    for system in systems:
        t = totals[system]
        result["systems"][system] = {  # type: ignore[index]
            "precision_at_12": {str(c): round(float(np.mean(v)), 4) for c, v in curves[system].items()},
            "modes_hit_top24_after_20": round(float(np.mean(wide_hits[system])), 4),
            "expressed_modes_hit_top24_after_20": round(float(np.mean(expressed_hits[system] or [0.0])), 4),
            "modes_expressed_by_20": round(len(expressed_hits[system]) / max(len(wide_hits[system]), 1), 4),
            "disliked_shown": int(t["disliked_shown"]),
            "near_disliked_share": round(t["near_disliked"] / max(t["shown"], 1), 4),
            "coverage": round(len(coverage[system]) / len(items), 4),
            "intra_list_diversity": round(float(np.mean(diversity[system])), 4),
            "duplicates_per_list": round(t["duplicates"] / max(lists[system], 1), 4),
            "lists_with_duplicates": lists_with_duplicates[system],
            "lists": lists[system],
        }
    systems_out = result["systems"]
    base = systems_out["baseline"]["precision_at_12"]["10"] if "baseline" in systems_out else None  # type: ignore
    if base is not None and "taste" in systems_out:
        result["lift_at_10"] = round(systems_out["taste"]["precision_at_12"]["10"] / max(base, 1e-9), 3)  # type: ignore
    if "rocchio" in systems_out and "taste" in systems_out:
        roc = systems_out["rocchio"]["precision_at_12"]["10"]  # type: ignore
        result["lift_over_rocchio_at_10"] = round(systems_out["taste"]["precision_at_12"]["10"]  # type: ignore
                                                  / max(roc, 1e-9), 3)
    return result


def crowd_events(items: Sequence[Item], crowd: Sequence[Shopper], rng: random.Random,
                 per_shopper: int = CROWD_EVENTS) -> list[Event]:
    """What other shoppers did before: clicks and likes on items of their modes (the popularity signal)."""
    events = []
    for shopper in crowd:
        pools = [[i for i in items if shopper.matches(i, m) and not shopper.dislikes(i)] for m in shopper.modes]
        for n in range(per_shopper):
            pool = pools[n % len(pools)]
            if pool:
                kind = "like" if rng.random() < 0.4 else "click"
                events.append(Event(shopper.user_id, kind, rng.choice(pool).id, 1_600_000_000.0 + n, f"c{n}"))
    return events


def _shop(shopper: Shopper, items: Sequence[Item], service: RecommendService,
          shown: Callable[[str, int], list[Item]], behaviour: Behaviour, rng: random.Random) -> dict:
    """One shopper's session with one system."""
    clock = itertools.count(1)
    interactions = 0
    out: dict = {"precision": {}, "modes_hit": [], "diversity": [], "shown_ids": set(),
                 "totals": dict.fromkeys(("shown", "disliked_shown", "near_disliked", "duplicates"), 0.0),
                 "lists_with_duplicates": 0, "lists": 0}
    by_mode = {m: [i for i in items if shopper.matches(i, m) and not shopper.dislikes(i)] for m in shopper.modes}

    def act(kind: str, item: Item) -> None:
        nonlocal interactions
        at = 1_700_000_000.0 + 60.0 * next(clock)
        service.events.add(Event(shopper.user_id, kind, item.id, at, f"{shopper.user_id}-{at}"))
        interactions += 1

    def positive(item: Item) -> None:
        act("like" if rng.random() < behaviour.p_like else "click", item)

    for _ in range(behaviour.max_rounds):
        profile = service.profile(shopper.user_id)
        page = shown(shopper.user_id, WIDE_K)
        if interactions in CHECKPOINTS and interactions not in out["precision"]:
            out["precision"][interactions] = list_metrics(page, shopper, profile)["precision"]
            if interactions == CHECKPOINTS[-1]:
                top = page[:WIDE_K]
                out["modes_hit"] = [float(any(shopper.matches(i, m) and not shopper.dislikes(i) for i in top))
                                    for m in shopper.modes]
                engaged = [service.model.item(e.item_id) for e in service.events.events(shopper.user_id)
                           if e.kind != "dislike"]
                out["expressed"] = [any(i is not None and shopper.matches(i, m) for i in engaged)
                                    for m in shopper.modes]
                break
        metrics = list_metrics(page, shopper, profile)
        for name in out["totals"]:
            out["totals"][name] += metrics[name]
        out["diversity"].append(metrics["diversity"])
        out["lists_with_duplicates"] += int(metrics["duplicates"] > 0)
        out["lists"] += 1
        out["shown_ids"].update(i.id for i in page[:LIST_K])
        target = next(c for c in CHECKPOINTS if c > interactions)
        before = interactions
        for item in page[: rng.randint(*behaviour.patience)]:
            if shopper.dislikes(item):
                if rng.random() < behaviour.p_dislike:
                    act("dislike", item)
            elif shopper.relevant(item):
                if rng.random() < behaviour.p_positive:
                    positive(item)
            elif rng.random() < behaviour.p_noise:
                act("click", item)
            if interactions >= target:
                break
        if interactions < target and (interactions == before or rng.random() < behaviour.p_browse):
            engaged = service.profile(shopper.user_id).engaged
            if rng.random() < behaviour.p_noise * 3:
                choice = rng.choice(list(items))
            else:
                found = {m: sum(1 for i in by_mode[m] if i.id in engaged) for m in shopper.modes}
                least = min(found.values())  # they look for the want they have found least of
                mode = rng.choice([m for m in shopper.modes if found[m] == least])
                pool = [i for i in by_mode[mode] if i.id not in engaged]
                choice = rng.choice(pool) if pool else rng.choice(list(items))
            if choice.id not in engaged:
                positive(choice)
    for c in CHECKPOINTS:  # a session that ran out of rounds keeps its last list's numbers
        out["precision"].setdefault(c, out["precision"].get(max((k for k in out["precision"]), default=0), 0.0))
    if not out["modes_hit"]:
        out["modes_hit"] = [0.0 for _ in shopper.modes]
        out["expressed"] = [True for _ in shopper.modes]
    return out
