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
    test_session): one start instead of six. Its users never kill, pause or restart a node,
    write keys of their own and put back any cluster setting they change; it idles at about
    1.5% of a core per node until the session ends."""
    c = LocalCluster(str(tmp_path_factory.mktemp("shared")), 3)
    try:  # a cluster that fails to start is stopped too
        yield c.start()
    finally:
        c.stop()
