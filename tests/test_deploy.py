"""The deploy files (Dockerfile, deploy/compose.yaml, deploy/kubernetes/) agree with the code they run.

No Docker engine or cluster runs on the project's machines: the Kubernetes manifests are validated against
Kubernetes' own API schemas (kubernetes-validate ships them), and every command, setting, port, probe and shared
path the files name is checked against the command line, the settings and the app. The package the image installs
is built here and must hold every file of the source tree."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"


def _k8s_documents() -> list[tuple[str, dict]]:
    return [
        (f.name, doc)
        for f in sorted(K8S.glob("*.yaml"))
        if f.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(f.read_text())
        if doc
    ]


def _k8s_workloads() -> list[dict]:
    return [doc for _, doc in _k8s_documents() if doc["kind"] in ("Deployment", "StatefulSet")]


def _k8s_of(kind: str) -> list[dict]:
    return [doc for _, doc in _k8s_documents() if doc["kind"] == kind]


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # merge keys (<<) resolved as compose does


def _compose_linewatch() -> dict[str, dict]:
    """The compose services that run the linewatch image."""
    return {n: s for n, s in _compose()["services"].items() if "linewatch" in str(s.get("image", ""))}


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", "\n".join(x for x in DOCKERFILE.read_text().splitlines() if not x.startswith("#")))
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in text.splitlines() if ln.strip()]


def _setting_names() -> set[str]:
    from linewatch.config import Settings

    return {f"LINEWATCH_{name.upper()}" for name in Settings.model_fields}


def _env_file(path: Path) -> dict[str, str]:
    pairs = (ln.split("=", 1) for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#"))
    return {k: v for k, v in pairs}


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])
def test_the_kubernetes_manifests_follow_the_api_schemas(version):
    import kubernetes_validate

    documents = _k8s_documents()
    assert {doc["kind"] for _, doc in documents} >= {"StatefulSet", "Deployment", "Service", "ConfigMap"}
    for name, doc in documents:
        try:
            kubernetes_validate.validate(doc, version, strict=True)  # strict: an unknown field is an error
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {e.message} at {list(e.path)}")
    # the validator refuses what the API server would (a misspelt field), so passing it says something
    spoilt = yaml.safe_load((K8S / "worker.yaml").read_text())
    spoilt["spec"]["template"]["spec"]["containers"][0]["envfrom"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(spoilt, version, strict=True)


def test_the_kustomization_lists_every_manifest_and_makes_the_secret_from_a_file_kept_out_of_git():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {f.name for f in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    (secret,) = kustomization["secretGenerator"]
    assert secret["envs"] == ["secrets.env"]
    for workload in _k8s_workloads():
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        assert {"secretRef": {"name": secret["name"]}} in container["envFrom"], workload["metadata"]["name"]
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/deploy/kubernetes/secrets.env" in ignored, "secrets.env holds passwords: it must be git-ignored"


def test_every_setting_the_files_name_is_a_setting_and_their_values_are_valid(monkeypatch):
    from linewatch.config import Settings

    known = _setting_names()
    (config,) = _k8s_of("ConfigMap")
    secrets = _env_file(K8S / "secrets.env.example")
    named = {"settings.yaml": set(config["data"]), "secrets.env.example": set(secrets)}
    for workload in _k8s_workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            named[workload["metadata"]["name"]] = {e["name"] for e in container.get("env", [])}
    for name, service in _compose_linewatch().items():
        named[f"compose {name}"] = set(service["environment"])
    named["Dockerfile"] = {
        word.split("=", 1)[0] for op, args in _dockerfile() if op == "ENV" for word in shlex.split(args)
    }
    for where, names in named.items():
        unknown = {n for n in names if n.startswith("LINEWATCH_")} - known
        assert not unknown, f"{where} names settings linewatch does not have: {sorted(unknown)}"
    # the values parse as the service parses them (URLs, backends, paths)
    for key in [*known, "LINEWATCH_CONFIG"]:  # only the files' settings: none of this shell's, no TOML file
        monkeypatch.delenv(key, raising=False)
    for key, value in {**config["data"], **secrets}.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.search_backend == "qdrant" and settings.queue_url and settings.database_url.startswith("postgres")


def _click_parses(args: list[str]) -> None:
    """The arguments are a linewatch command and options it has: click's own parser, as `linewatch` runs it."""
    import click
    import typer

    from linewatch.cli import app

    group = typer.main.get_command(app)
    with click.Context(group, info_name="linewatch") as ctx:
        command = group.get_command(ctx, args[0])
        assert command is not None, f"linewatch has no command {args[0]!r}"
        command.make_context(args[0], list(args[1:]), parent=ctx)  # raises a UsageError on an unknown option


def _commands() -> dict[str, list[str]]:
    found = {}
    for workload in _k8s_workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            found[f"kubernetes {workload['metadata']['name']}"] = container["args"]
    for name, service in _compose_linewatch().items():
        found[f"compose {name}"] = service["command"]
    cmd = [args for op, args in _dockerfile() if op == "CMD"]
    entry = [args for op, args in _dockerfile() if op == "ENTRYPOINT"]
    assert yaml.safe_load(entry[-1]) == ["linewatch"]
    found["Dockerfile CMD"] = yaml.safe_load(cmd[-1])  # the exec form is a JSON list
    return found


def test_the_commands_they_run_are_linewatch_commands():
    commands = _commands()
    assert {args[0] for args in commands.values()} == {"serve", "worker"}
    for where, args in commands.items():
        try:
            _click_parses(args)
        except Exception as e:
            pytest.fail(f"{where}: linewatch {' '.join(args)}: {e}")
    # and an option it lacks would be caught
    with pytest.raises(Exception, match="--prot"):
        _click_parses(["serve", "--prot", "8000"])


