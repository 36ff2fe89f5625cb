"""The typed constructors that mypy reads (``if TYPE_CHECKING: def __init__``, taking array-likes) declare
exactly the parameters of the constructor that dataclasses generates at run time: same names, order, kinds
and which ones have defaults. mypy checks calls against the declaration and never sees the generated one,
so this is what keeps the two from drifting apart."""
from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from hwsim.conv import ConvGeometry, ConvStage
from hwsim.netdesc import Population, Projection
from neuromap.ir import IF, LI, LIF, Affine, AvgPool2d, Conv2d, Flatten, Input, Linear, Output, SumPool2d


def _declared(cls: type) -> list[tuple[str, str, bool]]:
    """(name, kind, has default) of each parameter of the class's TYPE_CHECKING __init__, self excluded."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    guards = [node for node in ast.walk(tree)
              if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"]
    (init,) = [f for g in guards for f in g.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"]
    args = init.args
    positional = args.args[1:]
    first_default = len(positional) - len(args.defaults)
    return ([(a.arg, "POSITIONAL_OR_KEYWORD", i >= first_default) for i, a in enumerate(positional)]
            + [(a.arg, "KEYWORD_ONLY", d is not None) for a, d in zip(args.kwonlyargs, args.kw_defaults)])


def _generated(cls: type) -> list[tuple[str, str, bool]]:
    return [(p.name, p.kind.name, p.default is not inspect.Parameter.empty)
            for p in inspect.signature(cls).parameters.values()]


@pytest.mark.parametrize("cls", [Input, Affine, Linear, Conv2d, SumPool2d, Flatten, LIF, LI, Population, Projection,
                                 ConvStage, ConvGeometry],
                         ids=lambda c: c.__name__)
def test_declared_constructor_matches_the_generated_one(cls):
    assert _declared(cls) == _generated(cls)


@pytest.mark.parametrize(("cls", "base"), [(Output, Input), (AvgPool2d, SumPool2d), (IF, LIF)],
                         ids=lambda c: c.__name__)
def test_subclasses_without_fields_of_their_own_keep_the_base_constructor(cls, base):
    assert cls.__init__ is base.__init__
