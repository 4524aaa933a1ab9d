"""The suite keeps its measured figures (runtime baseline, cost-model fits) in its own folder, never in
the user's cache."""
import pytest


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FUSETILE_CACHE", str(tmp_path_factory.mktemp("fusetile-cache")))
        yield
