"""The ledger: the schema (``models``, ``schedule_models``), the inbox, versioned provider
objects, refund bounds and migrations. Importing the package loads every table, so that
``Base.metadata`` is whole wherever it is used (migrations, tests)."""

from ledger import models, schedule_models  # noqa: F401
