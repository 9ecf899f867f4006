"""Conformance of the emulator against Google's official Python SDK (google-genai).

Our emulator is only useful if code written for the real Gemini API runs against it unchanged.
The strongest evidence is Google's own SDK: this script uses `google-genai` exactly as a user
would (the client reads GOOGLE_GEMINI_BASE_URL and GOOGLE_API_KEY from the environment) and
checks that every call the tutorial relies on parses, and that errors come back as the SDK's
typed exceptions with the fields a real server fills in.

It also drives Batch Mode, the Files API and the Flex tier the way their guides do: batch jobs
made from inline requests and from an uploaded JSONL file, read until done, listed across
pages, cancelled and deleted; the results file downloaded and joined by key; generate_content
with service_tier=FLEX, shed and refused.

It is run by `emulator/tests/python_sdk.rs`, which starts the emulators and sets:

  GOOGLE_GEMINI_BASE_URL        an emulator with no rate limits that only accepts GOOGLE_API_KEY;
                                its batch jobs finish in well under a second, and it sheds every
                                CONFORMANCE_FLEX_SHED_EVERY-th Flex request
  GOOGLE_API_KEY                that key (the wrong-key check needs the emulator to insist on it)
  CONFORMANCE_LIMITED_BASE_URL  an emulator allowing CONFORMANCE_LIMITED_RPM requests per (long)
                                window, for the 429 checks; it must not have served any request yet.
                                Its batch jobs stay unfinished for an hour (to be cancelled), and
                                it allows CONFORMANCE_LIMITED_ENQUEUED_TOKENS enqueued batch tokens
  CONFORMANCE_LIMITED_RPM       that limit (default 2)
  CONFORMANCE_FLEX_SHED_EVERY   the main emulator's Flex shedding period (default 2)
  CONFORMANCE_LIMITED_ENQUEUED_TOKENS  the limited emulator's enqueued-token limit (default 50)

Prints one line per check and exits 1 if any check failed (2 on a usage error).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
import time
import traceback
import warnings
from typing import Any, Callable

from google import genai
from google.genai import errors, types

MODEL = "gemini-flash-latest"
PROMPT = "Why do some birds migrate?"
UNKNOWN_MODEL = "gemini-no-such-model"
# Models every Gemini API account lists; the emulator's catalog must have them too.
EXPECTED_MODELS = {
    "models/gemini-flash-latest",
    "models/gemini-flash-lite-latest",
    "models/gemini-2.5-flash",
    "models/gemini-2.5-flash-lite",
    "models/gemini-2.5-pro",
}
RPC = "type.googleapis.com/google.rpc."
BATCH_MODEL = "gemini-2.5-flash"
BATCH_NAME = re.compile(r"batches/[a-z0-9]{36}")
FILE_NAME = re.compile(r"files/[a-z0-9]{12}")
DONE = {
    types.JobState.JOB_STATE_SUCCEEDED,
    types.JobState.JOB_STATE_FAILED,
    types.JobState.JOB_STATE_CANCELLED,
    types.JobState.JOB_STATE_EXPIRED,
}
# How often, and how many times, a batch job is read before the check gives up.
BATCH_POLL_SECONDS = 0.05
BATCH_POLLS = 600


class Failed(Exception):
    """A check's expectation did not hold."""


def expect(condition: bool, what: str) -> None:
    """Fails the current check with `what` unless `condition` holds."""
    if not condition:
        raise Failed(what)


