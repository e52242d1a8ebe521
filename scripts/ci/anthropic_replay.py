"""A one-answer stand-in for the Anthropic Messages API (scripts/ci/images.sh):

  anthropic_replay.py HOST PORT LOG

Appends each request's method, path and credential headers to LOG (JSON lines) and
answers every POST /v1/messages with one streamed text turn ("headless ok", end_turn),
so the real Claude Code CLI completes a `-p` run offline and the test can see which
credential it sent. Standard library only: it runs in the runner-claude-code image.
"""
import http.server, json, sys

host, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _record(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        with open(log, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path,
                                "authorization": self.headers.get("authorization"),
                                "x-api-key": self.headers.get("x-api-key")}) + "\n")
        return body

    def do_GET(self):
        self._record()
        self.send_response(404); self.send_header("content-length", "0"); self.end_headers()

    def do_POST(self):
        self._record()
        if "count_tokens" in self.path:
            b = b'{"input_tokens": 10}'
            self.send_response(200); self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(b))); self.end_headers(); self.wfile.write(b)
            return
        if not self.path.startswith("/v1/messages"):
            self.send_response(404); self.send_header("content-length", "0"); self.end_headers()
            return
        usage = {"input_tokens": 10, "output_tokens": 3}
        events = [
            ("message_start", {"type": "message_start", "message": {"id": "msg_ci", "type": "message", "role": "assistant", "model": "claude-ci", "content": [], "stop_reason": None, "usage": usage}}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "headless ok"}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage}),
            ("message_stop", {"type": "message_stop"}),
        ]
        body = "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in events).encode()
        self.send_response(200); self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)

http.server.ThreadingHTTPServer((host, port), H).serve_forever()
