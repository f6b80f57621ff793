"""A scripted fake LLM on 127.0.0.1 for driving the real agent CLIs.

It speaks just enough of four vendor wire protocols for codex, claude, gemini
and opencode to run a whole task against it:

* OpenAI Responses API, ``POST …/responses`` (server-sent events): codex;
* OpenAI Chat Completions, ``POST …/chat/completions`` (SSE): opencode through
  its ``@ai-sdk/openai-compatible`` provider;
* Anthropic Messages, ``POST …/v1/messages`` (SSE): claude;
* Gemini ``…:streamGenerateContent?alt=sse`` / ``…:generateContent``: gemini.

A test *scripts* it with one behaviour per agent attempt (see :data:`KINDS`):
``server.script("429", "done")`` answers every request of the first attempt
with an HTTP 429, and the second attempt with a real run that ends in
``<promise>TASK_DONE</promise>``. The attempt a request belongs to is read
from seqrun's own files (one ``<id>.<attempt>.prompt.md`` per dispatch, written
before the agent starts), so a CLI's internal retries never move the script on.

It binds 127.0.0.1 only, on a free port. It is also the HTTP(S) proxy the tests
give the CLIs (``HTTPS_PROXY``): a request for any other host arrives here as a
``CONNECT`` or an absolute URL, is refused, and is kept in :attr:`escapes`, so
a test can assert that nothing but the fake was contacted.
"""
from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

DONE = "<promise>TASK_DONE</promise>"
HALT = "<promise>HALT</promise>"

#: What one attempt of the agent gets:
#:   done  a shell tool call that writes greeting.txt, then a final answer with TASK_DONE
#:   halt  a final answer with HALT
#:   echo  a shell tool call that prints the prompt file (both markers in the tool
#:         output), then a final answer without any marker: the echo trap
#:   429   HTTP 429 in the vendor's rate-limit shape, resetting ``reset_in`` seconds ahead
#:   500   HTTP 500 in the vendor's error shape
#:   stall a shell tool call that never returns (``sleep``): an attempt for
#:         seqrun's --timeout to cut off, its session left open
KINDS = ("done", "halt", "echo", "429", "500", "stall")

GREETING_FILE = "greeting.txt"
DONE_TEXT = f"I wrote {GREETING_FILE} and checked it.\n{DONE}"
HALT_TEXT = ("I cannot finish this task: the greeting must be approved by the product owner "
             f"and no approved wording is in the repository.\n{HALT}")
ECHO_TEXT = ("I read the task file. The greeting is not written yet; "
             "I will continue in the next iteration.")
ASIDE_TEXT = "Greeting task"  # side requests: titles, summaries, routing checks


@dataclass
class Request:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    protocol: str
    attempt: int
    answer: str = ""
    time: float = field(default_factory=time.time)