class Runner:
    """Runs checks one by one, printing one line each, and remembers the failures."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.count = 0

    def check(self, name: str, body: Callable[[], str]) -> None:
        """Runs `body`, which returns a short detail on success and raises on failure."""
        self.count += 1
        try:
            detail = body()
        except Failed as failure:
            self._fail(name, str(failure))
        except Exception as exc:  # noqa: BLE001 -- any surprise is a failed check, not a crash
            self._fail(name, f"unexpected {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stdout)
        else:
            print(f"ok    {name}: {detail}", flush=True)

    def _fail(self, name: str, why: str) -> None:
        self.failures.append(name)
        print(f"FAIL  {name}: {why}", flush=True)


# ---------------------------------------------------------------------------------------------
# Helpers


def usage_consistent(usage: types.GenerateContentResponseUsageMetadata | None) -> str:
    """Checks the token arithmetic real responses obey: total = prompt + candidates + thoughts."""
    expect(usage is not None, "usage_metadata missing")
    prompt = usage.prompt_token_count or 0
    candidates = usage.candidates_token_count or 0
    thoughts = usage.thoughts_token_count or 0
    total = usage.total_token_count or 0
    expect(prompt > 0, f"prompt_token_count is {usage.prompt_token_count}")
    expect(candidates > 0, f"candidates_token_count is {usage.candidates_token_count}")
    expect(
        total == prompt + candidates + thoughts,
        f"total_token_count {total} != prompt {prompt} + candidates {candidates} + thoughts {thoughts}",
    )
    return f"tokens {prompt}+{candidates}+{thoughts}={total}"


def check_response(response: types.GenerateContentResponse) -> str:
    """The checks every successful generate_content response must pass."""
    text = response.text
    expect(bool(text and text.strip()), f"empty text: {text!r}")
    expect(bool(response.model_version), f"model_version not set: {response.model_version!r}")
    expect(bool(response.response_id), f"response_id not set: {response.response_id!r}")
    candidate = (response.candidates or [None])[0]
    expect(candidate is not None, "no candidates")
    expect(
        candidate.finish_reason == types.FinishReason.STOP,
        f"finish_reason is {candidate.finish_reason!r}, expected STOP",
    )
    tokens = usage_consistent(response.usage_metadata)
    return f"{len(text)} chars, model_version {response.model_version}, {tokens}"


def expect_client_error(call: Callable[[], Any], code: int, status: str) -> errors.ClientError:
    """Runs `call` and returns the ClientError it must raise, with this HTTP code and status."""
    try:
        result = call()
    except errors.ClientError as err:
        expect(err.code == code, f"code {err.code}, expected {code} ({err})")
        expect(err.status == status, f"status {err.status!r}, expected {status!r}")
        expect(bool(err.message), "message is empty")
        return err
    raise Failed(f"no error raised (got {type(result).__name__})")


def error_details(err: errors.APIError) -> list[dict[str, Any]]:
    """The google.rpc details list of an error; the SDK keeps the whole body in `err.details`."""
    body = err.details
    expect(isinstance(body, dict) and "error" in body, f"err.details is not an error body: {body!r}")
    details = body["error"].get("details", [])
    expect(isinstance(details, list), f"error.details is not a list: {details!r}")
    return details


def detail_of(err: errors.APIError, rpc_type: str) -> dict[str, Any]:
    """The first `details[]` entry of type google.rpc.<rpc_type>."""
    details = error_details(err)
    for entry in details:
        if entry.get("@type") == RPC + rpc_type:
            return entry
    types_seen = [entry.get("@type") for entry in details]
    raise Failed(f"no {rpc_type} in details (saw {types_seen})")


def retry_delay_seconds(err: errors.APIError) -> float:
    """RetryInfo.retryDelay as seconds; it is a protobuf Duration string like "26s" or "1.5s"."""
    delay = detail_of(err, "RetryInfo").get("retryDelay")
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(delay))
    expect(match is not None, f"retryDelay {delay!r} is not a Duration string")
    return float(match.group(1))


def api_version(client: genai.Client) -> str | None:
    """The API version the SDK puts in URLs (private attribute; None if the SDK moved it)."""
    options = getattr(getattr(client, "_api_client", None), "_http_options", None)
    return getattr(options, "api_version", None)


# ---------------------------------------------------------------------------------------------
# Checks against the unlimited emulator


def generate(client: genai.Client) -> str:
    return check_response(client.models.generate_content(model=MODEL, contents=PROMPT))


def generate_v1beta() -> str:
    # Older SDKs (and Google's curl samples) use v1beta; the emulator must serve both.
    with genai.Client(http_options=types.HttpOptions(api_version="v1beta")) as client:
        return "v1beta: " + check_response(
            client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
        )


def async_batch() -> str:
    async def run() -> list[types.GenerateContentResponse]:
        # As in the tutorial's step 3: one client, five coroutines, asyncio.gather.
        async with genai.Client().aio as client:
            coroutines = [
                client.models.generate_content(model=MODEL, contents=PROMPT) for _ in range(5)
            ]
            return await asyncio.gather(*coroutines)

    responses = asyncio.run(run())
    expect(len(responses) == 5, f"{len(responses)} responses")
    for response in responses:
        check_response(response)
    ids = {response.response_id for response in responses}
    expect(len(ids) == 5, f"response ids are not unique: {sorted(ids)}")
    return "5 responses, distinct response ids"


def stream(client: genai.Client) -> str:
    chunks = list(client.models.generate_content_stream(model=MODEL, contents=PROMPT))
    expect(len(chunks) > 1, f"{len(chunks)} chunk(s), expected more than 1")
    text = "".join(chunk.text or "" for chunk in chunks)
    expect(bool(text.strip()), "concatenated text is empty")
    ids = {chunk.response_id for chunk in chunks}
    expect(len(ids) == 1 and None not in ids, f"response_id differs between chunks: {ids}")
    expect(all(chunk.model_version for chunk in chunks), "a chunk has no model_version")
    last = chunks[-1].candidates[0]
    expect(
        last.finish_reason == types.FinishReason.STOP,
        f"last chunk finish_reason {last.finish_reason!r}, expected STOP",
    )
    tokens = usage_consistent(chunks[-1].usage_metadata)
    return f"{len(chunks)} chunks, {len(text)} chars, final {tokens}"


def count_tokens(client: genai.Client) -> str:
    counted = client.models.count_tokens(model=MODEL, contents=PROMPT)
    expect(bool(counted.total_tokens), f"total_tokens is {counted.total_tokens!r}")
    response = client.models.generate_content(model=MODEL, contents=PROMPT)
    prompt_tokens = response.usage_metadata.prompt_token_count
    expect(
        counted.total_tokens == prompt_tokens,
        f"count_tokens {counted.total_tokens} != generate_content prompt_token_count {prompt_tokens}",
    )
    return f"total_tokens {counted.total_tokens} == prompt_token_count"


def list_models(client: genai.Client) -> str:
    names = [model.name for model in client.models.list()]
    missing = EXPECTED_MODELS - set(names)
    expect(not missing, f"missing {sorted(missing)} in {names}")
    expect(len(names) == len(set(names)), f"duplicates in {names}")
    # A small page size makes the SDK's pager follow nextPageToken; the result must not change.
    paged = [model.name for model in client.models.list(config={"page_size": 2})]
    expect(paged == names, f"page_size=2 listed {paged}, default listed {names}")
    return f"{len(names)} models, paging by 2 gives the same list"


def get_model(client: genai.Client) -> str:
    model = client.models.get(model="gemini-2.5-flash")
    expect(model.name == "models/gemini-2.5-flash", f"name {model.name!r}")
    expect(bool(model.display_name), "display_name empty")
    expect(model.input_token_limit == 1048576, f"input_token_limit {model.input_token_limit}")
    expect(model.output_token_limit == 65536, f"output_token_limit {model.output_token_limit}")
    actions = model.supported_actions or []
    expect("generateContent" in actions, f"supported_actions {actions}")
    prefixed = client.models.get(model="models/gemini-flash-latest")
    expect(prefixed.name == "models/gemini-flash-latest", f"name {prefixed.name!r}")
    return f"{model.name} ({model.display_name}), models/ prefix accepted"


def wrong_key() -> str:
    with genai.Client(api_key="not-the-right-key") as client:
        err = expect_client_error(
            lambda: client.models.generate_content(model=MODEL, contents=PROMPT),
            400,
            "INVALID_ARGUMENT",
        )
    expect(
        err.message == "API key not valid. Please pass a valid API key.",
        f"message {err.message!r}",
    )
    reason = detail_of(err, "ErrorInfo").get("reason")
    expect(reason == "API_KEY_INVALID", f"ErrorInfo.reason {reason!r}")
    return f"{err.code} {err.status}, ErrorInfo {reason}"


def unknown_model(client: genai.Client) -> str:
    err = expect_client_error(
        lambda: client.models.generate_content(model=UNKNOWN_MODEL, contents=PROMPT),
        404,
        "NOT_FOUND",
    )
    expect(f"models/{UNKNOWN_MODEL}" in err.message, f"message does not name the model: {err.message!r}")
    version = api_version(client)
    if version:
        expect(
            f"API version {version}," in err.message,
            f"message does not name API version {version}: {err.message!r}",
        )
    return f"{err.code} {err.status}: {err.message[:60]}..."


def unknown_model_stream(client: genai.Client) -> str:
    # Errors before a stream starts arrive as text/event-stream with a plain JSON body.
    err = expect_client_error(
        lambda: list(client.models.generate_content_stream(model=UNKNOWN_MODEL, contents=PROMPT)),
        404,
        "NOT_FOUND",
    )
    return f"{err.code} {err.status}"


def unknown_model_get(client: genai.Client) -> str:
    err = expect_client_error(lambda: client.models.get(model=UNKNOWN_MODEL), 404, "NOT_FOUND")
    return f"{err.code} {err.status}"


# ---------------------------------------------------------------------------------------------
# Batch Mode, the Files API and Flex, against the unlimited emulator


def wait_for_batch(client: genai.Client, name: str) -> types.BatchJob:
    """Reads a batch job until it is done, as the Batch API guide's polling loop does."""
    for _ in range(BATCH_POLLS):
        job = client.batches.get(name=name)
        if job.state in DONE:
            return job
        time.sleep(BATCH_POLL_SECONDS)
    raise Failed(f"{name} not done after {BATCH_POLLS} reads")


