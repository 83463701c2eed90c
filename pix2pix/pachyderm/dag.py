"""Orders over a DAG of pipelines (``graphlib``), and the cycle that forbids one.

``graph`` maps each pipeline to the repos it reads; repos that are no pipeline's output (user
repos) are ignored::

    {"model": {"checkpoint"}, "checkpoint": {"training"}}  ->  ["checkpoint", "model"]
    {"a": {"b"}, "b": {"a"}}                                ->  cycle ["a", "b", "a"]

Ties are broken by name, so every order and cycle is the same from run to run.
"""
from __future__ import annotations

import graphlib
from typing import Mapping, Optional


def _sorter(graph: Mapping[str, set[str]]) -> graphlib.TopologicalSorter:
    return graphlib.TopologicalSorter(
        {n: sorted(d for d in graph[n] if d in graph and d != n) for n in sorted(graph)})


def ordered(graph: Mapping[str, set[str]]) -> list[str]:
    """Every pipeline after the pipelines it reads; a chain is followed to its end before the
    next one starts (``training -> checkpoint -> model`` before ``preprocess_images``).

    Raises:
        graphlib.CycleError: the graph has a cycle (see :func:`cycle`).
    """
    ts = _sorter(graph)
    ts.prepare()
    stack = sorted(ts.get_ready(), reverse=True)
    out: list[str] = []
    while stack:
        node = stack.pop()
        out.append(node)
        ts.done(node)
        stack.extend(sorted(ts.get_ready(), reverse=True))
    return out


def cycle(graph: Mapping[str, set[str]]) -> Optional[list[str]]:
    """A cycle as ``[a, b, a]`` (a reads b, b reads a), or None."""
    try:
        _sorter(graph).prepare()
    except graphlib.CycleError as e:
        return list(e.args[1])
    return None
