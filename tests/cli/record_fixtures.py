"""``make fixtures-claude-code`` (``python -m tests.cli.record_fixtures``): record the Claude Code
request fixtures (tests/fixtures/claude-code) from the pinned CLI, through Dragoman itself.

It starts what ``make test-cli`` starts (tests/cli/conftest.py): the mock backend, a gateway of
its own under daphne on a scratch SQLite database, and an egress trap as Claude Code's proxy.
It runs ``claude -p`` once per recording below, reads the client's requests back from the
inspector's stored Exchange rows (``client_request``: path, headers, body) and writes each in the
fixtures' format: ``method``, ``path``, ``route``, ``query``, ``headers``, ``body``, ``response``,
``seq``. Before writing:

- every header that carries a credential is masked (the gateway stores them masked already),
  ``metadata.user_id``'s ``device_id`` is replaced by a fixed fake, ``Host`` gets a fixed port
  and the scratch folders' paths become ``/work`` and ``/home/user``;
- prose longer than ``FILLER_OVER`` characters (system prompt, tool descriptions, reminders)
  becomes filler of the same length and line breaks, so sizes and structure stay real;
- the file is refused if the gateway key, the scratch paths or the real device id survive.

Only the recordings listed in ``RECORDINGS`` are made (``20_recorded_*``, ``21_recorded_*``); the
older captures in that folder (02-18, Claude Code 2.1.197, which tests pin by their content) stay
as they are. ``--out DIR`` writes elsewhere (to compare with ``diff``); ``--only NAME`` picks one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.cli.conftest import CLAUDE_BIN, CONFIG, MODEL, EgressTrap
from tests.conftest import FIXTURES, REPO
from tests.e2e.conftest import E2E_KEY, daphne_serving, free_port
from tests.mockbackend import MockServerThread

FILLER_OVER = 200
FILLER_WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
                "sigma tau upsilon").split()
FAKE_DEVICE_ID = hashlib.sha256(b"dragoman fixture device").hexdigest()
SECRET_HEADER = re.compile(r"key|auth|token|secret|cookie|session-token", re.IGNORECASE)
FIXED_HOST = "127.0.0.1:8000"


def _first_user_text(body: dict[str, Any]) -> str:
    for message in body.get("messages") or []:
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _has_tool_result(body: dict[str, Any]) -> bool:
    last = (body.get("messages") or [{}])[-1]
    content = last.get("content")
    return isinstance(content, list) and any(p.get("type") == "tool_result" for p in content)


@dataclass(frozen=True)
class Recording:
    """One fixture file: the ``claude -p`` arguments and which of its requests to keep."""

    file: str
    args: tuple[str, ...]
    marker: str  # the mock directive in the prompt: only the conversation's requests carry it
    pick: Callable[[dict[str, Any]], bool]


RECORDINGS = [
    # First turn of a plain conversation, streamed.
    Recording("20_recorded_p_sayhi_sonnet45_stream.json", ("Say hi. [[mock:text]]", "--model", MODEL),
              "[[mock:text]]", lambda body: not _has_tool_result(body)),
    # The follow-up after Claude Code ran the Bash tool the backend asked for.
    Recording("21_recorded_followup_tool_result_bash.json",
              ("Print the marker. [[mock:bash_echo]]", "--model", MODEL, "--allowedTools", "Bash"),
              "[[mock:bash_echo]]", _has_tool_result),
]


def filler(text: str) -> str:
    """Same length and line breaks as ``text``, Greek-letter words instead of its prose (the
    same text always gets the same filler)."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    lines = []
    for line in text.split("\n"):
        words: list[str] = []
        while len(" ".join(words)) < len(line):
            words.append(rng.choice(FILLER_WORDS))
        lines.append(" ".join(words)[: len(line)])
    return "\n".join(lines)


def _scrub(value: Any, replace: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        value = replace(value)
        return filler(value) if len(value) > FILLER_OVER else value
    if isinstance(value, dict):
        return {k: _scrub(v, replace) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, replace) for v in value]
    return value


def fixture_make(client_request: dict[str, Any], seq: int, replace: Callable[[str], str]) -> dict[str, Any]:
    body: dict[str, Any] = dict(client_request["body"])
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        try:
            user = json.loads(metadata["user_id"])
        except json.JSONDecodeError:
            user = None
        if isinstance(user, dict):  # device_id is a per-machine hash; session ids may stay
            user = {k: (FAKE_DEVICE_ID if k == "device_id" and v else v) for k, v in user.items()}
            body["metadata"] = {**metadata, "user_id": json.dumps(user, separators=(",", ":"))}
        else:
            body["metadata"] = {**metadata, "user_id": "***"}
    headers = {}
    for name, value in (client_request.get("headers") or {}).items():
        if SECRET_HEADER.search(name) and name.lower() != "x-claude-code-session-id":
            value = "***(masked)"
        elif name.lower() == "host":
            value = FIXED_HOST
        headers[name] = replace(value)
    path = client_request["path"]
    split = urlsplit(path)
    fixture: dict[str, Any] = {"method": client_request.get("method", "POST"), "path": path,
                               "route": split.path, "query": parse_qs(split.query), "headers": headers,
                               "body": _scrub(body, replace)}
    if split.path == "/v1/messages":
        fixture["response"] = "stream" if body.get("stream") else "json"
    fixture["seq"] = seq
    return fixture


