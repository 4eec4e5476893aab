"""Checks the deployment and observability files against the real gateway.

Run through deploy/test.sh, which installs the tools this needs (a venv with
kubernetes-validate, yamllint and websockets; promtool) and builds the
binary. Each check prints `ok - NAME` or `FAIL - NAME: why`; the last line is
`N passed, N failed` and the exit status is 1 when anything failed.

Environment: TICKGATE_BIN (default target/debug/tickgate), TOOLS_BIN (the
venv's bin directory), PROMTOOL (default promtool).
"""

import asyncio
import json
import os
import pathlib
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
GRAFANA = ROOT / "grafana"
DOCS = ROOT / "docs"
BIN = pathlib.Path(os.environ.get("TICKGATE_BIN", ROOT / "target" / "debug" / "tickgate"))
TOOLS = pathlib.Path(os.environ.get("TOOLS_BIN", ROOT / ".tools" / "venv" / "bin"))
PROMTOOL = os.environ.get("PROMTOOL", "promtool")
KUBECTL = shutil.which("kubectl")

# Kubernetes versions to validate against: the oldest the manifests support
# (native preStop sleep is on by default from 1.30) and the newest bundled.
K8S_VERSIONS = ["1.30.0", None]

# Names used in PromQL that a gateway does not export, and why.
NOT_FROM_GATEWAY = {
    "up": "synthesized by Prometheus for every scrape target",
    "container_memory_working_set_bytes": "kubelet cAdvisor metric (pod memory)",
    "container_cpu_usage_seconds_total": "kubelet cAdvisor metric (pod CPU)",
}
# Gateway metrics that a short test run cannot make appear, and why.
NOT_DRIVEN = {
    "tickgate_ticks_rejected_total": "the simulator only produces valid ticks; rejection is covered by the Rust tests",
    "tickgate_tls_reloads_total": "exported only while the wss listener is on; reloads are covered by tests/tls.rs",
    "tickgate_auth_key_reloads_total": "exported only once JWT keys are reloaded; covered by tests/auth.rs",
}

PASSED = 0
FAILED = 0


def check(name, ok, why=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"ok - {name}")
    else:
        FAILED += 1
        print(f"FAIL - {name}: {why}")
    sys.stdout.flush()
    return ok


def note(text):
    print(f"# {text}")


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


def rel(path):
    return str(pathlib.Path(path).relative_to(ROOT))


def load_docs(path):
    return [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d]


# --- the manifests ------------------------------------------------------------


def kustomization_dirs():
    return sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))


def manifest_files():
    out = []
    for d in kustomization_dirs():
        out += sorted(p for p in d.glob("*.yaml") if p.name != "kustomization.yaml")
    return out


def patch_files():
    out = set()
    for d in kustomization_dirs():
        k = yaml.safe_load((d / "kustomization.yaml").read_text())
        out |= {(d / p["path"]).resolve() for p in k.get("patches", []) if "path" in p}
    return out


def resource_files():
    """Complete objects; patches are only checked as part of the rendered overlay."""
    patches = patch_files()
    return [f for f in manifest_files() if f.resolve() not in patches]


