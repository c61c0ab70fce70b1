"""Reading the deployment files without Docker: the compose file with its variables resolved, the
Dockerfiles' instructions and stages, .dockerignore's patterns, and the pip-installed lint tools.

Shared by the tests in this folder; imported by name (``from deploy_files import ...``).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SERVICE_DOCKERFILE = ROOT / "Dockerfile"
PIPELINE_DOCKERFILE = ROOT / "docker" / "pipeline.Dockerfile"
DOCKERFILES = (SERVICE_DOCKERFILE, PIPELINE_DOCKERFILE)
WORKFLOWS = ROOT / ".github" / "workflows"
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """The path of a lint tool that `make install` puts into the virtual environment.

    A missing tool fails the test instead of skipping it: every one of them is a pinned wheel in
    requirements.txt, so it is there whenever the project is installed.
    """
    found = shutil.which(name, path=str(VENV_BIN)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; `make install` installs it (requirements.txt)")
    return found


def tool_env() -> dict[str, str]:
    """The environment for the tools: the virtual environment's bin first (actionlint finds shellcheck there)."""
    return {**os.environ, "PATH": f"{VENV_BIN}{':' + os.environ['PATH'] if os.environ.get('PATH') else ''}"}


def run_tool(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool(name), *args], cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=120, check=False
    )


def tracked_files() -> set[str]:
    """Files git tracks (what a fresh clone has), as POSIX paths relative to the repository."""
    return set(_tracked())


@functools.cache
def _tracked() -> tuple[str, ...]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return tuple(p for p in out.split("\0") if p)


def in_a_fresh_clone(relative: str) -> bool:
    """Whether ``relative`` (a file or a folder) exists in a fresh clone: tracked, or holds a tracked file."""
    relative = relative.strip("/") or "."
    if relative == ".":
        return True
    return any(p == relative or p.startswith(relative + "/") for p in _tracked())


# ---- compose ----------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """Compose's variable substitution (``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?message}``, ``${VAR:+value}``, ``$VAR``, ``$$``) with ``env`` as the shell's variables."""
    env = env or {}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3) or ""
        value = env.get(name)
        unset_or_empty = value is None or (value == "" and op and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if (value is None if op == "-" else unset_or_empty) else value
        if op in ("?", ":?"):
            if value is None if op == "?" else unset_or_empty:
                raise KeyError(f"{name}: {arg}")
            return value
        if op in ("+", ":+"):
            return "" if (value is None if op == "+" else unset_or_empty) else arg
        return value or ""

    return _VARIABLE.sub(replace, text)


def variables_used(node: Any) -> list[tuple[str, str | None]]:
    """Every shell variable substituted in the strings of a parsed compose file (keys and values,
    comments excluded), with its operator (None: none)."""
    if isinstance(node, str):
        return [(m.group(1) or m.group(4), m.group(2)) for m in _VARIABLE.finditer(node) if m.group(0) != "$$"]
    if isinstance(node, list):
        return [v for item in node for v in variables_used(item)]
    if isinstance(node, dict):
        return [v for key, item in node.items() for v in variables_used(key) + variables_used(item)]
    return []


def _interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(v, env) for v in node]
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env) for k, v in node.items()}
    return node


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml with its variables resolved as on a host where none is set (the defaults)."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    raw = {k: v for k, v in raw.items() if not k.startswith("x-")}
    return _interpolate_tree(raw, env or {})


def service_environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {k: "" if v is None else str(v) for k, v in environment.items()}


@dataclass(frozen=True)
class Mount:
    kind: str  # "bind" or "volume"
    source: str
    target: str
    read_only: bool


def service_mounts(service: dict[str, Any]) -> list[Mount]:
    """The service's volumes, short or long syntax."""
    mounts = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            source, target = parts[0], parts[1]
            options = parts[2].split(",") if len(parts) > 2 else []
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            mounts.append(Mount(kind, source, target, "ro" in options))
        else:
            mounts.append(Mount(entry["type"], entry.get("source", ""), entry["target"], bool(entry.get("read_only"))))
    return mounts


@dataclass(frozen=True)
class Port:
    host_ip: str
    published: int
    target: int


