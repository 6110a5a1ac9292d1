"""A real OpenAI-compatible chat-completions server for tests, on 127.0.0.1 in a thread.

It judges deterministically: the longer answer wins, equal lengths tie. It can be told to misbehave:
`script` is a queue of behaviours for the next requests ("500", "429", "hang", "garbage", "notjson",
"first": always the answer shown first, a judge with a full position bias), `always` applies one
behaviour to every request, `delay_s` slows every answer down.
"""

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = re.compile(r"\[The Start of Assistant (A|B)'s Answer\]\n(.*?)\n\[The End of Assistant \1's Answer\]", re.S)


def longer_wins(user_content: str) -> str:
    answers = dict(ANSWER.findall(user_content))
    a, b = len(answers["A"]), len(answers["B"])
    return "A" if a > b else ("B" if b > a else "tie")


class FakeJudge:
    def __init__(self, hang_s: float = 1.0):
        self.script: list[str] = []
        self.always: str | None = None
        self.delay_s = 0.0
        self.hang_s = hang_s
        self.requests: list[dict] = []  # every request received: headers and body
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def count(self) -> int:
        return len(self.requests)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _next_behaviour(self, headers, body) -> str:
        with self._lock:
            self.requests.append({"headers": dict(headers), "body": body})
            if self.script:
                return self.script.pop(0)
            return self.always or "ok"

    def _handler(self):
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, payload: bytes, content_type="application/json"):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    return self._send(404, b'{"error": "not found"}')
                behaviour = judge._next_behaviour(self.headers, body)
                if judge.delay_s:
                    time.sleep(judge.delay_s)
                if behaviour in ("500", "429"):
                    return self._send(int(behaviour), b'{"error": {"message": "try again"}}')
                if behaviour == "hang":
                    time.sleep(judge.hang_s)
                    return self._send(500, b"{}")
                if behaviour == "notjson":
                    return self._send(200, b"<html>gateway</html>", "text/html")
                if behaviour == "garbage":
                    content = "I think both are fine, maybe A? Hard to say."
                elif behaviour == "first":
                    content = "The first one.\n[[A]]"
                else:
                    content = f"Comparing lengths.\n[[{longer_wins(body['messages'][-1]['content'])}]]"
                reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                      "finish_reason": "stop"}]}
                return self._send(200, json.dumps(reply).encode())

        return Handler