def inline_request(prompt: str, key: str) -> dict[str, Any]:
    """One inline request of a batch, as the guide writes them (a dict with metadata)."""
    return {"contents": [{"parts": [{"text": prompt}], "role": "user"}], "metadata": {"key": key}}


def batch_inline(client: genai.Client, created: list[str]) -> str:
    prompts = {"sky": "Why is the sky blue?", "birds": PROMPT, "rainbows": "How do rainbows form?"}
    src = [inline_request(prompt, key) for key, prompt in prompts.items()]
    job = client.batches.create(
        model=BATCH_MODEL, src=src, config={"display_name": "conformance-inline"}
    )
    created.append(job.name)
    expect(bool(BATCH_NAME.fullmatch(job.name or "")), f"name {job.name!r}")
    expect(job.state == types.JobState.JOB_STATE_PENDING, f"state {job.state!r} at creation")
    expect(job.model == f"models/{BATCH_MODEL}", f"model {job.model!r}")
    expect(job.display_name == "conformance-inline", f"display_name {job.display_name!r}")
    expect(job.create_time is not None, "no create_time")
    done = wait_for_batch(client, job.name)
    expect(done.state == types.JobState.JOB_STATE_SUCCEEDED, f"ended {done.state!r}")
    expect(done.end_time is not None and done.end_time >= done.create_time, "end_time")
    answers = (done.dest.inlined_responses if done.dest else None) or []
    expect(len(answers) == len(prompts), f"{len(answers)} inlined responses, expected {len(prompts)}")
    by_key = {(answer.metadata or {}).get("key"): answer for answer in answers}
    expect(set(by_key) == set(prompts), f"keys {sorted(map(str, by_key))}")
    for answer in answers:
        expect(answer.error is None, f"error {answer.error}")
        check_response(answer.response)
    # The same machinery as generate_content: the same answer to the same prompt.
    direct = client.models.generate_content(model=BATCH_MODEL, contents=PROMPT)
    expect(
        by_key["birds"].response.text == direct.text,
        "the batch answer differs from generate_content's for the same prompt",
    )
    return f"{len(answers)} answers joined by key, same text as generate_content"


