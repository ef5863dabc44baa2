"""The service tests' fixtures, reused: the same tiny models, catalog and real `bentoml serve`.

Fixtures are looked up by directory, so they are imported here; this directory gets its own
server, which keeps load out of the API tests' metric deltas.
"""

from tests.service.conftest import catalog_file, server, stored_models

__all__ = ["catalog_file", "server", "stored_models"]
