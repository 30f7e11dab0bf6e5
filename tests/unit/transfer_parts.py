"""A TransferManager built from a stand-in node's parts, shared by the unit tests of
transfers and of hints during membership changes."""

from dynamopy.node.transfer import TransferManager


class _Via:
    """Forwards attribute reads to ``node.<name>`` as it is when read."""

    def __init__(self, node, name):
        self._node, self._name = node, name

    def __getattr__(self, attr):
        return getattr(getattr(self._node, self._name), attr)


def transfer_manager(node) -> TransferManager:
    """A TransferManager built from the stand-in ``node``'s parts, read when used (the
    tests swap some of them after building)."""
    return TransferManager(
        me=getattr(node, "id", None), state=lambda: node.state, store=_Via(node, "store"),
        committer=_Via(node, "committer"), clock=_Via(node, "clock"),
        detector=_Via(node, "detector"), call_peer=lambda *a, **k: node.call_peer(*a, **k),
        note_epoch=lambda *a: node.note_epoch(*a), observe_version=lambda v: None,
        propose=lambda entry: node.propose(entry), hints=_Via(node, "hints"),
        spawn=lambda coro: node.spawn(coro), max_bytes_s=1 << 30,
        stopping=lambda: node.stopping, handoff=_Via(node, "anti_entropy"))