def batch_file(client: genai.Client, created: list[str]) -> str:
    keys = [f"row-{i}" for i in range(8)]
    lines = [
        json.dumps({"key": key, "request": {"contents": [{"parts": [{"text": f"Tell me about {key}"}]}]}})
        for key in keys
    ]
    data = ("\n".join(lines) + "\n").encode()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "requests.jsonl")
        with open(path, "wb") as file:
            file.write(data)
        uploaded = client.files.upload(
            file=path, config={"mime_type": "jsonl", "display_name": "conformance-input"}
        )
    expect(bool(FILE_NAME.fullmatch(uploaded.name or "")), f"file name {uploaded.name!r}")
    expect(uploaded.size_bytes == len(data), f"size_bytes {uploaded.size_bytes}, sent {len(data)}")
    expect(uploaded.mime_type == "jsonl", f"mime_type {uploaded.mime_type!r}")
    expect(uploaded.state == types.FileState.ACTIVE, f"state {uploaded.state!r}")
    expect(uploaded.source == types.FileSource.UPLOADED, f"source {uploaded.source!r}")
    expect(client.files.get(name=uploaded.name).size_bytes == len(data), "files.get disagrees")

    job = client.batches.create(
        model=BATCH_MODEL, src=uploaded.name, config={"display_name": "conformance-file"}
    )
    created.append(job.name)
    done = wait_for_batch(client, job.name)
    expect(done.state == types.JobState.JOB_STATE_SUCCEEDED, f"ended {done.state!r}")
    results_name = "files/batch-" + job.name.split("/", 1)[1]
    expect(done.dest is not None and done.dest.file_name == results_name, f"dest {done.dest}")
    results = client.files.get(name=results_name)
    expect(results.source == types.FileSource.GENERATED, f"results source {results.source!r}")
    expect(bool(results.download_uri), "the results file has no download_uri")
    raw = client.files.download(file=results_name)
    expect(results.size_bytes == len(raw), f"size_bytes {results.size_bytes}, downloaded {len(raw)}")
    outputs = [json.loads(line) for line in raw.decode().splitlines()]
    order = [output.get("key") for output in outputs]
    expect(sorted(order) == sorted(keys), f"keys {order}")
    expect(order != keys, "results came in input order: nothing tests that clients join by key")
    for output in outputs:
        expect("response" in output, f"line without a response: {output}")
        response = types.GenerateContentResponse._from_response(response=output["response"], kwargs={})
        expect(output["key"] in (response.text or ""), f"the answer for {output['key']} is not about it")
        usage_consistent(response.usage_metadata)

    client.files.delete(name=uploaded.name)
    expect_client_error(lambda: client.files.get(name=uploaded.name), 404, "NOT_FOUND")
    return f"uploaded {len(data)} bytes, {len(outputs)} result lines joined by key (order shuffled)"


