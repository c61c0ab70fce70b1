"""docker-compose.yml, checked without a Docker engine: the Compose Specification's JSON schema
(offline, check-jsonschema's vendored copy), and every port, path and variable it names against
the project; then the API's and MLflow's container commands run here, on loopback, with the
compose file's settings."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import httpx
import pytest
import yaml
from deploy_files import (
    COMPOSE_FILE,
    PIPELINE_DOCKERFILE,
    ROOT,
    SERVICE_DOCKERFILE,
    airflow_variable_problems,
    in_a_fresh_clone,
    interpolate,
    load_compose,
    option,
    parse_dockerfile,
    run_tool,
    service_command,
    service_environment,
    service_mounts,
    service_ports,
    variables_used,
    with_port,
)
from processes import free_port, stop_process_group, wait_until

from movierec.serving.auth import KeyRing
from movierec.serving.settings import Settings

SERVICES = {"api", "prometheus", "pushgateway", "grafana", "mlflow", "airflow"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def _services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def _dockerfile_of(service: dict):
    build = service.get("build")
    if not build:
        return None
    return parse_dockerfile(ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile"))


def _listen_port(name: str, service: dict) -> int:
    """The port the service's process listens on inside its container, read from its own
    command line or image, not from the compose ports (which the test compares with it)."""
    argv = service_command(service)
    if name == "api":
        dockerfile = _dockerfile_of(service)
        cmd = argv or dockerfile.effective("CMD").exec_form()
        return int(cmd[cmd.index("--port") + 1])
    if name in ("prometheus", "pushgateway"):
        return int(option(argv, "--web.listen-address").rsplit(":", 1)[1])
    if name == "mlflow":
        return int(option(argv, "--port"))
    if name == "airflow":
        return int(_dockerfile_of(service).effective_env()["AIRFLOW__API__PORT"])
    if name == "grafana":
        return int(service_environment(service).get("GF_SERVER_HTTP_PORT", 3000))  # Grafana's default
    raise AssertionError(f"no rule for {name}'s port")


def _healthcheck(service: dict) -> list[str] | None:
    """The service's health check: the compose file's, else its built image's HEALTHCHECK."""
    if "healthcheck" in service:
        test = service["healthcheck"]["test"]
        return [test] if isinstance(test, str) else list(test)
    dockerfile = _dockerfile_of(service)
    health = dockerfile.effective("HEALTHCHECK") if dockerfile else None
    return ["CMD", *health.exec_form()] if health else None