def _exchanges(env: dict[str, str]) -> list[dict[str, Any]]:
    """Every stored Exchange's client_request, oldest first (read by a Django process of its own)."""
    code = ("import django, json, sys; django.setup()\n"
            "from inspector.models import Exchange\n"
            "rows = [e.client_request for e in Exchange.objects.order_by('created_at')]\n"
            "sys.stdout.write(json.dumps(rows))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        raise SystemExit(f"reading the exchanges failed:\n{done.stderr[-3000:]}")
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cli.record_fixtures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=FIXTURES)
    parser.add_argument("--only", default="", help="record the fixtures whose file name contains this")
    parser.add_argument("--claude", default=os.environ.get("CLAUDE_CODE_BIN", str(CLAUDE_BIN)))
    args = parser.parse_args(argv)
    if not Path(args.claude).exists():
        raise SystemExit(f"{args.claude} is missing: run `make claude-code`")
    recordings = [r for r in RECORDINGS if args.only in r.file]
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="dragoman-cc-fixtures-") as scratch:
        tmp = Path(scratch)
        mock = MockServerThread().start()
        trap = EgressTrap()
        config = tmp / "dragoman.yaml"
        config.write_text(CONFIG.format(mock_url=mock.url, key=E2E_KEY))
        port = free_port()
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp / 'fixtures.sqlite3'}",
               "DRAGOMAN_SECRET_KEY": "fixtures-secret", "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1,localhost",
               "DRAGOMAN_CONFIG": str(config), "DJANGO_SETTINGS_MODULE": "gateway.settings",
               "DRAGOMAN_INSPECTOR_FLUSH_SECONDS": "0.05", "DRAGOMAN_INSPECTOR_CAPTURE": "full",
               "DRAGOMAN_INSPECTOR_MAX_BODY_BYTES": str(64 * 1024 * 1024)}
        try:
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, check=True,
                           capture_output=True, timeout=120)
            with daphne_serving(url=f"http://127.0.0.1:{port}", port=port, env=env, log_path=tmp / "daphne.log"):
                written = [_record(r, args.claude, tmp, port, trap, env, args.out) for r in recordings]
        finally:
            mock.stop()
            trap.close()
    for line in written:
        print(line)
    print("review with `git diff tests/fixtures/claude-code`; the tests that read them: make test")
    return 0


def _record(recording: Recording, claude: str, tmp: Path, port: int, trap: EgressTrap, env: dict[str, str],
            out: Path) -> str:
    home, work = tmp / f"home-{recording.file[:2]}", tmp / f"work-{recording.file[:2]}"
    home.mkdir()
    work.mkdir()
    before = len(_exchanges(env))
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(tmp),
               "LANG": "C.UTF-8", "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}", "ANTHROPIC_API_KEY": E2E_KEY,
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
               "HTTPS_PROXY": trap.url, "HTTP_PROXY": trap.url, "NO_PROXY": "127.0.0.1,localhost"}
    done = subprocess.run([claude, "-p", *recording.args, "--output-format", "stream-json", "--verbose"],
                          cwd=work, env=environ, input="", capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        raise SystemExit(f"claude {recording.args} exited {done.returncode}:\n{done.stderr[-3000:]}")
    if trap.seen:
        raise SystemExit(f"Claude Code tried to leave loopback: {trap.seen}")
    time.sleep(0.5)  # the inspector writes its rows in the background (flush every 0.05 s)
    session = _exchanges(env)[before:]
    picked = [(seq, r) for seq, r in enumerate(session, 1)
              if isinstance(r.get("body"), dict) and recording.marker in _first_user_text(r["body"])
              and r["path"].startswith("/v1/messages?") and recording.pick(r["body"])]
    if not picked:
        paths = [r.get("path") for r in session]
        raise SystemExit(f"no request of {recording.file} among this session's exchanges: {paths}")
    seq, request = picked[0]
    device = json.loads(request["body"].get("metadata", {}).get("user_id") or "{}").get("device_id", "")
    paths = {str(work.resolve()): "/work", str(work): "/work", str(home.resolve()): "/home/user",
             str(home): "/home/user", str(tmp.resolve()): "/tmp", str(tmp): "/tmp"}

    def replace(text: str) -> str:
        for old, new in paths.items():
            text = text.replace(old, new)
        return text

    fixture = fixture_make(request, seq, replace)
    blob = json.dumps(fixture, ensure_ascii=False)
    leaks = [s for s in (E2E_KEY, str(tmp), *( [device] if device else [])) if s in blob]
    if leaks:
        raise SystemExit(f"{recording.file}: refusing to write, it still holds {len(leaks)} secret(s) or path(s)")
    path = out / recording.file
    old = path.read_text() if path.exists() else None
    text = json.dumps(fixture, indent=1, ensure_ascii=False) + "\n"
    path.write_text(text)
    state = "unchanged" if old == text else ("new" if old is None else "changed")
    return f"{state}: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}"


if __name__ == "__main__":
    sys.exit(main())
