from pydantic import BaseModel, Field, ValidationError
import pydantic_core

assert pydantic_core._pydantic_core.__file__.endswith(".so"), "the Rust core is in use"


class Item(BaseModel):
    name: str
    price: float = Field(gt=0)
    tags: list[str] = []


class Order(BaseModel):
    id: int
    items: list[Item]


order = Order.model_validate({"id": "7", "items": [{"name": "pen", "price": "1.5", "tags": ["office"]}]})
assert order.id == 7 and order.items[0].price == 1.5, order
assert Order.model_validate_json(order.model_dump_json()) == order
try:
    Order(id="seven", items=[{"name": "pen", "price": -1}])
    raise AssertionError("invalid data accepted")
except ValidationError as error:
    assert [(e["loc"], e["type"]) for e in error.errors()] == [
        (("id",), "int_parsing"),
        (("items", 0, "price"), "greater_than"),
    ], error.errors()
