from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Filters(_message.Message):
    __slots__ = ("group", "type", "color", "shop")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    SHOP_FIELD_NUMBER: _ClassVar[int]
    group: _containers.RepeatedScalarFieldContainer[str]
    type: _containers.RepeatedScalarFieldContainer[str]
    color: _containers.RepeatedScalarFieldContainer[str]
    shop: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group: _Optional[_Iterable[str]] = ..., type: _Optional[_Iterable[str]] = ..., color: _Optional[_Iterable[str]] = ..., shop: _Optional[_Iterable[str]] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x0", "y0", "x1", "y1")
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    x0: float
    y0: float
    x1: float
    y1: float
    def __init__(self, x0: _Optional[float] = ..., y0: _Optional[float] = ..., x1: _Optional[float] = ..., y1: _Optional[float] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("image", "filters", "k", "box", "garment")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    GARMENT_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    filters: Filters
    k: int
    box: Box
    garment: int
    def __init__(self, image: _Optional[bytes] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., k: _Optional[int] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., garment: _Optional[int] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("id", "product_id", "score", "group", "type", "color", "title", "url", "price", "shop", "brand", "attributes", "image_path")
    ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    SHOP_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_PATH_FIELD_NUMBER: _ClassVar[int]
    id: str
    product_id: str
    score: float
    group: str
    type: str
    color: str
    title: str
    url: str
    price: float
    shop: str
    brand: str
    attributes: _containers.RepeatedScalarFieldContainer[str]
    image_path: str
    def __init__(self, id: _Optional[str] = ..., product_id: _Optional[str] = ..., score: _Optional[float] = ..., group: _Optional[str] = ..., type: _Optional[str] = ..., color: _Optional[str] = ..., title: _Optional[str] = ..., url: _Optional[str] = ..., price: _Optional[float] = ..., shop: _Optional[str] = ..., brand: _Optional[str] = ..., attributes: _Optional[_Iterable[str]] = ..., image_path: _Optional[str] = ...) -> None: ...

class Garment(_message.Message):
    __slots__ = ("index", "box", "group", "type", "color", "scores", "detected", "filters", "items")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    DETECTED_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    index: int
    box: Box
    group: str
    type: str
    color: str
    scores: _containers.ScalarMap[str, float]
    detected: bool
    filters: Filters
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, index: _Optional[int] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., group: _Optional[str] = ..., type: _Optional[str] = ..., color: _Optional[str] = ..., scores: _Optional[_Mapping[str, float]] = ..., detected: _Optional[bool] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("garments", "width", "height", "detector_used", "model_version")
    GARMENTS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_USED_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    garments: _containers.RepeatedCompositeFieldContainer[Garment]
    width: int
    height: int
    detector_used: bool
    model_version: str
    def __init__(self, garments: _Optional[_Iterable[_Union[Garment, _Mapping]]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., detector_used: _Optional[bool] = ..., model_version: _Optional[str] = ...) -> None: ...

class SimilarItemsRequest(_message.Message):
    __slots__ = ("item_id", "filters", "k")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    filters: Filters
    k: int
    def __init__(self, item_id: _Optional[str] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., k: _Optional[int] = ...) -> None: ...

class SimilarItemsResponse(_message.Message):
    __slots__ = ("item", "filters", "items")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    item: Item
    filters: Filters
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, item: _Optional[_Union[Item, _Mapping]] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class CompleteTheLookRequest(_message.Message):
    __slots__ = ("item_id", "image", "garment", "box", "k", "user")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    GARMENT_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    image: bytes
    garment: int
    box: Box
    k: int
    user: str
    def __init__(self, item_id: _Optional[str] = ..., image: _Optional[bytes] = ..., garment: _Optional[int] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., k: _Optional[int] = ..., user: _Optional[str] = ...) -> None: ...

class LookItem(_message.Message):
    __slots__ = ("item", "reason")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    item: Item
    reason: str
    def __init__(self, item: _Optional[_Union[Item, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class LookGroup(_message.Message):
    __slots__ = ("group", "items")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    group: str
    items: _containers.RepeatedCompositeFieldContainer[LookItem]
    def __init__(self, group: _Optional[str] = ..., items: _Optional[_Iterable[_Union[LookItem, _Mapping]]] = ...) -> None: ...

class LookGarment(_message.Message):
    __slots__ = ("index", "box", "group", "type", "color", "groups")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    index: int
    box: Box
    group: str
    type: str
    color: str
    groups: _containers.RepeatedCompositeFieldContainer[LookGroup]
    def __init__(self, index: _Optional[int] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., group: _Optional[str] = ..., type: _Optional[str] = ..., color: _Optional[str] = ..., groups: _Optional[_Iterable[_Union[LookGroup, _Mapping]]] = ...) -> None: ...

class CompleteTheLookResponse(_message.Message):
    __slots__ = ("item", "groups", "garments", "width", "height", "detector_used", "model_version", "personalised")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    GARMENTS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_USED_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PERSONALISED_FIELD_NUMBER: _ClassVar[int]
    item: Item
    groups: _containers.RepeatedCompositeFieldContainer[LookGroup]
    garments: _containers.RepeatedCompositeFieldContainer[LookGarment]
    width: int
    height: int
    detector_used: bool
    model_version: str
    personalised: bool
    def __init__(self, item: _Optional[_Union[Item, _Mapping]] = ..., groups: _Optional[_Iterable[_Union[LookGroup, _Mapping]]] = ..., garments: _Optional[_Iterable[_Union[LookGarment, _Mapping]]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., detector_used: _Optional[bool] = ..., model_version: _Optional[str] = ..., personalised: _Optional[bool] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("user_id", "kind", "item_id", "at", "event_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    kind: str
    item_id: str
    at: float
    event_id: str
    def __init__(self, user_id: _Optional[str] = ..., kind: _Optional[str] = ..., item_id: _Optional[str] = ..., at: _Optional[float] = ..., event_id: _Optional[str] = ...) -> None: ...

class RecordEventRequest(_message.Message):
    __slots__ = ("user_id", "kind", "item_id", "at", "event_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    kind: str
    item_id: str
    at: float
    event_id: str
    def __init__(self, user_id: _Optional[str] = ..., kind: _Optional[str] = ..., item_id: _Optional[str] = ..., at: _Optional[float] = ..., event_id: _Optional[str] = ...) -> None: ...

class RecordEventResponse(_message.Message):
    __slots__ = ("event", "created")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    event: Event
    created: bool
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class ForgetUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ForgetUserResponse(_message.Message):
    __slots__ = ("user_id", "forgotten")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    FORGOTTEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    forgotten: int
    def __init__(self, user_id: _Optional[str] = ..., forgotten: _Optional[int] = ...) -> None: ...