def service_ports(service: dict[str, Any]) -> list[Port]:
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.append(Port(entry.get("host_ip", ""), int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) == 3:
            ports.append(Port(parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            ports.append(Port("", int(parts[0]), int(parts[1])))
        else:
            ports.append(Port("", 0, int(parts[0])))
    return ports


def service_command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def option(argv: list[str], name: str) -> str | None:
    """The value of ``--name=value`` or ``--name value`` in ``argv``."""
    for i, arg in enumerate(argv):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
    return None


# ---- Dockerfiles ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD, ENTRYPOINT or HEALTHCHECK ... CMD, else None."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = text.split(" CMD ", 1)[1] if " CMD " in f" {text}" else ""
            text = text.strip()
        if text.startswith("["):
            return json.loads(text)
        return None

    def flags(self) -> dict[str, str]:
        """``--name=value`` flags before the arguments (COPY --from, HEALTHCHECK --interval, ...)."""
        found = {}
        for word in self.args.split():
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            found[name] = value
        return found


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.args):
                key, _, value = pair.partition("=")
                values[key] = value
        return values


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def lineage(self, stage: Stage | None = None) -> list[Stage]:
        """``stage`` (default: the final one) and the stages it is built FROM, nearest first.
        A ``FROM stage-${ARG}`` follows the ARG's default."""
        stage = stage or self.final
        chain = [stage]
        names = {s.name: s for s in self.stages if s.name}
        while True:
            base = interpolate(chain[-1].base, self.global_args)
            if base not in names:
                return chain
            chain.append(names[base])

    def effective(self, keyword: str, stage: Stage | None = None) -> Instruction | None:
        """The last ``keyword`` instruction in effect for ``stage`` (inherited from its bases)."""
        for s in self.lineage(stage):
            found = s.all(keyword)
            if found:
                return found[-1]
        return None

    def effective_env(self, stage: Stage | None = None) -> dict[str, str]:
        env: dict[str, str] = {}
        for s in reversed(self.lineage(stage)):
            env.update(s.env())
        return env

    def external_bases(self) -> list[str]:
        """The images the stages start from (ARG defaults substituted), other than stages and scratch."""
        names = {s.name for s in self.stages if s.name}
        bases = [interpolate(s.base, self.global_args) for s in self.stages]
        return [b for b in bases if b not in names and b != "scratch"]


def parse_dockerfile(path: Path) -> Dockerfile:
    """Instructions grouped by stage: comments dropped, continuation lines joined."""
    logical: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        logical.append((start, pending + stripped))
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, text in logical:
        keyword, _, args = text.partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif keyword == "ARG" and not stages:
            key, _, value = args.partition("=")
            global_args[key] = value
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, args, number))
    return Dockerfile(path, global_args, stages)


# ---- Airflow's settings ----------------------------------------------------------------------


def _airflow_options() -> dict[str, set[str]]:
    """Every Airflow configuration option by section, from the installed Airflow's own template
    (read as a file: importing Airflow's configuration would create an AIRFLOW_HOME)."""
    spec = importlib.util.find_spec("airflow")
    assert spec and spec.submodule_search_locations
    templates = [Path(p) / "config_templates" / "config.yml" for p in spec.submodule_search_locations]
    template = next(t for t in templates if t.exists())
    sections = yaml.safe_load(template.read_text(encoding="utf-8"))
    return {name: set(body.get("options") or {}) for name, body in sections.items()}


def airflow_variable_problems(env: dict[str, str]) -> list[str]:
    """``AIRFLOW__SECTION__KEY`` variables in ``env`` that name no Airflow option."""
    options = _airflow_options()
    problems = []
    for name in env:
        if not name.startswith("AIRFLOW__"):
            continue
        section, _, key = name[len("AIRFLOW__") :].lower().partition("__")
        if key not in options.get(section, set()):
            problems.append(name)
    return problems


# ---- .dockerignore ----------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore_patterns(path: Path | None = None) -> list[tuple[bool, re.Pattern[str]]]:
    """(excluding, pattern) pairs in file order; ``!`` lines are re-inclusions."""
    path = path or ROOT / ".dockerignore"
    patterns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line[1:] if include else line
        patterns.append((not include, _pattern_regex(pattern.strip().strip("/"))))
    return patterns


def is_ignored(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether the build context leaves ``relative`` out (a pattern on a folder covers its contents;
    the last matching pattern wins, as in Docker)."""
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for excluding, regex in patterns:
        if any(regex.fullmatch(c) for c in candidates):
            ignored = excluding
    return ignored


# ---- a stand-in HTTP server for health checks -------------------------------------------------


@contextlib.contextmanager
def stub_server(status_by_path: dict[str, int]) -> Iterator[int]:
    """A loopback HTTP server answering each path in ``status_by_path`` with that status (404
    otherwise); yields its port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = status_by_path.get(self.path.split("?")[0], 404)
            body = json.dumps({"status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def with_port(argv: list[str], old: int, new: int) -> list[str]:
    """``argv`` with every ``:old`` (in URLs and addresses) turned into ``:new``."""
    return [re.sub(rf":{old}\b", f":{new}", a) for a in argv]
