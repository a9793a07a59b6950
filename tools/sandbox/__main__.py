"""``python -m tools.sandbox`` (``make sandbox``): the reader loop on this machine.

Starts, in this order: LocalStack (host mode) while the program is synthesized with the sandbox config; in LocalStack
the collection API and its stream (from the synthesized resources), the queues and buckets the stack declares, and
the SSM parameters training would publish (names from the functions' environments, values from the Personalize
stand-in); the stand-in itself; the event processor in a Lambda host fed by the event source mapping emulation; the
serving API's handlers behind the local gateway; the demo blog and the tracker as a static site. The blog's posts
are registered through the real items handler (POST /items). Once everything answers, the URLs are printed and
written to ``.sandbox/urls.json`` (atomically); SIGINT or SIGTERM stops every process started here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tools.sandbox import collect_api, localstack
from tools.sandbox.localstack import ROOT, SANDBOX_DIR, LocalStackError, port_is_free
from tools.synth import ACCOUNT_ID, Synthesis, SynthesisError

URLS_FILE = SANDBOX_DIR / "urls.json"
TRACKER_DIR = ROOT / "web" / "dist"
QUEUE = "aws:sqs/queue:Queue"
BUCKET = "aws:s3/bucket:Bucket"
FUNCTION = "aws:lambda/function:Function"


class SandboxError(RuntimeError):
    """A problem the user can fix; printed as one line, without a traceback."""


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException: no ``except Exception`` on the way may swallow it)."""


# Set by SIGINT/SIGTERM. The start-up checks it between steps rather than being interrupted anywhere: an exception
# raised in the middle of starting a process (or a pool of them) could leave it running without anyone to stop it.
STOP_REQUESTED = threading.Event()


def _request_stop(signum: int, frame: FrameType | None) -> None:
    STOP_REQUESTED.set()


@dataclass
class Cleanup:
    """Everything started, stopped in reverse order (each step on its own: one failure does not stop the rest)."""

    steps: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def add(self, name: str, stop: Callable[[], None]) -> None:
        self.steps.append((name, stop))

    def run(self) -> None:
        while self.steps:
            name, stop = self.steps.pop()
            try:
                stop()
            except Exception as error:  # noqa: BLE001 (keep stopping the others)
                print(f"warning: stopping {name} failed: {error}", file=sys.stderr)


def log(message: str) -> None:
    print(f"[sandbox] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--site-port", type=int, default=8000, help="port of the demo blog (default 8000)")
    parser.add_argument("--port", type=int, default=8001, help="port of the serving API gateway (default 8001)")
    parser.add_argument("--localstack-port", type=int, default=0, help="LocalStack's port (default: a free one)")
    parser.add_argument("--urls-file", type=Path, default=URLS_FILE, help="where to write the URLs once ready")
    parser.add_argument("--faults", action="store_true",
                        help="put the fault proxy (tools/sandbox/faults.py) in front of the collection API: the site "
                             "posts through it, urls.json names its control URL as faultsUrl")
    return parser.parse_args(argv)


def check_ports(*ports: int) -> None:
    for port in ports:
        if port and not port_is_free(port):
            raise SandboxError(f"port {port} on 127.0.0.1 is busy: choose another one (--site-port, --port)")


def check_tracker() -> None:
    if not (TRACKER_DIR / "clickstream.min.js").is_file():
        raise SandboxError(f"the tracker is not built ({TRACKER_DIR}/clickstream.min.js missing): run `npm run build`")


def write_atomically(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".urls-", dir=path.parent)
    with os.fdopen(handle, "w") as file:
        json.dump(document, file, indent=2)
        file.write("\n")
    os.replace(temporary, path)


# --- the stack's resources in LocalStack ------------------------------------------------------------------------------

def create_queues(sqs: Any, synthesis: Synthesis) -> dict[str, str]:
    """Every declared queue, by name; returns the synthesized URL (and ARN) -> LocalStack URL."""
    replacements: dict[str, str] = {}
    for queue in synthesis.of_type(QUEUE):
        name = str(queue.inputs["name"])
        attributes = {"VisibilityTimeout": str(int(queue.inputs.get("visibilityTimeoutSeconds", 30)))}
        url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        replacements[str(queue.outputs["url"])] = url
        replacements[str(queue.outputs["arn"])] = collect_api.local_arn(str(queue.outputs["arn"])) or ""
    return replacements


def create_buckets(s3: Any, synthesis: Synthesis, region: str) -> list[str]:
    names = [str(b.inputs.get("bucket") or b.outputs.get("bucket")) for b in synthesis.of_type(BUCKET)]
    for name in names:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    return names


