import psycopg2
import psycopg2.extensions
from psycopg2 import _psycopg

assert psycopg2.extensions.connection is _psycopg.connection, "C extension not in use"
# the libpq linked in (PostgreSQL 15's: 15xxxx)
assert psycopg2.extensions.libpq_version() // 10000 == 15, psycopg2.extensions.libpq_version()
# no server here: a refused connection is libpq's own error, reported by psycopg2
try:
    psycopg2.connect("host=/nonexistent dbname=x connect_timeout=1")
except psycopg2.OperationalError as error:
    assert "nonexistent" in str(error), error
else:
    raise AssertionError("connected to nothing")