class FakeLLM:
    """The server. ``with FakeLLM() as llm:`` starts and stops it."""

    def __init__(self, reset_in: float = 4.0) -> None:
        self.reset_in = reset_in
        self.kinds: list[str] = ["done"]
        self.attempt_of: Callable[[], int] = lambda: 1
        self.prompt_file_of: Callable[[], Path | None] = lambda: None
        self.requests: list[Request] = []
        self.escapes: list[str] = []
        self.reset_at: dict[int, float] = {}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-llm", daemon=True)

    # -- lifecycle ------------------------------------------------------------

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripting --------------------------------------------------------------

    def script(self, *kinds: str) -> None:
        """One behaviour per attempt; the last one repeats."""
        unknown = set(kinds) - set(KINDS)
        if not kinds or unknown:
            raise ValueError(f"kinds must be among {KINDS}, got {kinds}")
        with self._lock:
            self.kinds = list(kinds)
            self.requests.clear()
            self.escapes.clear()
            self.reset_at.clear()

    def follow(self, logs: Path) -> None:
        """Read the attempt number from seqrun's prompt files under ``logs``
        (``.kiro/specs/.seqrun/logs``): one file per dispatch, written before
        the agent starts. Meant for specs with one task."""

        def prompts() -> list[Path]:
            return sorted(logs.rglob("*.prompt.md"), key=lambda p: p.stat().st_mtime) if logs.exists() else []

        self.attempt_of = lambda: max(1, len(prompts()))
        self.prompt_file_of = lambda: (prompts() or [None])[-1]

    def kind_for(self, attempt: int) -> str:
        return self.kinds[min(attempt, len(self.kinds)) - 1]

    def reset_for(self, attempt: int) -> float:
        """The reset time announced to one attempt (the same for all its requests)."""
        with self._lock:
            return self.reset_at.setdefault(attempt, time.time() + self.reset_in)

    # -- what the tests read ------------------------------------------------------

    def main_requests(self, protocol: str | None = None) -> list[Request]:
        """Requests of the agent's conversation (not side requests such as titles)."""
        return [r for r in self.requests if r.answer != "aside" and (protocol is None or r.protocol == protocol)]

    def attempts_seen(self) -> list[int]:
        return sorted({r.attempt for r in self.requests})

    def models_requested(self) -> set[str]:
        models = set()
        for r in self.main_requests():
            if isinstance(r.body, dict) and isinstance(r.body.get("model"), str):
                models.add(r.body["model"])
            m = re.search(r"/models/([^/:]+):", r.path)
            if m:
                models.add(m.group(1))
        return models


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeLLM


# -- the conversation ------------------------------------------------------------------


@dataclass
class Turn:
    """What the fake makes of one request body, whatever the protocol."""

    has_tools: bool
    tool_results: int
    tool_names: list[str]
    aside: bool