def batch_list(client: genai.Client, created: list[str]) -> str:
    pager = client.batches.list(config={"page_size": 1})
    expect(len(pager.page) == 1, f"first page has {len(pager.page)} jobs, asked for 1")
    listed = [job.name for job in pager]
    expect(len(listed) == len(set(listed)), f"duplicates in {listed}")
    missing = set(created) - set(listed)
    expect(not missing, f"created but not listed: {sorted(missing)}")
    return f"{len(listed)} jobs over pages of 1"


def batch_unknown_model(client: genai.Client) -> str:
    err = expect_client_error(
        lambda: client.batches.create(model=UNKNOWN_MODEL, src=[inline_request("hi", "k")]),
        404,
        "NOT_FOUND",
    )
    expect("batchGenerateContent" in err.message, f"message does not name the method: {err.message!r}")
    return f"{err.code} {err.status}"


def raw_usage(response: types.GenerateContentResponse) -> dict[str, Any]:
    """usageMetadata from the raw body (the SDK's usage type has no service_tier field)."""
    body = response.sdk_http_response.body if response.sdk_http_response else None
    expect(bool(body), "no raw body (should_return_http_response)")
    return json.loads(body).get("usageMetadata", {})


def flex(client: genai.Client, shed_every: int) -> str:
    expect(shed_every >= 2, f"CONFORMANCE_FLEX_SHED_EVERY is {shed_every}; the check needs 2 or more")
    raw = types.GenerateContentConfig(service_tier=types.ServiceTier.FLEX, should_return_http_response=True)
    plain = types.GenerateContentConfig(service_tier=types.ServiceTier.FLEX)
    # The emulator sheds Flex requests number shed_every, 2 * shed_every, ...: the ones before
    # the first are served.
    first = client.models.generate_content(model=MODEL, contents=PROMPT, config=raw)
    tier = raw_usage(first).get("serviceTier")
    expect(tier == "flex", f"usageMetadata.serviceTier {tier!r}")
    for _ in range(shed_every - 2):
        check_response(client.models.generate_content(model=MODEL, contents=PROMPT, config=plain))
    err = expect_client_error(
        lambda: client.models.generate_content(model=MODEL, contents=PROMPT, config=plain),
        429,
        "RESOURCE_EXHAUSTED",
    )
    expect(error_details(err) == [], "a shed request carries quota details")
    check_response(client.models.generate_content(model=MODEL, contents=PROMPT, config=plain))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK warns that "turbo" is not a ServiceTier
        bad = expect_client_error(
            lambda: client.models.generate_content(
                model=MODEL, contents=PROMPT, config={"service_tier": "turbo"}
            ),
            400,
            "INVALID_ARGUMENT",
        )
    expect("service_tier" in bad.message, f"message {bad.message!r}")
    return (
        f"served with usageMetadata.serviceTier flex; request {shed_every} shed -> 429 without "
        "quota details; unknown tier -> 400"
    )


