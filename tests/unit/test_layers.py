"""Layers import-linter's contracts (pyproject.toml) do not cover, checked on the same graph."""

from __future__ import annotations

import grimp
import pytest

#: what protocol knowledge lives in; rr.cassette (the format, writer, reader) may use none of it
PROTOCOL_MODULES = [
    "rrlab.rr.protocols",
    "rrlab.rr.redact",
    "rrlab.rr.protocols.kafka",
    "rrlab.rr.protocols.amqp",
    "rrlab.rr.protocols.mqtt",
]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("rrlab")


@pytest.mark.parametrize("module", PROTOCOL_MODULES)
def test_cassette_knows_no_protocol(graph, module):
    assert module in graph.modules, (
        f"{module} does not exist: a renamed or moved module would silently drop this layer "
        "check; name where that protocol code lives now in PROTOCOL_MODULES"
    )
    chain = graph.find_shortest_chain(
        importer="rrlab.rr.cassette", imported=module, as_packages=True
    )
    assert chain is None, " -> ".join(chain or ())


def test_the_check_sees_an_import_when_there_is_one(graph):
    """The same query finds a real chain (the recorder uses the protocol objects)."""
    chain = graph.find_shortest_chain(importer="rrlab.rr.record", imported="rrlab.rr.protocols")
    assert chain is not None