def _turn_responses(body: dict) -> Turn:
    items = body.get("input") if isinstance(body.get("input"), list) else []
    results = sum(1 for i in items if isinstance(i, dict) and i.get("type") in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"))
    names = [t.get("name") or t.get("type") for t in body.get("tools") or [] if isinstance(t, dict)]
    return Turn(bool(names), results, [n for n in names if isinstance(n, str)], aside=not names)


def _turn_chat(body: dict) -> Turn:
    msgs = body.get("messages") if isinstance(body.get("messages"), list) else []
    results = sum(1 for m in msgs if isinstance(m, dict) and m.get("role") == "tool")
    names = [t.get("function", {}).get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
    return Turn(bool(names), results, [n for n in names if isinstance(n, str)], aside=not names)


def _turn_anthropic(body: dict) -> Turn:
    msgs = body.get("messages") if isinstance(body.get("messages"), list) else []
    results = sum(
        1 for m in msgs if isinstance(m, dict) and isinstance(m.get("content"), list)
        for c in m["content"] if isinstance(c, dict) and c.get("type") == "tool_result"
    )
    names = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
    names = [n for n in names if isinstance(n, str)]
    return Turn(bool(names), results, names, aside="Bash" not in names)


def _turn_gemini(body: dict) -> Turn:
    contents = body.get("contents") if isinstance(body.get("contents"), list) else []
    results = sum(
        1 for c in contents if isinstance(c, dict)
        for p in c.get("parts") or [] if isinstance(p, dict) and "functionResponse" in p
    )
    names = [
        d.get("name") for t in body.get("tools") or [] if isinstance(t, dict)
        for d in t.get("functionDeclarations") or [] if isinstance(d, dict)
    ]
    names = [n for n in names if isinstance(n, str)]
    # Side calls (next-speaker checks, routing) ask for JSON and offer no tools.
    return Turn(bool(names), results, names, aside=not names)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    # -- proxy trap: anything not addressed to us is an escape ---------------------

    def do_CONNECT(self) -> None:
        self._escape()

    def _escaped(self) -> bool:
        if self.path.startswith(("http://", "https://")) and not self.path.startswith(self.server.fake.url):
            self._escape()
            return True
        return False

    def _escape(self) -> None:
        fake = self.server.fake
        with fake._lock:
            fake.escapes.append(f"{self.command} {self.path}")
        self._raw(403, b"", "text/plain", {"connection": "close"})
        self.close_connection = True

    # -- requests --------------------------------------------------------------

    def do_GET(self) -> None:
        if self._escaped():
            return
        self._record(None, "get", 0)
        path = self.path.split("?")[0]
        if path.endswith("/models"):
            return self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]})
        self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    def do_HEAD(self) -> None:
        if self._escaped():
            return
        self._raw(200, b"", "text/plain")

    def do_POST(self) -> None:
        if self._escaped():
            return
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        path = self.path.split("?")[0]
        fake = self.server.fake
        attempt = fake.attempt_of()
        kind = fake.kind_for(attempt)
        if path.endswith("/responses"):
            protocol, turn = "responses", _turn_responses(body)
        elif path.endswith("/chat/completions"):
            protocol, turn = "chat", _turn_chat(body)
        elif path.endswith("/messages/count_tokens"):
            self._record(body, "anthropic", attempt, "count")
            return self._json(200, {"input_tokens": 100})
        elif path.endswith("/messages"):
            protocol, turn = "anthropic", _turn_anthropic(body)
        elif ":countTokens" in path:
            self._record(body, "gemini", attempt, "count")
            return self._json(200, {"totalTokens": 100})
        elif ":streamGenerateContent" in path or ":generateContent" in path:
            protocol, turn = "gemini", _turn_gemini(body)
        else:
            self._record(body, "unknown", attempt, "404")
            return self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

        if kind in ("429", "500"):
            self._record(body, protocol, attempt, kind)
            return self._error(protocol, int(kind), attempt)
        if turn.aside:
            self._record(body, protocol, attempt, "aside")
            return self._text(protocol, path, body, ASIDE_TEXT)
        if kind == "halt" or (kind in ("done", "echo") and turn.tool_results) or not turn.has_tools:
            text = {"done": DONE_TEXT, "halt": HALT_TEXT}.get(kind, ECHO_TEXT)
            self._record(body, protocol, attempt, f"{kind}:final")
            return self._text(protocol, path, body, text)
        command = self._command(kind)
        self._record(body, protocol, attempt, f"{kind}:tool")
        return self._tool(protocol, path, body, turn, command)

    def _command(self, kind: str) -> str:
        if kind == "stall":
            return "sleep 600"
        if kind == "done":
            return f"printf 'Hello from seqrun\\n' > {GREETING_FILE} && cat {GREETING_FILE}"
        prompt = self.server.fake.prompt_file_of()
        return f"cat '{prompt}'" if prompt else "cat .kiro/specs/.seqrun/logs/*/*.prompt.md"

    def _record(self, body: Any, protocol: str, attempt: int, answer: str = "") -> None:
        fake = self.server.fake
        with fake._lock:
            fake.requests.append(Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                         body, protocol, attempt, answer))

    # -- wire helpers ----------------------------------------------------------

    def _raw(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(obj).encode(), "application/json", headers)

    def _sse(self, events: list[Any], named: bool) -> None:
        out = []
        for event in events:
            if event == "[DONE]":
                out.append("data: [DONE]\n\n")
            elif named:
                out.append(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n")
            else:
                out.append(f"data: {json.dumps(event)}\n\n")
        self._raw(200, "".join(out).encode(), "text/event-stream", {"cache-control": "no-cache"})

    # -- errors in each vendor's shape ------------------------------------------

    def _error(self, protocol: str, status: int, attempt: int) -> None:
        if status == 500:
            if protocol == "anthropic":
                body = {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}
            elif protocol == "gemini":
                body = {"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}}
            else:
                body = {"error": {"message": "The server had an error while processing your request. Sorry about that!",
                                  "type": "server_error", "param": None, "code": None}}
            headers = {}
            if protocol == "chat":
                # opencode retries a 5xx five times (2 s, 4 s … 30 s apart: over a minute)
                # and no setting turns that off; it honours retry-after-ms (as OpenAI's
                # and Azure's clients do), which keeps those retries within a second.
                headers["retry-after-ms"] = "50"
            return self._json(500, body, headers)
        reset = self.server.fake.reset_for(attempt)
        seconds = max(1, round(reset - time.time()))
        if protocol == "responses":
            # ChatGPT-plan usage limit as the Codex backend sends it.
            body = {"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached",
                              "plan_type": "plus", "resets_at": int(reset), "resets_in_seconds": seconds}}
            headers = {"retry-after": str(seconds), "x-codex-primary-used-percent": "100",
                       "x-codex-primary-window-minutes": "300", "x-codex-primary-reset-at": str(int(reset)),
                       "x-codex-primary-reset-after-seconds": str(seconds)}
        elif protocol == "anthropic":
            if self.headers.get("x-api-key"):
                # API key: the standard rate-limit headers.
                body = {"type": "error", "error": {"type": "rate_limit_error", "message":
                        "This request would exceed your organization's rate limit of 50 requests per minute. "
                        "Please try again later."}}
                headers = {"retry-after": str(seconds), "anthropic-ratelimit-requests-limit": "50",
                           "anthropic-ratelimit-requests-remaining": "0",
                           "anthropic-ratelimit-requests-reset": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reset))}
            else:
                # Subscription (OAuth): the unified limit headers.
                body = {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limited"}}
                headers = {"retry-after": str(seconds), "anthropic-ratelimit-unified-status": "rejected",
                           "anthropic-ratelimit-unified-reset": str(int(reset)),
                           "anthropic-ratelimit-unified-representative-claim": "five_hour",
                           "anthropic-ratelimit-unified-5h-status": "rejected",
                           "anthropic-ratelimit-unified-5h-reset": str(int(reset)),
                           "anthropic-ratelimit-unified-5h-utilization": "1.0"}
        elif protocol == "gemini":
            body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message":
                    "You exceeded your current quota, please check your plan and billing details.\n"
                    "* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, "
                    f"limit: 2, model: gemini-2.5-pro\nPlease retry in {seconds}s.",
                    "details": [
                        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                             "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                             "quotaDimensions": {"location": "global", "model": "gemini-2.5-pro"}, "quotaValue": "2"}]},
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds}s"}]}}
            headers = {}
        else:
            body = {"error": {"message": "Rate limit reached for fake-model in organization org-fake on requests "
                              f"per min (RPM): Limit 3, Used 3, Requested 1. Please try again in {seconds}s.",
                              "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
            headers = {"retry-after": str(seconds), "x-ratelimit-limit-requests": "3",
                       "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": f"{seconds}s"}
        self._json(429, body, headers)

    # -- answers ------------------------------------------------------------------

    def _text(self, protocol: str, path: str, body: dict, text: str) -> None:
        if protocol == "responses":
            return self._responses([self._message_item(text)], body)
        if protocol == "chat":
            return self._chat({"content": text}, "stop", body)
        if protocol == "anthropic":
            return self._anthropic([{"type": "text", "text": text}], "end_turn", body)
        return self._gemini([{"text": text}], path, body)

    def _tool(self, protocol: str, path: str, body: dict, turn: Turn, command: str) -> None:
        call_id = "call_" + uuid.uuid4().hex[:12]
        if protocol == "responses":
            names = turn.tool_names
            if "exec_command" in names:
                item = {"type": "function_call", "name": "exec_command", "arguments": json.dumps({"cmd": command})}
            elif "shell_command" in names:
                item = {"type": "function_call", "name": "shell_command", "arguments": json.dumps({"command": command})}
            else:
                item = {"type": "function_call", "name": "shell", "arguments": json.dumps({"command": ["bash", "-lc", command]})}
            item.update(id="fc_" + call_id[5:], call_id=call_id, status="completed")
            return self._responses([item], body)
        args = {"command": command, "description": "Run a shell command"}
        if protocol == "chat":
            tool_call = {"index": 0, "id": call_id, "type": "function",
                         "function": {"name": "bash", "arguments": json.dumps(args)}}
            return self._chat({"content": None, "tool_calls": [tool_call]}, "tool_calls", body)
        if protocol == "anthropic":
            blocks = [{"type": "text", "text": "Let me run it."},
                      {"type": "tool_use", "id": "toolu_" + call_id[5:], "name": "Bash", "input": args}]
            return self._anthropic(blocks, "tool_use", body)
        return self._gemini([{"functionCall": {"name": "run_shell_command", "args": args}}], path, body)

    @staticmethod
    def _message_item(text: str) -> dict:
        return {"type": "message", "role": "assistant", "id": "msg_" + uuid.uuid4().hex[:12], "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}

    def _responses(self, items: list[dict], body: dict) -> None:
        rid = "resp_" + uuid.uuid4().hex[:12]
        model = body.get("model") or "fake-model"
        events: list[Any] = [{"type": "response.created", "response": {"id": rid, "model": model, "status": "in_progress"}}]
        for index, item in enumerate(items):
            events.append({"type": "response.output_item.added", "output_index": index,
                           "item": {**item, "content": []} if item["type"] == "message" else item})
            if item["type"] == "message":
                text = item["content"][0]["text"]
                events.append({"type": "response.output_text.delta", "item_id": item["id"], "output_index": index,
                               "content_index": 0, "delta": text})
            events.append({"type": "response.output_item.done", "output_index": index, "item": item})
        events.append({"type": "response.completed", "response": {
            "id": rid, "model": model, "status": "completed", "output": items,
            "usage": {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 20,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 1220}}})
        self._sse(events, named=True)

    def _chat(self, delta: dict, finish: str, body: dict) -> None:
        base = {"id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body.get("model") or "fake-model"}
        events: list[Any] = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", **delta}, "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
            {**base, "choices": [], "usage": {"prompt_tokens": 900, "completion_tokens": 20, "total_tokens": 920}},
            "[DONE]",
        ]
        if not body.get("stream", True):
            message = {"role": "assistant", **delta}
            return self._json(200, {**base, "object": "chat.completion",
                                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                                    "usage": {"prompt_tokens": 900, "completion_tokens": 20, "total_tokens": 920}})
        self._sse(events, named=False)

    def _anthropic(self, blocks: list[dict], stop: str, body: dict) -> None:
        model = body.get("model") or "claude-fake"
        mid = "msg_" + uuid.uuid4().hex[:12]
        usage = {"input_tokens": 1500, "output_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        if not body.get("stream"):
            return self._json(200, {"id": mid, "type": "message", "role": "assistant", "model": model,
                                    "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage})
        events: list[Any] = [{"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}}]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                events += [
                    {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                    {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": block["text"]}},
                ]
            else:
                events += [
                    {"type": "content_block_start", "index": index,
                     "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}},
                    {"type": "content_block_delta", "index": index,
                     "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}},
                ]
            events.append({"type": "content_block_stop", "index": index})
        events += [
            {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 20}},
            {"type": "message_stop"},
        ]
        self._sse(events, named=True)

    def _gemini(self, parts: list[dict], path: str, body: dict) -> None:
        m = re.search(r"/models/([^/:]+):", path)
        chunk = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
                 "usageMetadata": {"promptTokenCount": 800, "candidatesTokenCount": 20, "totalTokenCount": 820},
                 "modelVersion": m.group(1) if m else "gemini-fake"}
        if ":streamGenerateContent" in path:
            return self._sse([chunk], named=False)
        self._json(200, chunk)