# ---------------------------------------------------------------------------------------------
# Checks against the rate-limited emulator


def rate_limited(base_url: str, rpm: int) -> str:
    options = types.HttpOptions(base_url=base_url)
    with genai.Client(http_options=options) as client:
        for _ in range(rpm):
            check_response(client.models.generate_content(model=MODEL, contents=PROMPT))
        err = expect_client_error(
            lambda: client.models.generate_content(model=MODEL, contents=PROMPT),
            429,
            "RESOURCE_EXHAUSTED",
        )
        stream_err = expect_client_error(
            lambda: list(client.models.generate_content_stream(model=MODEL, contents=PROMPT)),
            429,
            "RESOURCE_EXHAUSTED",
        )
    expect(
        err.message.startswith("You exceeded your current quota"),
        f"message {err.message[:80]!r}",
    )
    delay = retry_delay_seconds(err)
    expect(delay > 0, f"retryDelay {delay} is not positive")
    violations = detail_of(err, "QuotaFailure").get("violations") or []
    expect(bool(violations), "QuotaFailure has no violations")
    quota_id = violations[0].get("quotaId", "")
    expect(bool(quota_id), f"violation without quotaId: {violations[0]}")
    stream_delay = retry_delay_seconds(stream_err)
    return (
        f"after {rpm} ok: {err.code} {err.status}, RetryInfo {delay:g}s, {quota_id}; "
        f"stream also 429 (retry {stream_delay:g}s)"
    )


