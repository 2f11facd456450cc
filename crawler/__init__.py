"""The catalog crawler: shop listing pages -> catalog.jsonl + images (+ a folder-per-class set).

A stage like ``indexer`` and ``training``: it knows shops, browsers and HTTP,
not models or indexes; ``app.crawl`` runs it and ``eyepic index`` reads its output.
"""
