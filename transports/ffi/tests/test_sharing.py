"""A worker process hosting several instances of a node class: the SDK's `share`
declaration and the worker's instance table (its batch hook included)."""

import json

import pytest

import remotemedia
from remotemedia import sdk
from remotemedia.worker import Instances


class Counter(remotemedia.Node):
    share = True
    loads = 0
    cleaned = []

    def initialize(self):
        type(self).loads += 1
        self.count = 0

    def process(self, data):
        if data == "raise":
            raise ValueError("only this one")
        self.count += 1
        return f"{self.node_id}:{data}:{self.count}"

    def cleanup(self):
        type(self).cleaned.append(self.node_id)


class Batched(Counter):
    batches = []

    @classmethod
    def process_batch(cls, calls):
        cls.batches.append([node.node_id for node, _ in calls])
        results = []
        for node, data in calls:
            try:
                results.append([node.process(data), "batched"])
            except Exception as exc:
                results.append(exc)
        return results


def open_(table, instance, node_id):
    info = json.loads(table.open(instance, json.dumps({"node_id": node_id, "session_id": "s", "params": {}})))
    assert info["instance"] == instance and info["node_id"] == node_id
    return info


def test_share_declarations():
    assert sdk.share_of(Counter) == sdk.MAX_SHARE == 64
    assert sdk.share_of(remotemedia.Node) == 1

    class Four(remotemedia.Node):
        share = 4

    assert sdk.share_of(Four) == 4
    with pytest.raises(ValueError, match=r"share must be True, False or 1..=64, not 65"):
        remotemedia.node("TooMany", share=65)(type("TooMany", (remotemedia.Node,), {}))
    assert "TooMany" not in remotemedia.registered_nodes()


def test_instances_keep_their_own_state_and_fail_alone():
    table = Instances(Counter)
    assert not table.batchable
    open_(table, 0, "a")
    open_(table, 1, "b")
    assert list(table.process(0, "x")) == ["a:x:1"]
    assert list(table.process(0, "y")) == ["a:y:2"]
    assert list(table.process(1, "x")) == ["b:x:1"]
    with pytest.raises(ValueError, match="only this one"):
        list(table.process(1, "raise"))
    assert list(table.process(0, "z")) == ["a:z:3"]
    table.close(1)
    assert Counter.cleaned == ["b"]
    assert table.close_all() == 0
    assert Counter.cleaned == ["b", "a"]


def test_the_batch_hook_gets_several_instances_items_in_one_call():
    table = Instances(Batched)
    assert table.batchable
    for i, node_id in enumerate("abc"):
        open_(table, i, node_id)
    results = table.batch([(0, "x"), (1, "raise"), (2, "x")])
    assert Batched.batches == [["a", "b", "c"]]
    assert list(results[0]) == ["a:x:1", "batched"]
    assert isinstance(results[1], ValueError)
    assert list(results[2]) == ["c:x:1", "batched"]
    # The failed instance keeps going.
    assert list(table.batch([(1, "y")])[0]) == ["b:y:1", "batched"]
    table.close_all()
