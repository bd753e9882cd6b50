import asyncio

from sqlalchemy import ForeignKey, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.util import _has_cy
from sqlalchemy.util.concurrency import await_only, greenlet_spawn

assert _has_cy.HAS_CYEXTENSION, "Cython extensions not in use"


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    addresses: Mapped[list["Address"]] = relationship(back_populates="user")


class Address(Base):
    __tablename__ = "addresses"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    user: Mapped[User] = relationship(back_populates="addresses")


# ORM round trip on sqlite (the stdlib's _sqlite3, linked with libsqlite3.a)
engine = create_engine("sqlite://")
Base.metadata.create_all(engine)
with Session(engine) as session:
    session.add_all([
        User(name="ada", addresses=[Address(email="ada@example.org")]),
        User(name="bob", addresses=[Address(email="bob@example.org"), Address(email="b@example.org")]),
    ])
    session.commit()
with Session(engine) as session:
    rows = session.execute(select(User.name, Address.email).join(User.addresses).order_by(Address.email)).all()
    assert rows == [("ada", "ada@example.org"), ("bob", "b@example.org"), ("bob", "bob@example.org")], rows
    bob = session.scalars(select(User).where(User.name == "bob")).one()
    assert sorted(a.email for a in bob.addresses) == ["b@example.org", "bob@example.org"]


# greenlet: SQLAlchemy's asyncio bridge switches between an event loop and sync code
async def double(x):
    await asyncio.sleep(0)
    return 2 * x


assert asyncio.run(greenlet_spawn(lambda: await_only(double(21)))) == 42