def batch_cancel_delete_and_quota(base_url: str, enqueued_tokens: int) -> str:
    options = types.HttpOptions(base_url=base_url)
    with genai.Client(http_options=options) as client:
        job = client.batches.create(
            model=BATCH_MODEL, src=[inline_request(PROMPT, "only")], config={"display_name": "to-cancel"}
        )
        client.batches.cancel(name=job.name)
        cancelled = client.batches.get(name=job.name)
        expect(cancelled.state == types.JobState.JOB_STATE_CANCELLED, f"state {cancelled.state!r}")
        expect(cancelled.dest is None, f"a cancelled job has results: {cancelled.dest}")
        client.batches.delete(name=job.name)
        expect_client_error(lambda: client.batches.get(name=job.name), 404, "NOT_FOUND")
        # One job whose prompt alone passes the enqueued-token limit.
        long_prompt = " ".join(["word"] * (enqueued_tokens + 1))
        err = expect_client_error(
            lambda: client.batches.create(model=BATCH_MODEL, src=[inline_request(long_prompt, "big")]),
            429,
            "RESOURCE_EXHAUSTED",
        )
    violations = detail_of(err, "QuotaFailure").get("violations") or []
    expect(bool(violations), "QuotaFailure has no violations")
    quota_id = violations[0].get("quotaId", "")
    expect("Enqueued" in quota_id, f"quotaId {quota_id!r}")
    expect(violations[0].get("quotaValue") == str(enqueued_tokens), f"quotaValue {violations[0]}")
    delay = retry_delay_seconds(err)
    return f"cancelled, deleted (get -> 404); over {enqueued_tokens} enqueued tokens -> 429 {quota_id}, retry {delay:g}s"


def main() -> int:
    for name in ("GOOGLE_GEMINI_BASE_URL", "GOOGLE_API_KEY", "CONFORMANCE_LIMITED_BASE_URL"):
        if not os.environ.get(name):
            print(f"usage error: {name} must be set (see this file's docstring)", file=sys.stderr)
            return 2
    limited_url = os.environ["CONFORMANCE_LIMITED_BASE_URL"]
    limited_rpm = int(os.environ.get("CONFORMANCE_LIMITED_RPM", "2"))
    shed_every = int(os.environ.get("CONFORMANCE_FLEX_SHED_EVERY", "2"))
    enqueued_tokens = int(os.environ.get("CONFORMANCE_LIMITED_ENQUEUED_TOKENS", "50"))

    runner = Runner()
    with genai.Client() as client:
        print(
            f"google-genai {genai.__version__}, API version {api_version(client)}, "
            f"base URL {os.environ['GOOGLE_GEMINI_BASE_URL']}",
            flush=True,
        )
        runner.check("generate_content", lambda: generate(client))
        runner.check("generate_content (v1beta)", generate_v1beta)
        runner.check("aio generate_content x5 with asyncio.gather", async_batch)
        runner.check("generate_content_stream", lambda: stream(client))
        runner.check("count_tokens", lambda: count_tokens(client))
        runner.check("models.list", lambda: list_models(client))
        runner.check("models.get", lambda: get_model(client))
        runner.check("wrong key -> 400 INVALID_ARGUMENT", wrong_key)
        runner.check("unknown model -> 404 NOT_FOUND", lambda: unknown_model(client))
        runner.check("unknown model, stream -> 404", lambda: unknown_model_stream(client))
        runner.check("unknown model, models.get -> 404", lambda: unknown_model_get(client))
        created: list[str] = []
        runner.check("batches.create inline, get until done", lambda: batch_inline(client, created))
        runner.check(
            "files.upload, batches.create from the file, files.download", lambda: batch_file(client, created)
        )
        runner.check("batches.list across pages", lambda: batch_list(client, created))
        runner.check("unknown model, batches.create -> 404", lambda: batch_unknown_model(client))
        runner.check("generate_content with service_tier=FLEX", lambda: flex(client, shed_every))
    runner.check(
        f"over the limit (rpm={limited_rpm}) -> 429 RESOURCE_EXHAUSTED",
        lambda: rate_limited(limited_url, limited_rpm),
    )
    runner.check(
        "batches.cancel, batches.delete, enqueued tokens -> 429",
        lambda: batch_cancel_delete_and_quota(limited_url, enqueued_tokens),
    )

    passed = runner.count - len(runner.failures)
    print(f"{passed}/{runner.count} checks passed", flush=True)
    if runner.failures:
        print("failed: " + "; ".join(runner.failures), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
