"""The contract between the stack and its functions (``common.contract``): each handler's factory is built from the
environment the synthesized function receives, a missing variable fails at cold start naming it, and every custom
metric an alarm or the dashboard watches is one its function emits."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from common import contract
from common.config import MissingConfigurationError
from common.contract import METRICS_NAMESPACE, Env, Metric
from tests.deployed import function_environment, handler_modules
from tools.synth import stack_names, synthesize_stack

# Each handler module's factory: the function of the environment that builds what the handler runs.
FACTORIES = {"event_processor": "build_processor", "recommendations": "build_service", "items": "build_service",
             "training_steps": "build_config", "reader_authorizer": "build_verifier"}
ENV_NAMES = {value for name, value in vars(Env).items() if not name.startswith("_")}


@pytest.fixture(autouse=True)
def aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "t",
                        "AWS_SECRET_ACCESS_KEY": "t"}.items():
        monkeypatch.setenv(name, value)


def factory(module: str) -> Callable[[dict[str, str]], Any]:
    built: Callable[[dict[str, str]], Any] = getattr(importlib.import_module(module), FACTORIES[module])
    return built


def test_every_function_of_the_stack_has_a_factory() -> None:
    assert handler_modules() == sorted(FACTORIES)


@pytest.mark.parametrize(("stack", "module"), [(s, m) for s in stack_names() for m in sorted(FACTORIES)
                                               if m in handler_modules(s)])  # the authorizer: where readers sign in
def test_each_factory_builds_from_the_environment_the_function_receives(stack: str, module: str) -> None:
    """GIVEN exactly the variables the program gives the function, WHEN the handler cold-starts, THEN it builds."""
    environment = function_environment(module, stack)

    assert factory(module)(environment) is not None
    assert set(environment) - {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= ENV_NAMES


def variables_of(module: str) -> Iterator[tuple[str, str]]:
    for name in sorted(set(function_environment(module)) & ENV_NAMES):
        yield module, name


@pytest.mark.parametrize(("module", "variable"), [pair for m in sorted(FACTORIES) for pair in variables_of(m)])
def test_a_missing_variable_fails_the_cold_start_naming_it(module: str, variable: str) -> None:
    """A variable renamed on one side of the contract is missing on the other: the factory must say which."""
    environment = function_environment(module)
    del environment[variable]

    with pytest.raises(MissingConfigurationError, match=f"environment variable {variable} "):
        factory(module)(environment)


@pytest.mark.parametrize(("module", "variable", "value"), [
    ("event_processor", Env.MAX_CONCURRENCY, "eight"),
    ("event_processor", Env.PARAMETER_CACHE_SECONDS, "1.5.0"),
    ("event_processor", Env.EVENT_TYPES, "view,click"),
    ("event_processor", Env.EVENT_TYPES, "[]"),
    ("recommendations", Env.FILTER_NAMES, '{"unread": 1}'),
    ("training_steps", Env.MIN_INTERACTIONS, "1000.5"),
])
def test_a_malformed_variable_fails_the_cold_start_naming_it(module: str, variable: str, value: str) -> None:
    environment = {**function_environment(module), variable: value}

    with pytest.raises(MissingConfigurationError, match=f"environment variable {variable} must be"):
        factory(module)(environment)


def emitted_metrics(module: str) -> set[str]:
    """The contract's metrics a handler module publishes (``Metric.X`` references in its code)."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module)))
    return {getattr(Metric, node.attr) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Metric"}


def watched_custom_metrics(stack: str) -> set[tuple[str, str]]:
    """(service, metric) of every custom metric the stack's alarms and dashboard read."""
    synthesis = synthesize_stack(stack, preview=False)
    watched = set()
    for alarm in synthesis.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        queries = [q["metric"] for q in alarm.inputs.get("metricQueries", []) if "metric" in q]
        for metric in [alarm.inputs, *queries]:
            if metric.get("namespace") == METRICS_NAMESPACE:
                watched.add((metric["dimensions"]["service"], metric["metricName"]))
    [dashboard] = synthesis.of_type("aws:cloudwatch/dashboard:Dashboard")
    for widget in json.loads(dashboard.inputs["dashboardBody"])["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            if row[0] == METRICS_NAMESPACE:
                watched.add((row[row.index("service") + 1], row[1]))
    return watched


@pytest.mark.parametrize("stack", stack_names())
def test_every_watched_custom_metric_is_emitted_by_its_function(stack: str) -> None:
    """An alarm on a metric no function emits would sit in notBreaching for ever: none may exist."""
    services = {module.replace("_", "-"): module for module in FACTORIES}
    watched = watched_custom_metrics(stack)

    assert len(watched) >= 6
    for service, metric in sorted(watched):
        assert metric in emitted_metrics(services[service]), (service, metric)


def test_the_contract_is_data_only() -> None:
    tree = ast.parse(inspect.getsource(contract))
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.Call)]
