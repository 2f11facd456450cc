"""The service layer: the use cases both APIs serve, written once.

``services.search`` (photo search, similar items), ``services.outfits``
(complete the look), ``services.requests``
(the one request validator and its errors) and ``services.metrics`` (one
set of metrics for both APIs). ``web`` (Flask) and ``grpcapi``
(``eyepic.v1.Recommender``) are thin adapters over it; recommendations will
live here too.
"""
