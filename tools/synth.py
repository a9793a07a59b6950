"""Offline synthesis: run the real program under Pulumi mocks and record everything it registers.

The recording monitor keeps what the engine would hand to a policy pack: each resource's type, name, URN, inputs (engine
camelCase keys, numbers as floats, unknowns as Pulumi's sentinels), outputs, parent, dependencies, property
dependencies and provider. ``preview=True`` mimics the first ``pulumi preview`` of a new stack: values computed by AWS
(ARNs, ids) are unknown, as the real analyzer would see them.
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await
from pulumi_policy.deserialize import deserialize_properties

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_ID = "123456789012"
UNKNOWN = "<known after deploy>"

# ARNs in AWS's real formats (IAM linting checks them against each action's resource types), and the other outputs
# AWS computes that the program reads from other resources.
_ARNS: Mapping[str, str] = {
    "aws:kinesis/stream:Stream": "arn:aws:kinesis:{region}:{account}:stream/{name}",
    "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream":
        "arn:aws:firehose:{region}:{account}:deliverystream/{name}",
    "aws:sqs/queue:Queue": "arn:aws:sqs:{region}:{account}:{name}",
    "aws:s3/bucket:Bucket": "arn:aws:s3:::{name}",
    "aws:cloudwatch/logGroup:LogGroup": "arn:aws:logs:{region}:{account}:log-group:{name}",
    "aws:kms/key:Key": "arn:aws:kms:{region}:{account}:key/{id}",
    "aws:lambda/function:Function": "arn:aws:lambda:{region}:{account}:function:{name}",
    "aws:iam/role:Role": "arn:aws:iam::{account}:role/{name}",
    "aws:apigateway/restApi:RestApi": "arn:aws:apigateway:{region}::/restapis/{id}",
    "aws:apigateway/stage:Stage": "arn:aws:apigateway:{region}::/restapis/api-id/stages/{name}",
    "aws:wafv2/webAcl:WebAcl": "arn:aws:wafv2:{region}:{account}:regional/webacl/{name}/{id}",
    "aws:sns/topic:Topic": "arn:aws:sns:{region}:{account}:{name}",
    "aws:secretsmanager/secret:Secret": "arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf",
    "aws:sfn/stateMachine:StateMachine": "arn:aws:states:{region}:{account}:stateMachine:{name}",
}
_COMPUTED: Mapping[str, Callable[[str, Mapping[str, Any], str], Mapping[str, Any]]] = {
    "aws:kms/key:Key": lambda name, _, __: {"keyId": f"{name}-id"},
    "aws:sqs/queue:Queue": lambda name, inputs, region: {
        "url": f"https://sqs.{region}.amazonaws.com/{ACCOUNT_ID}/{inputs.get('name', name)}"},
    "aws:apigateway/restApi:RestApi": lambda name, _, region: {
        "rootResourceId": f"{name}-root", "executionArn": f"arn:aws:execute-api:{region}:{ACCOUNT_ID}:{name}-id"},
    "aws:lambda/function:Function": lambda name, inputs, region: {
        "invokeArn": f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/arn:aws:lambda:{region}:"
                     f"{ACCOUNT_ID}:function:{inputs.get('name', name)}/invocations"},
    "aws:apigateway/stage:Stage": lambda name, inputs, region: {
        "invokeUrl": f"https://{name}-id.execute-api.{region}.amazonaws.com/{inputs.get('stageName')}"},
}


@dataclass
class RegisteredResource:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str | None
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    provider: str | None
    custom: bool
    # Names (or URNs) the resource was known by before: a rename with an alias keeps the resource in users' stacks.
    aliases: list[str] = field(default_factory=list)


@dataclass
class Synthesis:
    stack: str
    resources: list[RegisteredResource]
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[RegisteredResource]:
        return [r for r in self.resources if r.type == type_]

    def find(self, type_: str, name: str) -> RegisteredResource:
        matches = [r for r in self.resources if r.type == type_ and r.name == name]
        if len(matches) != 1:
            known = sorted(r.name for r in self.of_type(type_))
            raise LookupError(f"expected one {type_} named {name!r}, found {len(matches)}; {type_} names: {known}")
        return matches[0]

    def by_urn(self, urn: str) -> RegisteredResource:
        return next(r for r in self.resources if r.urn == urn)

    def children(self, parent: RegisteredResource) -> Iterator[RegisteredResource]:
        return (r for r in self.resources if r.parent == parent.urn)


class SynthesisError(Exception):
    """The program failed; ``resources`` holds what it had registered before failing."""

    def __init__(self, message: str, resources: list[RegisteredResource]) -> None:
        super().__init__(message)
        self.resources = resources


class StackMocks(pulumi.runtime.Mocks):
    """Answers like AWS would: returns ids and ARNs (unless previewing) so dependent inputs do not vanish."""

    def __init__(self, region: str, preview: bool) -> None:
        self.region = region
        self.preview = preview
        self._provider_regions: dict[str, str] = {}  # provider id → region

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == "pulumi:providers:aws":  # resources of another provider live in its region
            self._provider_regions[f"{args.name}-id"] = state.get("region") or self.region
        if self.preview:
            return None, state
        region = self._provider_regions.get((args.provider or "").rsplit("::", 1)[-1], self.region)
        physical = state.get("name") or state.get("bucket") or state.get("stageName") or args.name
        service = args.typ.split(":")[1].split("/")[0]
        arn = _ARNS.get(args.typ, f"arn:aws:{service}:{{region}}:{{account}}:{{name}}")
        state.setdefault("arn", arn.format(region=region, account=ACCOUNT_ID, name=physical,
                                           id=f"{args.name}-id"))
        state.setdefault("name", physical)
        computed = _COMPUTED.get(args.typ)
        if computed is not None:
            state.update(computed(args.name, state, region))
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        answers: dict[str, dict[str, Any]] = {
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": ACCOUNT_ID, "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/ci", "userId": "AIDA",
                "id": ACCOUNT_ID},
            "aws:index/getPartition:getPartition": {
                "partition": "aws", "dnsSuffix": "amazonaws.com", "reverseDnsSuffix": "com.amazonaws", "id": "aws"},
            "aws:index/getRegion:getRegion": {"name": self.region, "region": self.region, "id": self.region},
        }
        if args.token not in answers:
            raise NotImplementedError(f"the offline mocks do not answer {args.token}; add it to tools/synth.py")
        return answers[args.token], []


def _deserialize(struct: Any) -> dict[str, Any]:
    # The same conversion the policy analyzer applies to the engine's properties.
    return dict(deserialize_properties(json_format.MessageToDict(struct)))


class RecordingMonitor(mocks.MockMonitor):
    def __init__(self, stack_mocks: StackMocks) -> None:
        super().__init__(stack_mocks)
        self.recorded: list[RegisteredResource] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self.recorded.append(RegisteredResource(
                type=request.type,
                name=request.name,
                urn=response.urn,
                inputs=_deserialize(request.object),
                outputs=_deserialize(response.object),
                parent=request.parent or None,
                dependencies=list(request.dependencies),
                property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
                provider=request.provider or None,
                custom=bool(request.custom),
                aliases=[alias.urn or alias.spec.name for alias in request.aliases],
            ))
        return response


def _config_string(value: Any) -> str:
    # The CLI hands every config value to the program as a string; structured values as JSON.
    if isinstance(value, str):
        return value
    return json.dumps(value)


class StackFileError(ValueError):
    """A project or stack file that cannot be read; the message names the file."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; the Pulumi CLI refuses the file, so do we."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(file: Path) -> dict[str, Any]:
    try:
        loaded = yaml.load(file.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - safe loader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise StackFileError(f"{file.name}: invalid YAML{where}: {problem}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise StackFileError(f"{file.name}: expected a mapping at the top level, got {type(loaded).__name__}")
    return loaded


SECRET_PLACEHOLDER = "<encrypted secret>"  # noqa: S105 - a marker, not a secret


def _stack_value(file: Path, key: str, value: Any, allow_secrets: bool) -> str:
    if isinstance(value, dict) and set(value) == {"secure"}:
        if allow_secrets:
            return SECRET_PLACEHOLDER
        raise StackFileError(f"{file.name}: {key} is an encrypted secret: cannot be read offline "
                             "(keep secrets out of the settings the plan needs, or set a plain value for planning)")
    return _config_string(value)


def stack_config(stack: str, root: Path = ROOT, *, allow_secrets: bool = False) -> dict[str, str]:
    """The config a stack's program receives: Pulumi.yaml's declared defaults overlaid by Pulumi.<stack>.yaml.

    Raises ``StackFileError`` (a ``ValueError``) naming the file for invalid YAML, duplicate keys, a misshapen
    ``config`` section or an encrypted ``secure:`` value (``allow_secrets``: the value reads as
    ``SECRET_PLACEHOLDER`` instead, for checks that do not need it); ``FileNotFoundError`` when the file is missing.
    """
    project_file = root / "Pulumi.yaml"
    project = _load_yaml(project_file)
    name = project.get("name")
    if not isinstance(name, str) or not name:
        raise StackFileError(f"{project_file.name}: the project has no name")
    declared = project.get("config") or {}
    if not isinstance(declared, dict):
        raise StackFileError(f"{project_file.name}: config must be a mapping")
    config: dict[str, str] = {}
    for key, spec in declared.items():
        if isinstance(spec, dict) and "default" in spec:
            config[key if ":" in key else f"{name}:{key}"] = _config_string(spec["default"])
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise FileNotFoundError(f"no stack file {stack_file.name} in {root}")
    values = _load_yaml(stack_file).get("config") or {}
    if not isinstance(values, dict):
        raise StackFileError(f"{stack_file.name}: config must be a mapping of key: value")
    for key, value in values.items():
        if not isinstance(key, str):
            raise StackFileError(f"{stack_file.name}: config key {key!r} is not a string")
        full = key if ":" in key else f"{name}:{key}"
        config[full] = _stack_value(stack_file, full, value, allow_secrets)
    return config


def stack_names(root: Path = ROOT) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def _resolve(value: Any) -> Any:
    output = pulumi.Output.from_input(value)
    if not _sync_await(output.is_known()):
        return UNKNOWN
    return _sync_await(output.future())


def synthesize(config: Mapping[str, str], *, stack: str, preview: bool, project: str = "clickstream-personalization",
               program: Path | Callable[[], None] = ROOT / "__main__.py") -> Synthesis:
    """Run ``program`` (the real ``__main__.py`` unless a test passes a function) under recording mocks.

    Raises ``SynthesisError`` (caused by the program's own exception) when the program fails.
    """
    stack_mocks = StackMocks(config.get("aws:region", "us-east-1"), preview)
    monitor = RecordingMonitor(stack_mocks)
    settings.set_root_resource(None)  # type: ignore[arg-type]  # a fresh Stack per synthesis
    mocks.set_mocks(stack_mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config))
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()

    def run_program() -> None:
        if callable(program):
            program()
        else:
            runpy.run_path(str(program), run_name="__main__")

    try:
        _sync_await(run_pulumi_func(run_program))
    except Exception as error:
        raise SynthesisError(str(error), monitor.recorded) from error
    root = settings.get_root_resource()
    exported = dict(getattr(root, "outputs", {}))
    outputs = {name: _resolve(value) for name, value in exported.items()}
    return Synthesis(stack=stack, resources=monitor.recorded, outputs=outputs)


def synthesize_stack(stack: str, *, preview: bool = True, root: Path = ROOT) -> Synthesis:
    return synthesize(stack_config(stack, root), stack=stack, preview=preview)
