import pytest

from tests.integration.cluster import LocalCluster


@pytest.fixture
def make_cluster(tmp_path):
    """Start clusters on demand; every node of every cluster is stopped at teardown."""
    made: list[LocalCluster] = []

    def make(nodes: int = 3, **kw) -> LocalCluster:
        c = LocalCluster(str(tmp_path / f"c{len(made)}"), nodes, **kw)
        made.append(c)
        return c.start()

    yield make
    for c in made:
        c.stop()


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory):
    """One 3-node cluster shared by the read-mostly tests of every module that asks for it
    (test_cli, test_contract, test_data_path, test_http_contract, test_loadgen's --url run,
    test_session): one start per test worker instead of six. Its users never kill, pause or
    restart a node, write keys of their own and put back any cluster setting they change; it
    idles at about 1.5% of a core per node until the session ends."""
    c = LocalCluster(str(tmp_path_factory.mktemp("shared")), 3)
    try:  # a cluster that fails to start is stopped too
        yield c.start()
    finally:
        c.stop()


API_TOKEN = "s3cret-token"


@pytest.fixture(scope="session")
def token_node(tmp_path_factory):
    """One node guarded by ``--api-token API_TOKEN`` (N=1), shared by the tests that check
    the token's guard (test_contract, test_http_contract); they write keys of their own."""
    c = LocalCluster(str(tmp_path_factory.mktemp("token")), 1, n=1, r=1, w=1,
                     extra=["--api-token", API_TOKEN])
    try:
        yield c.start()
    finally:
        c.stop()
