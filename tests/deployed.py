"""The environment each function of the dev stack really receives, from the synthesized program: the handler tests
run with it, so a variable renamed on one side of the contract fails a test, not a deploy."""

from __future__ import annotations

from functools import cache

from tools.synth import synthesize_stack

FUNCTION = "aws:lambda/function:Function"


@cache
def _environments(stack: str) -> dict[str, dict[str, str]]:
    synthesis = synthesize_stack(stack, preview=False)
    return {f.inputs["handler"].split(".")[0]: dict(f.inputs["environment"]["variables"])
            for f in synthesis.of_type(FUNCTION)}


def function_environment(module: str, stack: str = "dev") -> dict[str, str]:
    """The variables of the function whose handler is ``module`` (a copy: tests may change it)."""
    return dict(_environments(stack)[module])


def handler_modules(stack: str = "dev") -> list[str]:
    return sorted(_environments(stack))
