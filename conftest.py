"""Doctest namespace: every docstring example can use ``torch`` and ``fs``."""

import pytest
import torch

import functional_struct as fs


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["torch"] = torch
    doctest_namespace["fs"] = fs