def function_parameters(synthesis: Synthesis) -> set[str]:
    """SSM parameter names the functions are given (values of their ``*_PARAMETER`` variables)."""
    names = set()
    for function in synthesis.of_type(FUNCTION):
        for key, value in ((function.inputs.get("environment") or {}).get("variables") or {}).items():
            if str(key).endswith("_PARAMETER") and str(value).startswith("/"):
                names.add(str(value))
    return names


def publish_parameters(ssm: Any, names: set[str], values: Mapping[str, str]) -> dict[str, str]:
    """What training would publish: each parameter the functions read whose last segment the stand-in answers."""
    published = {}
    for name in sorted(names):
        key = name.rsplit("/", 1)[-1]
        if key in values:
            ssm.put_parameter(Name=name, Value=values[key], Type="String", Overwrite=True)
            published[name] = values[key]
    return published


def localize(value: str, replacements: Mapping[str, str]) -> str:
    """A synthesized value as the sandbox knows it: LocalStack's queue URLs, LocalStack's account in ARNs."""
    if value in replacements:
        return replacements[value]
    return collect_api.local_arn(value) or value if f":{ACCOUNT_ID}:" in value else value


def localized_overrides(synthesis: Synthesis, handlers: set[str], replacements: Mapping[str, str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for function in synthesis.of_type(FUNCTION):
        if str(function.inputs.get("handler", "")).split(".")[0] not in handlers:
            continue
        for key, value in ((function.inputs.get("environment") or {}).get("variables") or {}).items():
            local = localize(str(value), replacements)
            if local != value:
                overrides[str(key)] = local
    return overrides


# --- readiness --------------------------------------------------------------------------------------------------------

def http_ok(url: str, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (our own http URLs)
            return bool(200 <= response.status < 400)
    except (urllib.error.URLError, OSError):
        return False


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SandboxError(f"{what} did not become ready in {timeout:.0f} s")
        time.sleep(0.1)


def post_json(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def items_credentials(synthesis: Synthesis, api_key: str, region: str) -> Callable[[str, bytes], dict[str, str]]:
    """How the stack lets a CMS call POST /items: signed with SigV4 (``AWS_IAM``, as the sandbox's CMS principal)
    and/or with the API key, whatever the synthesized method declares."""
    from tools.sandbox.gateway import SANDBOX_CMS, serving_routes, sign_request

    [route] = [r for r in serving_routes(synthesis) if r.resource == "/items" and r.method == "POST"]

    def headers(url: str, body: bytes) -> dict[str, str]:
        key = {"x-api-key": api_key} if route.api_key_required else {}
        if route.authorization == "AWS_IAM":
            return sign_request("POST", url, body, SANDBOX_CMS, region,
                                {"Content-Type": "application/json", **key})
        return key

    return headers


def register_posts(items_url: str, credentials: Callable[[str, bytes], dict[str, str]],
                   items: list[dict[str, Any]]) -> int:
    """The blog's posts through the real items handler, 100 per request (the API's limit)."""
    stored = 0
    for start in range(0, len(items), 100):
        body = json.dumps({"items": items[start:start + 100]}).encode()
        status, reply = post_json(items_url, body, credentials(items_url, body))
        if status != 200:
            raise SandboxError(f"registering the blog's posts failed: POST /items answered {status} {reply}")
        stored += int(reply.get("stored", 0))
    return stored


# --- the demo blog ----------------------------------------------------------------------------------------------------

def build_blog(out_dir: Path, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The demo blog's pages in ``out_dir``; returns its posts as POST /items entries."""
    try:
        from tools.sandbox import blog
    except ImportError as error:
        raise SandboxError(f"the demo blog generator is missing (tools/sandbox/blog.py): {error}") from error
    items: list[dict[str, Any]] = blog.build_site(out_dir, **settings)
    return items


# --- the whole sandbox ------------------------------------------------------------------------------------------------

@dataclass
class Sandbox:
    args: argparse.Namespace
    cleanup: Cleanup = field(default_factory=Cleanup)
    urls: dict[str, Any] = field(default_factory=dict)
    consumer: Any = None

    def step(self, message: str) -> None:
        """A point where the start-up may stop: between two steps, never inside one."""
        if STOP_REQUESTED.is_set():
            raise Stopped
        log(message)

    def start(self) -> dict[str, Any]:
        args = self.args
        check_ports(args.site_port, args.port, args.localstack_port)
        check_tracker()
        localstack.python313()  # a clear error before anything starts
        # The program accepts http origins for localhost only; the page must be opened under that name.
        site_origins = [f"http://localhost:{args.site_port}"]
        workdir = Path(tempfile.mkdtemp(prefix="run-", dir=SANDBOX_DIR))
        self.cleanup.add("the work directory", lambda: shutil.rmtree(workdir, ignore_errors=True))

        with ThreadPoolExecutor(max_workers=1) as pool:
            booting: Future[localstack.LocalStack] = pool.submit(self._localstack, args.localstack_port, workdir)
            self.step("synthesizing the program with the sandbox config")
            synthesis = collect_api.synthesize_sandbox(site_origins)
            stack = booting.result()
        region = collect_api.REGION

        self.step("creating the collection API, stream, queues, buckets and parameters in LocalStack")
        api = collect_api.deploy(synthesis, stack.client("apigateway"), stack.client("kinesis"), stack.url)
        collect_url, faults = api.collect_url, None
        if args.faults:
            from tools.sandbox.faults import FaultProxy

            faults = FaultProxy(api.collect_url, allowed_origins=site_origins).start()
            self.cleanup.add("the fault proxy", faults.stop)
            collect_url = faults.collect_url
        replacements = create_queues(stack.client("sqs"), synthesis)
        create_buckets(stack.client("s3"), synthesis, region)

        from tools.fake_personalize import LoopbackServer
        from tools.sandbox.personalize import PersonalizeStandIn

        stand_in = PersonalizeStandIn(region=region, prefix=str(synthesis.outputs.get("namePrefix") or "sandbox"))
        personalize = LoopbackServer.for_app(stand_in)
        self.cleanup.add("the Personalize stand-in", personalize.stop)
        wait_until(lambda: http_ok(f"{personalize.url}/_sandbox/health"), "the Personalize stand-in")
        published = publish_parameters(stack.client("ssm"), function_parameters(synthesis), stand_in.parameters())

        endpoints = {"AWS_ENDPOINT_URL": stack.url, "AWS_ENDPOINT_URL_PERSONALIZE": personalize.url,
                     "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": personalize.url,
                     "AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME": personalize.url}
        serving_key = secrets.token_urlsafe(24)
        self.step("starting the functions (event processor, recommendations, items)")
        consumer, failure_queue = self._event_processor(synthesis, stack, api, endpoints, replacements, workdir)
        self.step("starting the serving API")
        serving = self._serving(synthesis, endpoints, replacements, workdir, serving_key, site_origins, args.port)

        self.step("building the demo blog and registering its posts")
        site_dir = workdir / "site"
        recommendations_url = f"{serving.url}/recommendations"
        items = build_blog(site_dir, {"collect_url": collect_url, "recommendations_url": recommendations_url,
                                      "serving_api_key": serving_key, "collect_api_key": None,
                                      "tracker_url": "/tracker/clickstream.min.js"})
        stored = register_posts(f"{serving.url}/items", items_credentials(synthesis, serving_key, region), items)
        log(f"registered {stored} posts through POST /items")

        from tools.sandbox.gateway import StaticSite

        self.step("serving the demo blog and the tracker")
        site = StaticSite({"/": site_dir, "/tracker/": TRACKER_DIR}).serve(args.site_port)
        self.cleanup.add("the static site", site.stop)
        site_url = f"http://localhost:{args.site_port}/"
        wait_until(lambda: http_ok(site_url), "the demo blog")
        self.urls = {
            "site": site_url,
            "collectUrl": collect_url,
            "upstreamCollectUrl": api.collect_url,
            "collectApiKey": None,
            "recommendationsUrl": recommendations_url,
            "servingUrl": serving.url,
            "servingApiKey": serving_key,
            "personalizeUrl": personalize.url,
            "localstackUrl": stack.url,
            "region": region,
            "streamName": api.spec.stream_name,
            "failureQueueUrl": failure_queue,
            "parameters": published,
            "posts": len(items),
            "pid": os.getpid(),
        }
        if faults is not None:
            self.urls["faultsUrl"] = faults.control_url
        self.consumer = consumer
        return self.urls

    def _localstack(self, port: int, workdir: Path) -> localstack.LocalStack:
        if not localstack.is_installed():
            log("installing LocalStack into .sandbox/localstack-venv (first run only)")
            localstack.install_venv()
        self.step("starting LocalStack")
        began = time.monotonic()
        stack = localstack.start(port or None, also_clean=[workdir])
        self.cleanup.add("LocalStack", stack.stop)
        log(f"LocalStack ready at {stack.url} in {time.monotonic() - began:.1f} s")
        return stack

    def _event_processor(self, synthesis: Synthesis, stack: localstack.LocalStack, api: collect_api.CollectionApi,
                         endpoints: Mapping[str, str], replacements: Mapping[str, str],
                         workdir: Path) -> tuple[Any, str | None]:
        from tools.sandbox.lambda_host import FunctionSpec, LambdaHost, sandbox_environment
        from tools.sandbox.stream_consumer import BatchDelivery, SqsDestination, StreamConsumer, kinesis_mapping

        config, function = kinesis_mapping(synthesis)
        module = str(function.inputs["handler"]).split(".")[0]
        spec = FunctionSpec.from_synthesis(synthesis, module)
        environment = sandbox_environment(spec, endpoints, collect_api.REGION,
                                          localized_overrides(synthesis, {module}, replacements))
        host = LambdaHost.start(module, environment, spec.timeout_seconds, workdir / module,
                                function_name=spec.name, memory_mb=spec.memory_mb)
        self.cleanup.add("the event processor", host.stop)
        failure_url = replacements.get(self._queue_url_of(synthesis, config.on_failure_arn)) \
            if config.on_failure_arn else None
        destination = SqsDestination(stack.client("sqs"), failure_url) if failure_url else None
        from dataclasses import replace

        local_config = replace(config, stream_arn=api.stream_arn,
                               function_arn=collect_api.local_arn(config.function_arn) or config.function_arn,
                               on_failure_arn=collect_api.local_arn(config.on_failure_arn))
        delivery = BatchDelivery(config=local_config, host=host, destination=destination, region=collect_api.REGION,
                                 retry_delay_seconds=0.5)
        consumer = StreamConsumer(stack.client("kinesis"), api.spec.stream_name, delivery).start()

        def stop_consuming() -> None:
            # The function first: a batch in flight then ends at once instead of running to the function's timeout.
            delivery.stopping.set()
            host.stop()
            consumer.stop()

        self.cleanup.add("the stream consumer", stop_consuming)
        return consumer, failure_url

    @staticmethod
    def _queue_url_of(synthesis: Synthesis, arn: str | None) -> str:
        for queue in synthesis.of_type(QUEUE):
            if queue.outputs.get("arn") == arn:
                return str(queue.outputs["url"])
        raise SandboxError(f"the mapping's on-failure destination {arn} is not a queue of the stack")

    def _serving(self, synthesis: Synthesis, endpoints: Mapping[str, str], replacements: Mapping[str, str],
                 workdir: Path, api_key: str, origins: list[str], port: int) -> Any:
        from tools.sandbox.gateway import Serving, serving_routes

        handlers = set()
        for route in serving_routes(synthesis):
            for function in synthesis.of_type(FUNCTION):
                if route.function and function.inputs.get("name") == route.function:
                    handlers.add(str(function.inputs["handler"]).split(".")[0])
        serving = Serving.start(synthesis, workdir / "serving", endpoints=endpoints, region=collect_api.REGION,
                                api_keys={api_key}, allowed_origins=origins, port=port,
                                overrides=localized_overrides(synthesis, handlers, replacements))
        self.cleanup.add("the serving API", serving.stop)
        return serving


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    previous = {s: signal.signal(s, _request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sandbox = Sandbox(args)
    try:
        with stop_on_signals():
            try:
                urls = sandbox.start()
                write_atomically(args.urls_file, urls)
                sandbox.cleanup.add("the URLs file", lambda: args.urls_file.unlink(missing_ok=True))
                print(f"Demo blog:        {urls['site']}\nCollect API:      {urls['collectUrl']}\n"
                      f"Recommendations:  {urls['recommendationsUrl']}  (x-api-key: {urls['servingApiKey']})\n"
                      f"URLs written to {args.urls_file}; stop with Ctrl-C.", flush=True)
                while not STOP_REQUESTED.is_set():  # no Event.wait(): the handler's set() could deadlock with it
                    time.sleep(0.2)
            finally:
                log("stopping")
                sandbox.cleanup.run()
    except Stopped:
        return 0
    except (SandboxError, LocalStackError, collect_api.CollectApiError, LookupError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except SynthesisError as error:
        print(f"error: the program does not synthesize with the sandbox config: {error}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"error: LocalStack refused a request: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # a failing start-up: one line, not a traceback
        from tools.sandbox.lambda_host import LambdaStartError

        if isinstance(error, LambdaStartError):
            print(f"error: a function did not start: {error}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