def _option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_ports_and_probes_are_the_services():
    from types import SimpleNamespace

    from linewatch.api.app import create_app
    from linewatch.config import Settings

    doc = create_app(Settings(), context=SimpleNamespace()).openapi()
    routes = {path for path, operations in doc["paths"].items() if "get" in operations}
    commands = _commands()
    port = int(_option(commands["Dockerfile CMD"], "--port"))
    (statefulset,) = _k8s_of("StatefulSet")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert int(_option(container["args"], "--port")) == port
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named == {"http": port}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] in routes and check["port"] in named, probe
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"  # out of the Service while a part is down
    for service in _k8s_of("Service"):
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(named), service["metadata"]["name"]
        labels = statefulset["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), service["metadata"]["name"]
    assert statefulset["spec"]["serviceName"] in {s["metadata"]["name"] for s in _k8s_of("Service")}
    (budget,) = _k8s_of("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"] == statefulset["spec"]["selector"]["matchLabels"]
    # each instance its own MQTT client id (the broker keeps one session per id): the pod's stable name
    env = {e["name"]: e for e in container["env"]}
    assert env["LINEWATCH_MQTT_CLIENT_ID"]["value"] == "$(POD_NAME)"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # the image and compose
    docker = dict(_dockerfile())
    assert int(docker["EXPOSE"]) == port
    health = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", docker["HEALTHCHECK"])
    assert int(health[1]) == port and health[2] in routes
    compose = _compose_linewatch()
    assert int(_option(compose["linewatch"]["command"], "--port")) == port
    assert [p.rsplit(":", 1)[1] for p in compose["linewatch"]["ports"]] == [str(port)]


def test_every_instance_and_worker_mount_one_data_dir_at_the_same_path():
    """A worker writes the model it trained into the data dir; the service instances load it from there."""
    (config,) = _k8s_of("ConfigMap")
    data_dir = config["data"]["LINEWATCH_DATA_DIR"]
    (claim,) = _k8s_of("PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    workloads = _k8s_workloads()
    assert {w["metadata"]["name"] for w in workloads} == {"linewatch", "linewatch-worker"}
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        mounted = {
            volumes[m["name"]]["persistentVolumeClaim"]["claimName"]: m["mountPath"] for m in container["volumeMounts"]
        }
        assert mounted == {claim["metadata"]["name"]: data_dir}, workload["metadata"]["name"]
        assert pod["securityContext"]["runAsUser"] == int(dict(_dockerfile())["USER"])  # the image's own user
    docker_dir = [w for op, args in _dockerfile() if op == "ENV" for w in shlex.split(args) if "DATA_DIR=" in w]
    assert docker_dir == [f"LINEWATCH_DATA_DIR={data_dir}"]
    compose = _compose_linewatch()
    assert set(compose) == {"linewatch", "worker"}
    for name, service in compose.items():
        assert service["volumes"] == [f"linewatch-data:{data_dir}"], name


def test_the_compose_files_hosts_are_its_services():
    compose = _compose()
    services = set(compose["services"])
    for name, service in _compose_linewatch().items():
        for key, value in service["environment"].items():
            if "://" in value:
                host = urlsplit(value).hostname
                assert host in services, f"{name}: {key} points at {host!r}, which compose does not run"
        assert set(service["depends_on"]) <= services
    mounted = {v.split(":", 1)[0] for s in compose["services"].values() for v in s.get("volumes", [])}
    assert {v for v in mounted if not v.startswith(".")} == set(compose["volumes"])
    for v in mounted - set(compose["volumes"]):
        assert (DEPLOY / v).is_file(), v


def test_the_image_installs_the_projects_pins_and_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {re.split(r"[=<>]", d)[0]: d for d in project["optional-dependencies"]["vision"] if "==" in d}
    lines = _dockerfile()
    installs = " ".join(args for op, args in lines if op == "RUN" and "pip install" in args)
    assert pins["torch"] in installs and pins["torchvision"] in installs
    extras = next(args.split("=", 1)[1] for op, args in lines if op == "ARG" and args.startswith("EXTRAS="))
    assert set(extras.split(",")) <= set(project["optional-dependencies"]) - {"all", "dev"}
    assert "service" in extras.split(",")
    # what the image copies is in the build context (.dockerignore leaves everything else out)
    rules = [r for r in (ROOT / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    copied = [w for op, args in lines if op == "COPY" for w in args.split()[:-1]]
    assert copied and rules[0] == "*"
    for source in copied:
        assert f"!{source}" in rules or f"!{source}/" in rules, f"{source} is left out of the build context"


def test_the_package_the_image_installs_holds_every_file_of_the_source_tree(tmp_path):
    """A non-editable install (the image's, PyPI's) carries only what the package data names: a file added under
    src/linewatch that it does not name (a migration's template, a dashboard asset) would be missing there alone.
    Built as the image builds it, from a copy of what the Dockerfile copies (no stale build folder to borrow from)."""
    import shutil

    context = tmp_path / "context"
    context.mkdir()
    for op, args in _dockerfile():
        if op == "COPY":
            for source in args.split()[:-1]:
                if (ROOT / source).is_dir():  # less what .dockerignore leaves out: an editable install's egg-info
                    ignored = shutil.ignore_patterns("__pycache__", "*.egg-info")
                    shutil.copytree(ROOT / source, context / source, ignore=ignored)
                else:
                    shutil.copy2(ROOT / source, context / source)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(context), "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path / "wheel")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("linewatch-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    source = ROOT / "src"
    files = {
        str(p.relative_to(source))
        for p in (source / "linewatch").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert files - packaged == set()