# ---- the file itself --------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_rejects_a_broken_file(tmp_path: Path) -> None:
    """The negative control: a misspelt key and a wrong type are errors under the same schema."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n  api:\n    image: x\n    dependson: [db]\n    healthcheck:\n      retries: many\n",
        encoding="utf-8",
    )
    result = run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken))
    assert result.returncode != 0 and "dependson" in result.stdout, result.stdout


def test_the_whole_stack_is_there(compose: dict) -> None:
    assert set(_services(compose)) == SERVICES


def test_host_variables_all_have_defaults() -> None:
    """`docker compose up` works with nothing set: every substituted variable has a default."""
    used = variables_used(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8")))
    assert {name for name, _ in used} >= {"MOVIEREC_API_KEYS", "AIRFLOW_UID"}
    assert all(op in (":-", "-") for _, op in used), [u for u in used if u[1] not in (":-", "-")]


def test_interpolation_follows_compose_rules() -> None:
    assert interpolate("${A:-x}") == "x" and interpolate("${A:-x}", {"A": "y"}) == "y"
    assert interpolate("${A:-x}", {"A": ""}) == "x" and interpolate("${A-x}", {"A": ""}) == ""
    assert interpolate("$$HOME ${B}") == "$HOME "
    with pytest.raises(KeyError):
        interpolate("${A:?set A}")


# ---- paths ------------------------------------------------------------------------------------


def test_build_contexts_and_dockerfiles_exist(compose: dict) -> None:
    built = {}
    for name, service in _services(compose).items():
        build = service.get("build")
        if build is None:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), f"{name}: pin the image"
            continue
        context = ROOT / build["context"]
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert context.resolve() == ROOT, f"{name}: the context is the repository (the Dockerfiles copy from it)"
        assert in_a_fresh_clone(dockerfile.relative_to(ROOT).as_posix()), dockerfile
        for arg in build.get("args") or {}:
            assert arg in parse_dockerfile(dockerfile).global_args, f"{name}: build arg {arg} is not an ARG"
        built[name] = dockerfile.resolve()
    assert set(built.values()) == {SERVICE_DOCKERFILE, PIPELINE_DOCKERFILE}


def test_bind_mounts_exist_in_a_fresh_clone(compose: dict) -> None:
    binds = []
    for name, service in _services(compose).items():
        for mount in service_mounts(service):
            if mount.kind != "bind":
                continue
            assert mount.source.startswith("."), f"{name}: {mount.source} is outside the repository"
            relative = os.path.normpath(mount.source)
            assert not relative.startswith(".."), f"{name}: {mount.source} is outside the repository"
            assert in_a_fresh_clone(relative), f"{name}: {mount.source} is not in the repository"
            binds.append(relative)
    assert {"checkpoints", "prometheus/alerts.yml", "grafana/provisioning", "grafana/dashboards", "."} <= set(binds)


def test_named_volumes_are_declared_and_used(compose: dict) -> None:
    used = {m.source for s in _services(compose).values() for m in service_mounts(s) if m.kind == "volume"}
    declared = set(compose.get("volumes") or {})
    assert used and used == declared, used ^ declared
    for name, service in _services(compose).items():
        if name != "grafana":  # Grafana's dashboards and provisioning are files from the repository
            assert any(m.kind == "volume" for m in service_mounts(service)), f"{name} keeps no state in a volume"


def test_api_mounts_the_bundle_where_the_service_reads_it(compose: dict) -> None:
    api = _services(compose)["api"]
    env = _dockerfile_of(api).effective_env()
    mounts = {m.source: m for m in service_mounts(api)}
    bundle = mounts["./checkpoints"]
    assert bundle.target == env["MOVIEREC_BUNDLE_DIR"] and bundle.read_only
    data = mounts["api-data"]
    volume = parse_dockerfile(SERVICE_DOCKERFILE).effective("VOLUME").args
    assert data.target in volume
    for name in ("MOVIEREC_DATABASE_PATH", "MOVIEREC_MODEL_CACHE_DIR"):
        assert PurePosixPath(env[name]).is_relative_to(data.target), name
    assert api["build"]["args"]["BUNDLE"] == "mounted"


def test_airflow_runs_on_the_checkout_with_the_dvc_remote(compose: dict) -> None:
    airflow = _services(compose)["airflow"]
    env = _dockerfile_of(airflow).effective_env()
    project = PurePosixPath(env["MOVIEREC_PROJECT_DIR"])
    mounts = {m.source: m for m in service_mounts(airflow)}
    assert mounts["."].target == str(project) and not mounts["."].read_only
    assert mounts["airflow-home"].target == env["AIRFLOW_HOME"]
    # the default remote's folder, resolved as DVC does: relative to .dvc/
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    default = config["core"]["remote"]
    url = config[f"'remote \"{default}\"'"]["url"]
    remote = PurePosixPath(os.path.normpath(str(project / ".dvc" / url)))
    assert mounts["dvc-remote"].target == str(remote)


def test_prometheus_gets_its_config_and_rules(compose: dict) -> None:
    prometheus = _services(compose)["prometheus"]
    config_path = PurePosixPath(option(service_command(prometheus), "--config.file"))
    mounts = {m.target: m for m in service_mounts(prometheus)}
    assert mounts[str(config_path)].source == "./prometheus/prometheus.compose.yml"
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.compose.yml").read_text(encoding="utf-8"))
    for rule_file in config["rule_files"]:
        target = str(config_path.parent / rule_file)
        assert target in mounts, f"{rule_file} is not mounted beside the config"
        assert (ROOT / mounts[target].source).resolve() == (ROOT / "prometheus" / rule_file).resolve()
    storage = option(service_command(prometheus), "--storage.tsdb.path")
    assert any(m.kind == "volume" and m.target == storage for m in mounts.values())


def test_grafana_is_provisioned_from_the_repository(compose: dict) -> None:
    grafana = _services(compose)["grafana"]
    env = service_environment(grafana)
    mounts = service_mounts(grafana)
    provisioning = next(m for m in mounts if m.source == "./grafana/provisioning")
    assert env["GF_PATHS_PROVISIONING"] == provisioning.target and provisioning.read_only
    dashboards = next(m for m in mounts if m.source == "./grafana/dashboards")
    providers = sorted((ROOT / "grafana" / "provisioning" / "dashboards").glob("*.y*ml"))
    assert providers, "grafana/provisioning/dashboards/ has no provider"
    for provider_file in providers:
        for provider in yaml.safe_load(provider_file.read_text(encoding="utf-8"))["providers"]:
            path = PurePosixPath(interpolate(provider["options"]["path"], env))
            assert path.is_relative_to(dashboards.target), f"{provider_file.name}: {path} is not mounted"
            below = path.relative_to(dashboards.target)
            assert list((ROOT / "grafana" / "dashboards" / below).glob("*.json")), f"no dashboard under {path}"
    services = _services(compose)
    datasources = sorted((ROOT / "grafana" / "provisioning" / "datasources").glob("*.y*ml"))
    assert datasources
    for source_file in datasources:
        for source in yaml.safe_load(source_file.read_text(encoding="utf-8"))["datasources"]:
            if source["type"] != "prometheus":
                continue
            url = httpx.URL(interpolate(source["url"], env))
            assert url.host in services, f"{source_file.name}: {url} is no compose service"
            assert url.port == _listen_port(url.host, services[url.host])


# ---- ports ------------------------------------------------------------------------------------


def test_published_ports_are_the_ones_the_services_listen_on(compose: dict) -> None:
    published = []
    for name, service in _services(compose).items():
        ports = service_ports(service)
        assert ports, f"{name} publishes no port"
        for port in ports:
            assert port.host_ip == "127.0.0.1", f"{name}: publish on 127.0.0.1 only"
            assert port.target == _listen_port(name, service), f"{name}: {port}"
            published.append(port.published)
    assert len(published) == len(set(published)), published


def test_api_port_agrees_everywhere(compose: dict) -> None:
    """The Dockerfile's EXPOSE and CMD, the compose mapping and Prometheus' compose target."""
    api = _services(compose)["api"]
    dockerfile = _dockerfile_of(api)
    port = _listen_port("api", api)
    assert dockerfile.effective("EXPOSE").args == str(port)
    assert [p.target for p in service_ports(api)] == [port]
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.compose.yml").read_text(encoding="utf-8"))
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "movierec-api")
    assert job["static_configs"][0]["targets"] == [f"api:{port}"]


def test_prometheus_compose_config_scrapes_the_compose_services(compose: dict) -> None:
    services = _services(compose)
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.compose.yml").read_text(encoding="utf-8"))
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                assert host in services, f"{job['job_name']}: {target} is no compose service"
                assert int(port) == _listen_port(host, services[host]), target


def test_prometheus_compose_config_differs_from_the_local_one_only_in_targets() -> None:
    """prometheus.yml (loopback, for make serve) and prometheus.compose.yml stay in step: same
    intervals, rules, jobs (alerts.yml's `up` rules use the job names) and options."""

    def without_targets(name: str) -> dict:
        config = yaml.safe_load((ROOT / "prometheus" / name).read_text(encoding="utf-8"))
        for job in config["scrape_configs"]:
            for static in job["static_configs"]:
                static["targets"] = [t.rpartition(":")[2] for t in static["targets"]]  # the port stays
        return config

    assert without_targets("prometheus.compose.yml") == without_targets("prometheus.yml")


def test_promtool_accepts_the_compose_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("MOVIEREC_REQUIRE_PROMETHEUS"):
            pytest.fail("promtool is not installed (make test installs it: apt-get install prometheus)")
        pytest.skip("promtool is not installed; `make test` installs it")
    result = subprocess.run(
        [promtool, "check", "config", "prometheus/prometheus.compose.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- health checks and start order --------------------------------------------------------------


def test_every_service_has_a_health_check_on_its_own_port(compose: dict) -> None:
    for name, service in _services(compose).items():
        check = _healthcheck(service)
        assert check and check[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
        urls = re.findall(r"https?://[^\s'\"]+", " ".join(check))
        assert urls, f"{name}: the health check asks no URL"
        for url in urls:
            parsed = httpx.URL(url)
            assert parsed.host == "127.0.0.1" and parsed.port == _listen_port(name, service), f"{name}: {url}"


def test_depends_on_waits_for_health(compose: dict) -> None:
    services = _services(compose)
    healthy = 0
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions (long syntax)"
        for other, rule in depends.items():
            assert other in services and other != name
            condition = rule["condition"]
            assert condition in ("service_healthy", "service_started"), f"{name} -> {other}: {condition}"
            if condition == "service_healthy":
                assert _healthcheck(services[other]), f"{name} waits for {other}, which has no health check"
                healthy += 1
    assert healthy >= 4
    # no cycle: a start order exists
    order: list[str] = []
    while len(order) < len(services):
        ready = [n for n, s in services.items() if n not in order and set(s.get("depends_on") or {}) <= set(order)]
        assert ready, f"depends_on has a cycle among {set(services) - set(order)}"
        order.extend(sorted(ready))


# ---- environment variables ----------------------------------------------------------------------


def _read_by_the_code(name: str) -> bool:
    """Whether the package or the DAG names this environment variable."""
    sources = [*(ROOT / "src" / "movierec").rglob("*.py"), *(ROOT / "dags").glob("*.py")]
    return any(f'"{name}"' in p.read_text(encoding="utf-8") for p in sources)


def test_api_variables_are_service_settings(compose: dict) -> None:
    api = _services(compose)["api"]
    fields = {f"MOVIEREC_{name.upper()}" for name in Settings.model_fields}
    env = {**_dockerfile_of(api).effective_env(), **service_environment(api)}
    movierec = {k: v for k, v in env.items() if k.startswith("MOVIEREC_")}
    assert set(movierec) <= fields, set(movierec) - fields
    assert not {k for k in env if not k.startswith("MOVIEREC_")} - {
        "PATH",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "TF_CPP_MIN_LOG_LEVEL",
    }
    # the values are valid settings, and the keys hold on the address the image listens on
    settings = Settings(**{k[len("MOVIEREC_") :].lower(): v for k, v in movierec.items()})
    cmd = _dockerfile_of(api).effective("CMD").exec_form()
    ring = KeyRing.parse(settings.api_keys, settings.api_key, settings.auth, cmd[cmd.index("--host") + 1])
    assert ring.required and any({"read", "write"} <= s for s in ring.scopes.values())
    tracking = httpx.URL(settings.tracking_uri)
    assert tracking.host == "mlflow" and tracking.port == _listen_port("mlflow", _services(compose)["mlflow"])


def test_pipeline_variables_are_read_by_the_code(compose: dict) -> None:
    services = _services(compose)
    for name in ("airflow", "mlflow"):
        service = services[name]
        env = {**_dockerfile_of(service).effective_env(), **service_environment(service)}
        for variable in env:
            if variable.startswith("MOVIEREC_") or variable == "MLFLOW_TRACKING_URI":
                assert _read_by_the_code(variable), f"{name}: nothing reads {variable}"
        assert airflow_variable_problems(env) == [], name
    airflow = service_environment(services["airflow"])
    host, _, port = airflow["MOVIEREC_PUSHGATEWAY"].partition(":")
    assert host in services and int(port) == _listen_port(host, services[host])
    tracking = httpx.URL(airflow["MLFLOW_TRACKING_URI"])
    assert tracking.host in services and tracking.port == _listen_port(tracking.host, services[tracking.host])


def test_mlflow_accepts_the_host_names_it_is_called_by(compose: dict) -> None:
    mlflow = _services(compose)["mlflow"]
    allowed = option(service_command(mlflow), "--allowed-hosts").split(",")
    port = _listen_port("mlflow", mlflow)
    assert {"mlflow", f"mlflow:{port}", "localhost", f"localhost:{port}", f"127.0.0.1:{port}"} <= set(allowed)
    assert "*" not in allowed


def test_readme_urls_are_the_published_ports(compose: dict) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Run the full stack with Docker", 1)[1].split("\n## ", 1)[0]
    published = {p.published for s in _services(compose).values() for p in service_ports(s)}
    urls = {int(m) for m in re.findall(r"http://127\.0\.0\.1:(\d+)", section)}
    assert published <= urls, published - urls


# ---- the containers' commands, run here on loopback ---------------------------------------------


@pytest.mark.integration
def test_mlflow_command_serves_the_stack(compose: dict, tmp_path: Path) -> None:
    """The mlflow service's command line, with its volume in a temporary folder and on loopback:
    its health check passes, and it answers the Host names the other containers send."""
    mlflow = _services(compose)["mlflow"]
    volume = next(m.target for m in service_mounts(mlflow) if m.kind == "volume")
    container_port, port = _listen_port("mlflow", mlflow), free_port()
    argv = [a.replace(volume, str(tmp_path / "mlflow")) for a in service_command(mlflow)]
    argv = [a.replace("--host=0.0.0.0", "--host=127.0.0.1") for a in argv]
    argv = [a.replace(f"--port={container_port}", f"--port={port}") for a in argv]
    assert argv[0] == "mlflow"
    (tmp_path / "mlflow").mkdir()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), *argv[1:]],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    check = _healthcheck(mlflow)
    assert check[0] == "CMD" and check[1] == "python"
    health = [sys.executable, *with_port(check[2:], container_port, port)]
    try:
        assert wait_until(lambda: subprocess.run(health, capture_output=True).returncode == 0, 90, 1), (
            process.stdout.read1().decode() if process.poll() is not None else "not healthy in 90 s"
        )
        base = f"http://127.0.0.1:{port}"
        for host in (f"mlflow:{container_port}", f"localhost:{container_port}"):
            reply = httpx.post(
                f"{base}/api/2.0/mlflow/experiments/search",
                json={"max_results": 1},
                headers={"Host": host},
                timeout=10,
            )
            assert reply.status_code == 200, (host, reply.text)
        # and the allow-list is one: an unknown Host is refused (/health answers any Host)
        reply = httpx.post(
            f"{base}/api/2.0/mlflow/experiments/search",
            json={"max_results": 1},
            headers={"Host": "attacker.example"},
            timeout=10,
        )
        assert reply.status_code == 403
    finally:
        stop_process_group(process)


@pytest.mark.integration
def test_api_command_serves_a_bundle_with_the_compose_settings(compose: dict, tmp_path: Path) -> None:
    """The API image's command and environment (Dockerfile ENV, then the compose file's), with the
    container's folders mapped to temporary ones: the service starts two workers on a real tiny
    bundle, the image's health check turns healthy, the compose file's default client key is
    accepted and Prometheus' scrape path needs no key."""
    sys.path.insert(0, str(ROOT / "tests" / "serving"))
    from bundle_fixture import build_tiny_project

    project = build_tiny_project(tmp_path / "tiny")
    api = _services(compose)["api"]
    dockerfile = _dockerfile_of(api)
    container = {**dockerfile.effective_env(), **service_environment(api)}
    folders = {
        next(m.target for m in service_mounts(api) if m.source == "./checkpoints"): str(project.checkpoints),
        next(m.target for m in service_mounts(api) if m.source == "api-data"): str(tmp_path / "api-data"),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOVIEREC_", "PROMETHEUS_MULTIPROC_DIR"))}
    for key, value in container.items():
        if key.startswith("MOVIEREC_"):
            for inside, here in folders.items():
                value = value.replace(inside, here)
            env[key] = value
    env["MOVIEREC_AUTH"] = "on"  # keys stay required although this test listens on loopback
    container_port, port = _listen_port("api", api), free_port()
    argv = dockerfile.effective("ENTRYPOINT").exec_form() + dockerfile.effective("CMD").exec_form()
    argv = [a.replace("0.0.0.0", "127.0.0.1") for a in with_port(argv, container_port, port)]
    argv[argv.index("--port") + 1] = str(port)
    # the image's WORKDIR, with what the image copies into it from the build context (nothing
    # today: the service needs no params.yaml)
    workdir_path = dockerfile.effective("WORKDIR").args
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    for stage in dockerfile.lineage():
        for copy in stage.all("COPY"):
            *sources, target = [w for w in copy.args.split() if not w.startswith("--")]
            if "from" not in copy.flags() and target in ("./", ".", workdir_path, workdir_path + "/"):
                for source in sources:
                    shutil.copy(ROOT / source, workdir)
    assert not (workdir / "params.yaml").exists()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / argv[0]), *argv[1:]],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    health = [sys.executable, *with_port(dockerfile.effective("HEALTHCHECK").exec_form()[1:], container_port, port)]
    try:
        ready = wait_until(lambda: subprocess.run(health, capture_output=True, env=env).returncode == 0, 180, 1)
        assert ready, process.stdout.read1().decode() if process.poll() is not None else "not healthy in 180 s"
        base = f"http://127.0.0.1:{port}"
        key = container["MOVIEREC_API_KEYS"].split(",")[0].rpartition(":")[0]
        body = {"user_id": 1, "k": 3}
        assert httpx.post(f"{base}/api/v1/recommendations", json=body, timeout=30).status_code == 401
        reply = httpx.post(
            f"{base}/api/v1/recommendations", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        assert reply.status_code == 200, reply.text
        metrics = httpx.get(f"{base}/metrics", timeout=30)
        assert metrics.status_code == 200 and "recommendation_requests_total" in metrics.text
        assert (tmp_path / "api-data" / "movierec.sqlite").exists()
    finally:
        stop_process_group(process)
