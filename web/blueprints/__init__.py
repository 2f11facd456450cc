"""One blueprint per resource: search, items, meta (taxonomy), health, page."""