def check_yamllint():
    files = sorted({*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml"), *(GRAFANA / "provisioning").rglob("*.yaml")})
    r = run([TOOLS / "yamllint", "-f", "parsable", "-c", DEPLOY / "tests" / "yamllint.yaml", *files])
    check(f"yamllint ({len(files)} files)", r.returncode == 0, r.stdout + r.stderr)


def check_kubernetes_validate():
    for version in K8S_VERSIONS:
        label = version or "bundled latest"
        for f in resource_files():
            cmd = [TOOLS / "kubernetes-validate", "--strict", "--quiet"]
            if version:
                cmd += ["-k", version]
            r = run(cmd + [f])
            # Custom resources (ServiceMonitor, PrometheusRule, Certificate)
            # have no bundled schema: a warning, exit 0.
            check(f"kubernetes-validate --strict {rel(f)} (k8s {label})", r.returncode == 0, r.stdout + r.stderr)
    if not KUBECTL:
        note("kubectl not found: rendered kustomizations not validated (the files themselves were)")
        return
    for d in kustomization_dirs():
        r = run([KUBECTL, "kustomize", d])
        if not check(f"kubectl kustomize {rel(d)}", r.returncode == 0, r.stderr):
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as out:
            out.write(r.stdout)
        try:
            v = run([TOOLS / "kubernetes-validate", "--strict", "--quiet", out.name])
            check(f"rendered {rel(d)} validates --strict", v.returncode == 0, v.stdout + v.stderr)
        finally:
            os.unlink(out.name)


def check_kustomizations():
    for d in kustomization_dirs():
        k = yaml.safe_load((d / "kustomization.yaml").read_text())
        deprecated = sorted({"commonLabels", "patchesStrategicMerge", "patchesJson6902", "bases", "vars"} & set(k))
        check(f"{rel(d)}: no deprecated kustomize fields", not deprecated, f"uses {deprecated}")
        listed, problems = set(), []
        for entry in k.get("resources", []):
            target = (d / entry).resolve()
            if target.is_dir():
                if not (target / "kustomization.yaml").exists():
                    problems.append(f"{entry} is a directory without kustomization.yaml")
            elif target.exists():
                listed.add(target)
            else:
                problems.append(f"{entry} does not exist")
        for patch in k.get("patches", []):
            if "path" in patch:
                target = (d / patch["path"]).resolve()
                listed.add(target) if target.exists() else problems.append(f"patch {patch['path']} does not exist")
        present = {p.resolve() for p in d.glob("*.yaml") if p.name != "kustomization.yaml"}
        unlisted = sorted(p.name for p in present - listed)
        if unlisted:
            problems.append(f"not listed: {unlisted}")
        check(f"{rel(d)}: kustomization lists exactly its files", not problems, "; ".join(problems))


def by_kind(kind, files=None):
    out = []
    for f in files or manifest_files():
        out += [(f, doc) for doc in load_docs(f) if doc.get("kind") == kind]
    return out


def gateway_configs():
    """(file, parsed toml, text) for every ConfigMap holding tickgate.toml."""
    out = []
    for f, cm in by_kind("ConfigMap"):
        text = (cm.get("data") or {}).get("tickgate.toml")
        if text is not None:
            out.append((f, tomllib.loads(text), text))
    return out


def check_configmaps():
    configs = gateway_configs()
    check("a ConfigMap carries tickgate.toml in base and production", len(configs) >= 2, f"found {[rel(f) for f, _, _ in configs]}")
    for f, parsed, text in configs:
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as out:
            out.write(text)
        try:
            r = run([BIN, "--config", out.name, "--check-config"])
            check(f"{rel(f)}: tickgate --check-config accepts tickgate.toml", r.returncode == 0,
                  f"exit {r.returncode}: {r.stdout}{r.stderr}")
        finally:
            os.unlink(out.name)
        server = parsed.get("server", {})
        check(f"{rel(f)}: listens on 0.0.0.0:8080 and admin 0.0.0.0:9090, json logs",
              server.get("listen") == "0.0.0.0:8080" and server.get("admin_listen") == "0.0.0.0:9090"
              and parsed.get("log", {}).get("format") == "json", json.dumps(parsed))


def gateway_deployments():
    """The gateway Deployment of each overlay: base, and base + production patch."""
    base = by_kind("Deployment", [DEPLOY / "base" / "deployment.yaml"])[0][1]
    prod_patch = by_kind("Deployment", [DEPLOY / "overlays" / "production" / "deployment.yaml"])[0][1]
    prod = json.loads(json.dumps(base))
    prod["spec"]["template"]["spec"].update(
        {k: v for k, v in prod_patch["spec"]["template"]["spec"].items() if k not in ("containers", "volumes")})
    return [("base", base, DEPLOY / "base" / "configmap.yaml"),
            ("production", prod, DEPLOY / "overlays" / "production" / "configmap.yaml")]


def container_ports(container):
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def port_of(ref, ports):
    return ports.get(ref) if isinstance(ref, str) else ref


def check_deployment_shape():
    for f, dep in by_kind("Deployment", resource_files()):
        spec = dep["spec"]["template"]["spec"]
        name = f"{rel(f)} {dep['metadata']['name']}"
        pod_sc = spec.get("securityContext", {})
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            problems = []
            if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                problems.append("runAsNonRoot")
            if not isinstance(sc.get("runAsUser", pod_sc.get("runAsUser")), int):
                problems.append("numeric runAsUser")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append("readOnlyRootFilesystem")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append("allowPrivilegeEscalation: false")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append("capabilities.drop [ALL]")
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            if seccomp.get("type") != "RuntimeDefault":
                problems.append("seccompProfile RuntimeDefault")
            if "cpu" in c.get("resources", {}).get("limits", {}):
                problems.append("no CPU limit")
            if "memory" not in c.get("resources", {}).get("requests", {}):
                problems.append("memory request")
            check(f"{name}/{c['name']}: restricted securityContext, no CPU limit", not problems, f"missing {problems}")
    base = by_kind("Deployment", [DEPLOY / "base" / "deployment.yaml"])[0][1]
    check("gateway Deployment leaves replicas to the HPA", "replicas" not in base["spec"], "spec.replicas is set")
    check("gateway Deployment spreads over zones and hosts",
          {t["topologyKey"] for t in base["spec"]["template"]["spec"].get("topologySpreadConstraints", [])}
          >= {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
          and "podAntiAffinity" in base["spec"]["template"]["spec"].get("affinity", {}), "")


def example_config():
    return tomllib.loads((ROOT / "config" / "tickgate.example.toml").read_text())


def check_drain_timings():
    for label, dep, cm_file in gateway_deployments():
        spec = dep["spec"]["template"]["spec"]
        c = spec["containers"][0]
        pre_stop = c.get("lifecycle", {}).get("preStop", {})
        check(f"{label}: preStop uses the native sleep action", "sleep" in pre_stop and "exec" not in pre_stop, json.dumps(pre_stop))
        sleep_s = pre_stop.get("sleep", {}).get("seconds", 0)
        cfg = tomllib.loads(load_docs(cm_file)[0]["data"]["tickgate.toml"])
        # Keys the ConfigMap leaves out take the binary's defaults, which the
        # example config spells out (drain_window_ms: 0 until it exists).
        shutdown = {**example_config().get("shutdown", {}), **cfg.get("shutdown", {})}
        grace_ms = shutdown.get("grace_period_ms", 5000)
        drain_ms = shutdown.get("drain_window_ms", 0)
        margin_s = 5
        need = sleep_s + (grace_ms + drain_ms) / 1000 + margin_s
        have = spec.get("terminationGracePeriodSeconds", 30)
        check(f"{label}: terminationGracePeriodSeconds {have} >= preStop {sleep_s}s + drain {drain_ms}ms + grace {grace_ms}ms + {margin_s}s",
              have >= need, f"needs at least {need}")


def check_probes_and_services(admin_addr, client_addr):
    """Probes, Services, ServiceMonitor and Ingress point at what the binary serves."""
    served = {"admin": {"/healthz": 200, "/readyz": 200, "/metrics": 200}, "client": {"/ws": 426, "/": 200}}
    for path, status in served["admin"].items():
        got = http_status(f"http://{admin_addr}{path}")
        check(f"running gateway answers {status} on admin {path}", got == status, f"got {got}")
    for path, status in served["client"].items():
        got = http_status(f"http://{client_addr}{path}")
        check(f"running gateway answers {status} on client {path}", got == status, f"got {got}")

    for label, dep, cm_file in gateway_deployments():
        cfg = tomllib.loads(load_docs(cm_file)[0]["data"]["tickgate.toml"])
        admin_port = int(cfg["server"]["admin_listen"].rsplit(":", 1)[1])
        client_port = int(cfg["server"]["listen"].rsplit(":", 1)[1])
        c = dep["spec"]["template"]["spec"]["containers"][0]
        ports = container_ports(c)
        check(f"{label}: container ports match the config (ws {client_port}, admin {admin_port})",
              ports.get("ws") == client_port and ports.get("admin") == admin_port, json.dumps(ports))
        expect = {"startupProbe": "/healthz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
        for probe, path in expect.items():
            get = c.get(probe, {}).get("httpGet", {})
            check(f"{label}: {probe} GETs {path} on the admin port",
                  get.get("path") == path and port_of(get.get("port"), ports) == admin_port, json.dumps(get))

    ports = container_ports(by_kind("Deployment", [DEPLOY / "base" / "deployment.yaml"])[0][1]["spec"]["template"]["spec"]["containers"][0])
    services = {s["metadata"]["name"]: s for _, s in by_kind("Service")}
    for name, svc in services.items():
        for p in svc["spec"]["ports"]:
            check(f"Service {name} port {p['name']} targets a container port", port_of(p["targetPort"], ports) in ports.values(), json.dumps(p))
    check("Service tickgate routes to the client listener",
          port_of(services["tickgate"]["spec"]["ports"][0]["targetPort"], ports) == ports["ws"], "")
    for f, sm in by_kind("ServiceMonitor"):
        sel = sm["spec"]["selector"]["matchLabels"]
        matched = [s for s in services.values() if sel.items() <= s["metadata"].get("labels", {}).items()]
        ok = len(matched) == 1 and all(
            any(p["name"] == e["port"] and port_of(p["targetPort"], ports) == ports["admin"] for p in matched[0]["spec"]["ports"])
            and e.get("path", "/metrics") in served["admin"] for e in sm["spec"]["endpoints"])
        check(f"{rel(f)}: selects one Service and scrapes /metrics on its admin port", ok, f"matched {[s['metadata']['name'] for s in matched]}")
    for f, ing in by_kind("Ingress"):
        problems = []
        for rule in ing["spec"].get("rules", []):
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                svc = services.get(backend["name"])
                if not svc or not any(p["name"] == backend["port"].get("name") for p in svc["spec"]["ports"]):
                    problems.append(f"{backend} is not a Service port")
        ann = ing["metadata"].get("annotations", {})
        if f.parent.name == "base":
            for key in ("proxy-read-timeout", "proxy-send-timeout"):
                if int(ann.get(f"nginx.ingress.kubernetes.io/{key}", "60")) < 300:
                    problems.append(f"{key} too short for WebSockets")
        check(f"{rel(f)}: routes to the client Service port with WebSocket timeouts", not problems, "; ".join(problems))
    for f, np in by_kind("NetworkPolicy"):
        named = {p.get("port") for rule in np["spec"].get("ingress", []) for p in rule.get("ports", [])}
        check(f"{rel(f)}: opens only named container ports", named <= set(ports), f"{named} vs {set(ports)}")


def check_dockerfile():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    problems = []
    if not stages or not stages[0].startswith("rust:1-bookworm"):
        problems.append("builder is not rust:1-bookworm")
    if len(stages) < 2 or not re.match(r"(gcr.io/distroless/cc|debian:bookworm-slim)", stages[-1]):
        problems.append("runtime is not distroless/cc or debian:bookworm-slim")
    if not user or not re.fullmatch(r"\d+(:\d+)?", user[-1]):
        problems.append("final USER is not numeric")
    if re.search(r"^HEALTHCHECK", text, re.M):
        problems.append("has a HEALTHCHECK")
    check("Dockerfile: multi-stage, numeric non-root user, no HEALTHCHECK", not problems, "; ".join(problems))


# --- rules -------------------------------------------------------------------

RULES = DEPLOY / "alerts" / "tickgate-rules.yml"
RULE_TESTS = DEPLOY / "alerts" / "tickgate-rules.test.yml"


def rule_exprs():
    out = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            out.append((rule.get("alert") or rule.get("record"), rule["expr"]))
    return out


def check_rules():
    r = run([sys.executable, DEPLOY / "tests" / "sync_rules.py", "--check"])
    check("deploy/base/prometheus-rules.yaml is generated from deploy/alerts/tickgate-rules.yml", r.returncode == 0, r.stdout)
    operator = load_docs(DEPLOY / "base" / "prometheus-rules.yaml")[0]
    check("PrometheusRule spec equals the plain rule file", operator["spec"] == yaml.safe_load(RULES.read_text()), "")
    r = run([PROMTOOL, "check", "rules", RULES])
    check("promtool check rules", r.returncode == 0, r.stdout + r.stderr)
    r = run([PROMTOOL, "test", "rules", RULE_TESTS], cwd=RULES.parent)
    check("promtool test rules", r.returncode == 0, r.stdout + r.stderr)
    tested = set(re.findall(r"alertname:\s*(\w+)", RULE_TESTS.read_text()))
    untested = sorted({name for name, _ in rule_exprs()} - tested - {"TickgateFeedLagHigh"})
    check("every alert except TickgateFeedLagHigh has a promtool unit test", not untested, f"untested: {untested}")
    near = dict(rule_exprs())["TickgateConnectionsNearLimit"]
    threshold = float(re.search(r">\s*([\d.]+)\s*$", near.strip()).group(1))
    limits = {rel(f): cfg.get("limits", {}).get("max_connections", 10000) for f, cfg, _ in gateway_configs()}
    check(f"TickgateConnectionsNearLimit threshold {threshold:g} is 90 % of limits.max_connections in every ConfigMap",
          all(abs(threshold - 0.9 * v) < 1e-9 for v in limits.values()), json.dumps(limits))


# --- dashboards ----------------------------------------------------------------

DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DS_UID = "${datasource}"


def all_panels(dash):
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])


def dashboard_exprs(dash):
    """(where, expr) for every panel query and every variable query."""
    out = []
    for p in all_panels(dash):
        for t in p.get("targets", []):
            out.append((f"panel {p['id']} {t['refId']}", t["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q.strip())
            out.append((f"variable {v['name']}", m.group(1) if m else q))
    return out


def check_dashboards():
    r = run([sys.executable, GRAFANA / "build_dashboards.py", "--check"])
    check("grafana/dashboards match build_dashboards.py", r.returncode == 0, r.stdout)
    uids = {}
    for f in DASHBOARDS:
        name = rel(f)
        try:
            dash = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            check(f"{name}: valid JSON", False, str(e))
            continue
        check(f"{name}: valid JSON", True)
        uids[dash.get("uid")] = name
        problems = []
        for key in ("uid", "title", "panels", "templating", "schemaVersion"):
            if key not in dash:
                problems.append(f"missing {key}")
        if "__inputs" in dash or "${DS_" in f.read_text():
            problems.append("uses import-only ${DS_*} inputs")
        check(f"{name}: Grafana dashboard model fields", not problems, "; ".join(problems))
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        ds = variables.get("datasource", {})
        check(f"{name}: has a prometheus datasource variable", ds.get("type") == "datasource" and ds.get("query") == "prometheus", json.dumps(ds))
        check(f"{name}: has namespace and pod variables", {"namespace", "pod"} <= set(variables), sorted(variables))
        panels = list(all_panels(dash))
        ids = [p.get("id") for p in panels]
        check(f"{name}: panel ids are unique integers", len(set(ids)) == len(ids) and all(isinstance(i, int) for i in ids), ids)
        problems = []
        for p in panels:
            if p.get("datasource", {}).get("uid") != DS_UID:
                problems.append(f"panel {p.get('id')} datasource")
            refs = [t.get("refId") for t in p.get("targets", [])]
            if len(set(refs)) != len(refs) or not all(refs):
                problems.append(f"panel {p.get('id')} refIds {refs}")
            for t in p.get("targets", []):
                if t.get("datasource", {}).get("uid") != DS_UID:
                    problems.append(f"panel {p.get('id')} {t.get('refId')} datasource")
            if p["type"] != "row":
                if not p.get("fieldConfig", {}).get("defaults", {}).get("unit"):
                    problems.append(f"panel {p.get('id')} has no unit")
                if not p.get("targets"):
                    problems.append(f"panel {p.get('id')} has no query")
            if not all(k in p.get("gridPos", {}) for k in "xywh"):
                problems.append(f"panel {p.get('id')} gridPos")
        for v in variables.values():
            if v["type"] == "query" and v.get("datasource", {}).get("uid") != DS_UID:
                problems.append(f"variable {v['name']} datasource")
        check(f"{name}: every panel, query and variable uses ${{datasource}}, with refIds, units and positions", not problems, "; ".join(problems))
        cells, overlaps = {}, []
        for p in panels:
            gp = p["gridPos"]
            if gp["x"] + gp["w"] > 24:
                overlaps.append(f"panel {p['id']} wider than the grid")
            for x in range(gp["x"], gp["x"] + gp["w"]):
                for y in range(gp["y"], gp["y"] + gp["h"]):
                    if (x, y) in cells:
                        overlaps.append(f"panels {cells[(x, y)]} and {p['id']} at {x},{y}")
                        break
                    cells[(x, y)] = p["id"]
        check(f"{name}: panels do not overlap", not overlaps, "; ".join(overlaps[:5]))
        fixed = [w for w, e in dashboard_exprs(dash) if re.search(r"\[\d+[smhdw]\]", e)]
        check(f"{name}: rates use $__rate_interval", not fixed, fixed)
    check("dashboard uids are the stable tickgate-overview and tickgate-feeds",
          set(uids) == {"tickgate-overview", "tickgate-feeds"}, sorted(map(str, uids)))
    # promtool parses every dashboard query: write them as recording rules
    # with Grafana's variables replaced by values.
    subst = {"$__rate_interval": "1m", "$namespace": ".*", "$pod": ".*", "$feed": ".*"}
    rules = []
    for f in DASHBOARDS:
        for where, expr in dashboard_exprs(json.loads(f.read_text())):
            for k, v in subst.items():
                expr = expr.replace(k, v)
            rules.append({"record": "tickgate_dashboard:check", "expr": expr, "labels": {"where": f"{f.stem} {where}"}})
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as out:
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, out)
    try:
        r = run([PROMTOOL, "check", "rules", out.name])
        check(f"promtool parses all {len(rules)} dashboard queries", r.returncode == 0, r.stdout + r.stderr)
    finally:
        os.unlink(out.name)


# --- metric names against a live gateway ----------------------------------------

PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                "group_left", "group_right", "inf", "nan", "start", "end"}


def metric_names(expr):
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"'(?:[^'\\]|\\.)*'", "''", s)
    s = re.sub(r"\{[^}]*\}", "", s)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        if m.group(2) or m.group(1).lower() in PROMQL_WORDS:
            continue
        names.add(m.group(1))
    return names


def check_metric_name_extractor():
    """The metric-name check is only as good as this parser: pin its behaviour."""
    cases = {
        'sum by (pod, le) (rate(a_seconds_bucket{x=~"$pod", y="b_total"}[$__rate_interval]))': {"a_seconds_bucket"},
        "histogram_quantile(0.99, sum(rate(h_bucket[5m])) by (le)) > 1e-3": {"h_bucket"},
        "count(up == 0) or vector(0)": {"up"},
        "x / on (pod) group_left(feed) y offset 5m > bool 2": {"x", "y"},
        "sum without (instance) (m:rec:rate5m) unless ignoring(a) n": {"m:rec:rate5m", "n"},
    }
    wrong = {e: metric_names(e) for e, want in cases.items() if metric_names(e) != want}
    check("PromQL metric-name extractor finds exactly the metric names", not wrong, json.dumps({k: sorted(v) for k, v in wrong.items()}))


def exported(name, families):
    if name in families:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and families.get(name[: -len(suffix)]) in ("histogram", "summary"):
            return True
    return False


def parse_families(text):
    families = {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            families[m.group(1)] = m.group(2)
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            if not exported(name, families):
                families.setdefault(name, "untyped")
    return families


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


class Gateway:
    """The real binary on port 0 with a small connection limit."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory()
        config = pathlib.Path(self.dir.name) / "tickgate.toml"
        # Two connections at most, so a third is refused (reason max_connections).
        config.write_text("[limits]\nmax_connections = 2\n[log]\nformat = \"json\"\n")
        self.stderr = open(pathlib.Path(self.dir.name) / "stderr.log", "w")
        self.proc = subprocess.Popen(
            [str(BIN), "--config", str(config), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        # The first stdout line says where it listens; give up after 30 s.
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            event = {}
        if event.get("event") != "listening":
            self.stop()
            raise RuntimeError(f"no listening line from {BIN}: {line!r}")
        self.client, self.admin = event["client"], event["admin"]

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if http_status(f"http://{self.admin}/readyz") == 200:
                return True
            time.sleep(0.2)
        return False

    def scrape(self):
        with urllib.request.urlopen(f"http://{self.admin}/metrics", timeout=5) as r:
            return r.read().decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.stderr.closed:
            self.stderr.close()
            self.dir.cleanup()


async def drive_traffic(client):
    """Opens clients, subscribes, sends bad requests, hits the limit, closes."""
    import websockets

    url = f"ws://{client}/ws"
    first = await websockets.connect(url, max_size=2**22)
    second = await websockets.connect(url)
    await first.send(json.dumps({"op": "subscribe", "symbols": ["AAPL", "MSFT", "NVDA", "AMZN"], "id": 1}))
    await first.send("not json")
    await first.send(json.dumps({"op": "subscribe", "symbols": ["??"], "id": 2}))
    refused = None
    try:
        third = await websockets.connect(url)
        await third.close()
    except Exception as e:  # the limit answers HTTP 503 before the upgrade
        refused = e
    updates = 0
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            msg = json.loads(await asyncio.wait_for(first.recv(), timeout=0.5))
        except asyncio.TimeoutError:
            continue
        updates += msg.get("type") == "update"
    await first.close()
    await second.close()
    await asyncio.sleep(0.3)
    return updates, refused


async def close_code_after_sigterm(gw):
    import websockets

    async with websockets.connect(f"ws://{gw.client}/ws") as ws:
        await ws.send(json.dumps({"op": "subscribe", "symbols": ["AAPL"]}))
        await asyncio.wait_for(ws.recv(), timeout=5)
        started = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        try:
            while True:
                await asyncio.wait_for(ws.recv(), timeout=60)
        except websockets.ConnectionClosed:
            pass
        return ws.close_code, time.monotonic() - started


def check_sigterm(gw):
    """What the drain timings in the manifests rely on: SIGTERM closes clients
    with 1001 and the process exits within shutdown.grace_period_ms."""
    # The test config leaves [shutdown] at its defaults, which the example
    # config spells out.
    defaults = example_config().get("shutdown", {})
    grace_s = (defaults.get("grace_period_ms", 5000) + defaults.get("drain_window_ms", 0)) / 1000
    code, after = asyncio.run(close_code_after_sigterm(gw))
    check("SIGTERM closes a connected client with 1001 (Going Away)", code == 1001, f"close code {code}")
    started = time.monotonic() - after
    try:
        gw.proc.wait(timeout=max(0.1, grace_s + 2 - after))
    except subprocess.TimeoutExpired:
        pass
    exited = gw.proc.poll()
    check(f"after SIGTERM the gateway exits within drain window + grace period ({grace_s:g} s)",
          exited is not None, f"still running {time.monotonic() - started:.1f} s after SIGTERM")


def check_live_metrics():
    if not check("tickgate binary exists", BIN.exists(), f"{BIN} missing (deploy/test.sh builds it)"):
        return
    gw = Gateway()
    try:
        check("gateway becomes ready (/readyz 200)", gw.wait_ready(), "no 200 from /readyz within 20 s")
        updates, refused = asyncio.run(drive_traffic(gw.client))
        check("driven client received updates", updates > 0, "no update frames")
        check("third connection refused at limits.max_connections", refused is not None, "it was accepted")
        text = gw.scrape()
        check_probes_and_services(gw.admin, gw.client)
        check_sigterm(gw)
    finally:
        gw.stop()
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    check("promtool check metrics on a live scrape", r.returncode == 0, r.stdout + r.stderr)
    families = parse_families(text)
    for needed in ['tickgate_connections_refused_total{reason="max_connections"}',
                   'tickgate_client_errors_total{code="bad_request"}',
                   'tickgate_connections_closed_total{reason="client_closed"}']:
        check(f"driven series present: {needed}", needed in text, "not in the scrape")

    used = {}
    for name, expr in rule_exprs():
        for m in metric_names(expr):
            used.setdefault(m, set()).add(f"rule {name}")
    for f in DASHBOARDS:
        for where, expr in dashboard_exprs(json.loads(f.read_text())):
            for m in metric_names(expr):
                used.setdefault(m, set()).add(f"{f.stem} {where}")
    for name in sorted(used):
        if name in NOT_FROM_GATEWAY:
            note(f"{name}: not checked ({NOT_FROM_GATEWAY[name]})")
            continue
        if name in NOT_DRIVEN or any(name == n + s for n in NOT_DRIVEN for s in ("_bucket", "_sum", "_count")):
            declared = name.split("_bucket")[0] in declared_metrics()
            check(f"{name} is declared in src/telemetry.rs (not driven: {NOT_DRIVEN[name]})", declared, "not declared")
            continue
        check(f"{name} is exported by a running gateway", exported(name, families),
              f"used by {sorted(used[name])[:3]} but not in /metrics")

    # Every exported and every declared metric is documented.
    doc = (DOCS / "metrics.md").read_text() if (DOCS / "metrics.md").exists() else ""
    names = {n for n in families if n.startswith("tickgate_")} | declared_metrics()
    undocumented = sorted(n for n in names if f"`{n}`" not in doc)
    check(f"docs/metrics.md documents all {len(names)} tickgate metrics", not undocumented, f"missing {undocumented}")
    missing_alerts = sorted(n for n, _ in rule_exprs() if n not in doc)
    check("docs/metrics.md explains every alert", not missing_alerts, f"missing {missing_alerts}")


def declared_metrics():
    text = "".join((ROOT / d / "src" / "telemetry.rs").read_text() for d in (".", "feeds"))
    return set(re.findall(r'pub const \w+: &str = "([a-z_:]+)"', text))


def check_optional():
    r = run([BIN, "publish", "--help"]) if BIN.exists() else None
    if r is not None and r.returncode == 0:
        check("deploy/optional/nats-publisher: tickgate publish exists", True)
    else:
        note("deploy/optional/nats-publisher: pending (tickgate has no `publish` subcommand yet)")


def main():
    groups = [check_yamllint, check_kustomizations, check_kubernetes_validate, check_configmaps,
              check_deployment_shape, check_drain_timings, check_dockerfile, check_rules,
              check_dashboards, check_metric_name_extractor, check_live_metrics, check_optional]
    for group in groups:
        try:
            group()
        except Exception as e:  # a broken file or tool fails its group, not the run
            check(f"{group.__name__} completed", False, f"{type(e).__name__}: {e}")
    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
