"""A fixture shop for the crawler's tests and benchmark, served on 127.0.0.1.

Real clothing photos behind the traps real shops set: pagination by a next
link and by a page parameter, an infinite-scroll page fed by JavaScript,
lazy-loaded images (``data-src`` over a placeholder, ``srcset``), a broken
image, a product listed twice (a tracking parameter and a fragment), one
photo served twice under different URLs and sizes, a robots.txt that closes
``/outlet/``, a page slow on its first load, a page that answers 503 once.
``expected()`` says exactly what a correct crawl keeps.
"""

from __future__ import annotations

import dataclasses
import html
import io
import logging
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from werkzeug.wrappers import Request, Response

from devtools.wsgi import serve_in_thread

PER_PAGE = 4
PLACEHOLDER = "data:image/gif;base64,R0lGODlhAQABAAAAACw="


@dataclasses.dataclass
class Product:
    slug: str
    category: str
    photo: Path
    price: float
    brand: str
    broken: bool = False  # its image is a truncated JPEG


@dataclasses.dataclass
class FixtureShop:
    """The shop's catalog; mutate ``products`` / prices between crawls to test re-crawls."""

    photos: dict[str, list[Path]]  # category -> real photos (dress, pants, shirt, hat)
    slow_s: float = 3.0
    products: dict[str, Product] = dataclasses.field(default_factory=dict)
    large: int = 0  # > 0: a plain /c/all listing of this many products instead (benchmark)
    hits: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.products:
            return
        if self.large:
            flat = [(c, p) for c, ps in sorted(self.photos.items()) for p in ps][: self.large]
            for n, (category, photo) in enumerate(flat):
                self._add(f"all-{n}", category, photo, 10.0 + n % 90, f"Brand {n % 7}")
            return
        for category, count in (("dress", 12), ("pants", 8), ("shirt", 10), ("hat", 2)):
            for n in range(count):
                self._add(f"{category}-{n}", category, self.photos[category][n], 19.9 + 5 * n, f"Brand {n % 3}")
        self.products["dress-5"].broken = True

    def _add(self, slug: str, category: str, photo: Path, price: float, brand: str) -> None:
        self.products[slug] = Product(slug, category, photo, round(price, 2), brand)

    # -- what a correct crawl of the fixture profile keeps --------------------
    def expected(self) -> dict[str, Product]:
        """Canonical product URL path -> product: everything listed, minus the broken image,
        the robots-closed outlet and the re-posted photo."""
        return {f"/p/{p.slug}": p for p in self.products.values() if not p.broken and p.category != "hat"}

    def listed(self, category: str) -> list[Product]:
        return [p for p in self.products.values() if p.category == category]

    # -- HTTP ---------------------------------------------------------------
    def __call__(self, environ: dict, start_response: Callable) -> object:
        request = Request(environ)
        key = request.full_path
        self.hits[key] = self.hits.get(key, 0) + 1
        return self.route(request, self.hits[key] == 1)(environ, start_response)

    def route(self, request: Request, first: bool) -> Response:
        path, args = request.path, request.args
        if path == "/robots.txt":
            return Response("User-agent: *\nDisallow: /outlet/\n\nUser-agent: SlowBot\nCrawl-delay: 5\n",
                            mimetype="text/plain")
        if path == "/c/dress":  # next-link pagination; page 3 is slow the first time
            page = int(args.get("p", 1))
            if page == 3 and first:
                time.sleep(self.slow_s)
            items = self.listed("dress")[(page - 1) * PER_PAGE : page * PER_PAGE]
            cards = [self.card(p, lazy=True) for p in items]
            if page == 2:  # listed twice: dress-1 again, with a tracking parameter and a fragment
                cards.append(self.card(self.products["dress-1"], lazy=True, link_suffix="?ref=listing2#reviews"))
            more = page * PER_PAGE < len(self.listed("dress"))
            return self.page("Dresses", cards, f'<a class="next" href="/c/dress?p={page + 1}">Next</a>' * more)
        if path == "/c/pants":  # page-parameter pagination; page 2 answers 503 once
            page = int(args.get("page", 1))
            if page == 2 and first:
                return Response("busy", status=503, headers={"Retry-After": "0"})
            cards = [self.card(p) for p in self.listed("pants")[(page - 1) * PER_PAGE : page * PER_PAGE]]
            if page == 2:  # the photo of pants-0 again: another product URL, another image URL and size
                cards.append(self.card(self.products["pants-0"], slug="pants-0-again",
                                       image="/img/resized/pants-0.jpg"))
            return self.page("Pants", cards)
        if path == "/c/shirt":  # infinite scroll
            return self.page("Shirts", [self.card(p, srcset=True) for p in self.listed("shirt")[:PER_PAGE]],
                             script=_SCROLL_JS % len(self.listed("shirt")))
        if path == "/api/shirt":
            offset = int(args.get("offset", 0))
            items = self.listed("shirt")[offset : offset + PER_PAGE]
            return Response("".join(self.card(p, srcset=True) for p in items), mimetype="text/html")
        if path in ("/outlet/", "/c/all"):
            category = "hat" if path == "/outlet/" else ""
            page = int(args.get("page", 1))
            items = [p for p in self.products.values() if not category or p.category == category]
            size = 50 if self.large else PER_PAGE
            return self.page("Outlet", [self.card(p) for p in items[(page - 1) * size : page * size]])
        if path.startswith("/p/"):
            slug = path[3:]
            product = self.products.get(slug) or self.products.get(slug.removesuffix("-again"))
            if product is None:
                return Response("gone", status=404)
            return self.page(product.slug, [f'<h1 class="name">{product.slug}</h1>'
                                            f'<p class="brand">{html.escape(product.brand)}</p>'])
        if path.startswith("/img/"):
            return self.image(path)
        return Response("not found", status=404)

    def card(self, p: Product, lazy: bool = False, srcset: bool = False, link_suffix: str = "",
             slug: str = "", image: str = "") -> str:
        src = image or f"/img/{p.slug}.jpg"
        if srcset:
            img = f'<img srcset="{src}?w=320 320w, {src} 800w" alt="">'
        elif lazy:
            img = f'<img src="{PLACEHOLDER}" data-src="{src}" alt="">'
        else:
            img = f'<img src="{src}" alt="">'
        title = f"{p.category.capitalize()} {(slug or p.slug).split('-', 1)[1]}"
        slug = slug or p.slug
        return (f'<div class="product" data-sku="SKU-{slug}" data-category="{p.category}">'
                f'<a class="link" href="/p/{slug}{link_suffix}">{img}<span class="title">{title}</span></a>'
                f'<span class="price" data-currency="EUR">€{p.price:.2f}</span></div>')

    def page(self, title: str, cards: list[str], footer: str = "", script: str = "") -> Response:
        body = (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
                "<style>.product{height:700px;display:block}</style></head>"
                f"<body><h1>{title}</h1><div id='grid'>{''.join(cards)}</div>{footer}{script}</body></html>")
        return Response(body, mimetype="text/html")

    def image(self, path: str) -> Response:
        resized = path.startswith("/img/resized/")
        slug = Path(path).stem
        product = self.products.get(slug)
        if product is None:
            return Response("no such image", status=404)
        data = product.photo.read_bytes()
        if resized:
            with Image.open(io.BytesIO(data)) as im:
                smaller = im.convert("RGB").resize((im.width * 3 // 5, im.height * 3 // 5))
                out = io.BytesIO()
                smaller.save(out, format="JPEG", quality=70)
                data = out.getvalue()
        if product.broken:
            data = data[: len(data) * 2 // 5]
        return Response(data, mimetype="image/jpeg")


_SCROLL_JS = """<script>
let offset = 4, loading = false;
window.addEventListener('scroll', async () => {
  if (loading || offset >= %d) return;
  if (window.innerHeight + window.scrollY < document.body.scrollHeight - 100) return;
  loading = true;
  const r = await fetch('/api/shirt?offset=' + offset);
  document.getElementById('grid').insertAdjacentHTML('beforeend', await r.text());
  offset += 4; loading = false;
});
</script>"""


def serve(shop: FixtureShop) -> tuple[str, Callable[[], None]]:
    """Serve ``shop`` on a free 127.0.0.1 port in a thread; returns (base URL, stop)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    return serve_in_thread(shop, "fixture-shop")
