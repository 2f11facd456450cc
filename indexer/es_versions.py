"""Versioned Elasticsearch indices behind one alias (``ElasticsearchIndex`` mixes this in).

Documents live in ``<alias>-<model_version>-<timestamp>``; readers always go
through the alias (``settings.index_name``). A new model reindexes into a
fresh index (``create_version`` + ``using(name)``) and ``swap_alias`` moves
the alias in one atomic ``_aliases`` call, so searches never see a
half-built index.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from elasticsearch import Elasticsearch

from indexer.base import IndexUnavailable
from indexer.es_schema import es_errors, index_settings, mapping, slug


class AliasVersions:
    """Alias versioning over ``client``/``alias``; the index supplies the rest."""

    client: Elasticsearch
    alias: str
    m: int
    ef_construction: int
    replicas: int
    dims_hint: int | None
    _dims: int | None

    def _alias_targets(self) -> list[str]: ...

    def _current_dims(self) -> int | None: ...

    def create_version(self, model_version: str, dims: int | None = None) -> str:
        """Create an empty ``<alias>-<model_version>-<timestamp>`` index; return its name."""
        dims = dims or self._current_dims() or self.dims_hint
        if not dims:
            raise IndexUnavailable("cannot create an index without the embedding size (pass dims)")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S%f")
        name = f"{self.alias}-{slug(model_version) or 'unversioned'}-{stamp}"
        with es_errors(f"create index {name}"):
            self.client.indices.create(
                index=name,
                mappings=mapping(dims, m=self.m, ef_construction=self.ef_construction,
                                 model_version=model_version),
                settings=index_settings(self.replicas),
                wait_for_active_shards="1",
            )
        return name

    def swap_alias(self, index_name: str) -> list[str]:
        """Point the alias at ``index_name`` alone, atomically; return the indices it left."""
        with es_errors(f"move alias {self.alias}"):
            if self.client.indices.exists(index=self.alias) and not self.client.indices.exists_alias(
                name=self.alias
            ):
                raise IndexUnavailable(f"{self.alias!r} is a concrete index, not an alias; delete it first")
            previous = self._alias_targets()
            actions: list[dict[str, Any]] = [
                {"remove": {"index": old, "alias": self.alias}} for old in previous if old != index_name
            ]
            actions.append({"add": {"index": index_name, "alias": self.alias, "is_write_index": True}})
            self.client.indices.update_aliases(actions=actions)
        self._dims = None
        return [old for old in previous if old != index_name]

    def versions(self) -> list[str]:
        """All versioned indices of this alias, oldest first."""
        with es_errors("list versions"):
            found = self.client.indices.get(
                index=f"{self.alias}-*", expand_wildcards="open", allow_no_indices=True,
                filter_path="*.settings.index.provided_name",
            )
        pattern = re.compile(rf"{re.escape(self.alias)}-[a-z0-9_.+-]*-\d{{20}}")
        return sorted(name for name in found if pattern.fullmatch(name))

    def current_version(self) -> str | None:
        targets = self._alias_targets()
        return targets[0] if targets else None

    def drop_version(self, index_name: str) -> None:
        """Delete an old version; refuses the one the alias points at."""
        if index_name in self._alias_targets():
            raise IndexUnavailable(f"{index_name} is live behind {self.alias}; swap first")
        with es_errors(f"delete {index_name}"):
            self.client.options(ignore_status=404).indices.delete(index=index_name)

    def drop_all(self) -> None:
        """Delete the alias and every version (tests, ``eyepic index --rebuild``)."""
        with es_errors("delete all versions"):
            names = self.versions()
            if names:
                self.client.options(ignore_status=404).indices.delete(index=",".join(names))
        self._dims = None
