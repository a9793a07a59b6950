"""The production Lambda building block: every function of the stack is made here, and only here."""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from common.contract import METRICS_NAMESPACE, VENDORED_PACKAGES
from components.iam import account_and_partition, service_role
from components.settings import LAMBDA_RUNTIME, StackBasics
from components.shared import failure_queue

HANDLERS_ROOT = Path(__file__).resolve().parent.parent / "handlers"
SHARED_MODULE = "common"

_MODULE_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_MANAGED_ENV = ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE")


class FunctionConfigError(ValueError):
    """A function was asked for with arguments that cannot make a sound production Lambda."""


def find_handler(handlers_root: Path, module: str) -> Path:
    """The entry-point file of ``module``; it must define a top-level ``handler(event, context)``."""
    if not _MODULE_RE.match(module):
        raise FunctionConfigError(f"handler module {module!r} must be a lowercase Python module name")
    path = handlers_root / f"{module}.py"
    if not path.is_file():
        raise FunctionConfigError(f"handler module {module!r} not found: expected {path}")
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "handler" and len(node.args.args) == 2:
            return path
    raise FunctionConfigError(f"{path} must define a top-level function handler(event, context)")


def shared_module_path(handlers_root: Path) -> Path:
    path = handlers_root / SHARED_MODULE
    if not (path / "__init__.py").is_file():
        raise FunctionConfigError(f"the shared handler package is missing: expected {path / '__init__.py'}")
    return path


def vendored_package_path(package: str) -> Path:
    """The installed directory of a pure-Python package a handler vendors (``contract.VENDORED_PACKAGES``)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None or Path(spec.origin).name != "__init__.py":
        raise FunctionConfigError(f"vendored package {package!r} must be an installed package directory "
                                  "(pip install -r requirements.txt)")
    path = Path(spec.origin).parent
    compiled = [p.name for p in path.rglob("*") if p.suffix in {".so", ".pyd", ".dylib"}]
    if compiled:
        raise FunctionConfigError(f"vendored package {package!r} holds compiled code {compiled}: the archive is "
                                  "architecture-independent, ship it as a layer instead")
    return path


def code_archive(handlers_root: Path, module: str) -> pulumi.AssetArchive:
    """The deployment package: the entry-point module at the archive root, the shared ``common`` package, and the
    pure-Python packages the module vendors."""
    entry = find_handler(handlers_root, module)
    return pulumi.AssetArchive({
        entry.name: pulumi.FileAsset(str(entry)),
        SHARED_MODULE: pulumi.FileArchive(str(shared_module_path(handlers_root))),
        **{package: pulumi.FileArchive(str(vendored_package_path(package)))
           for package in VENDORED_PACKAGES.get(module, ())},
    })


@dataclass(frozen=True)
class FunctionArgs:
    stack: StackBasics
    key_arn: pulumi.Input[str]
    handler_module: str
    description: str
    # IAM statements for what the handler itself calls; the block adds logging, tracing, key and DLQ access.
    statements: Sequence[Mapping[str, Any]] = ()
    environment: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    memory_mb: int = 256
    timeout_seconds: int = 30
    reserved_concurrency: int | None = None
    # Invoked asynchronously (events, schedules): failed events go to an encrypted dead-letter queue.
    asynchronous: bool = False
    handlers_root: Path = HANDLERS_ROOT

    def validate(self) -> None:
        problems = []
        if not 128 <= self.memory_mb <= 10240:
            problems.append(f"memory_mb={self.memory_mb} must be between 128 and 10240")
        if not 1 <= self.timeout_seconds <= 900:
            problems.append(f"timeout_seconds={self.timeout_seconds} must be between 1 and 900")
        if self.reserved_concurrency is not None and self.reserved_concurrency < 1:
            problems.append(f"reserved_concurrency={self.reserved_concurrency} must be at least 1 "
                            "(0 would throttle every invocation; None leaves it unreserved)")
        for name in self.environment:
            if not _ENV_NAME_RE.match(name) or name.startswith("AWS_") or name in _MANAGED_ENV:
                problems.append(f"environment variable {name!r} is invalid or reserved")
        for statement in self.statements:
            if statement.get("Effect") != "Allow" or not statement.get("Action") or not statement.get("Resource"):
                problems.append(f"statement {statement.get('Sid', statement)!r} needs Effect Allow, Action and "
                                "Resource")
        if problems:
            raise FunctionConfigError(f"function {self.handler_module!r}: " + "; ".join(problems))


class LambdaFunction(pulumi.ComponentResource):
    """A function with its own least-privilege role, encrypted log group, tracing, JSON logs and optional DLQ."""

    function: aws.lambda_.Function
    role: aws.iam.Role
    log_group: aws.cloudwatch.LogGroup
    dead_letter_queue: aws.sqs.Queue | None
    name: pulumi.Output[str]
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: FunctionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        args.validate()
        code = code_archive(args.handlers_root, args.handler_module)
        super().__init__("clickstream:compute:LambdaFunction", name, None, opts)
        stack = args.stack
        function_name = stack.physical_name(args.handler_module.replace("_", "-"))
        child = pulumi.ResourceOptions(parent=self)
        _, partition = account_and_partition(self)

        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=stack.log_retention_days,
            kms_key_id=args.key_arn,
            opts=child,
        )

        self.dead_letter_queue = None
        statements: list[Mapping[str, Any]] = [
            {"Sid": "WriteOwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": self.log_group.arn.apply(lambda arn: f"{arn}:*")},
            # X-Ray's trace APIs have no resource-level permissions: "*" is the only valid resource.
            {"Sid": "SendTraces", "Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
             "Resource": "*"},
            {"Sid": "DecryptOwnEnvironment", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": args.key_arn,
             "Condition": {"StringEquals": {"kms:EncryptionContext:LambdaFunctionName": function_name}}},
        ]
        if args.asynchronous:
            self.dead_letter_queue = failure_queue(
                self, f"{name}-dlq", stack.physical_name(f"{args.handler_module.replace('_', '-')}-dlq", 80),
                args.key_arn)
            statements += [
                {"Sid": "DeadLetterFailedEvents", "Effect": "Allow", "Action": ["sqs:SendMessage"],
                 "Resource": self.dead_letter_queue.arn},
                {"Sid": "EncryptDeadLetters", "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                 "Resource": args.key_arn},
            ]
        statements += args.statements

        self.role, role_policy = service_role(self, name, function_name, "lambda.amazonaws.com", statements,
                                              description=f"Execution role of {function_name}")

        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=function_name,
            description=args.description,
            role=self.role.arn,
            runtime=LAMBDA_RUNTIME,
            architectures=[stack.lambda_architecture],
            handler=f"{args.handler_module}.handler",
            code=code,
            layers=[partition.apply(stack.powertools_layer_arn)],
            memory_size=args.memory_mb,
            timeout=args.timeout_seconds,
            reserved_concurrent_executions=args.reserved_concurrency,
            kms_key_arn=args.key_arn,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={
                "POWERTOOLS_SERVICE_NAME": args.handler_module.replace("_", "-"),
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                **args.environment,
            }),
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(
                log_format="JSON",
                log_group=self.log_group.name,
                application_log_level="INFO",
                system_log_level="WARN",
            ),
            dead_letter_config=(aws.lambda_.FunctionDeadLetterConfigArgs(target_arn=self.dead_letter_queue.arn)
                                if self.dead_letter_queue else None),
            # The log group must exist (encrypted, with retention) before Lambda would create a plain one.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.log_group, role_policy]),
        )
        self.name = self.function.name
        self.arn = self.function.arn
        self.register_outputs({"name": self.function.name, "arn": self.function.arn})
