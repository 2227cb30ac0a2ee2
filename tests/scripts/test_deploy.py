#!/usr/bin/env python3
"""test_deploy — docker-compose.yml, deploy/Dockerfile and deploy/k8s/ checked
without a Docker engine (none runs here): the compose file through
`docker-compose config` (Debian's docker-compose), the image against the native
build the other tests run (same make target and build packages, runtime
packages that provide every library the native binaries link, commands that
name those binaries), and the Kubernetes manifests' structure.
Without docker-compose or python3-yaml it says so and fails only when
QT_REQUIRE_TEST_TOOLS=1 (CI; deploy/install-deps.sh --test-tools installs them).
Prints "ok"/"not ok" per check and "test_deploy: N passed, M failed"."""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import sys

BUILD = os.environ.get("QT_BUILD") or "build"
PORTS = {"trading-engine": 8081, "ml-threshold": 8082, "rl-decision": 8083, "trade-executor": 8084, "policy-store": 8085}
REPLICATED = ("rl-decision", "ml-threshold", "trade-executor")  # replicas share the symbol partitions by lease
results = []


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("ok" if cond else "not ok") + " test_deploy: " + name)
    if not cond and detail:
        print("  " + str(detail))


def finish():
    passed = sum(results)
    print("test_deploy: %d passed, %d failed" % (passed, len(results) - passed))
    sys.exit(0 if passed == len(results) else 1)


def compose_checks(yaml):
    r = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config"], capture_output=True, text=True,
                       env=dict(os.environ, QT_API_TOKEN="x"))
    check("docker-compose config accepts the file", r.returncode == 0, r.stderr.strip())
    if r.returncode:
        return
    c = yaml.safe_load(r.stdout)
    svcs = c.get("services", {})
    env = {k: v for k, v in os.environ.items() if k != "QT_API_TOKEN"}
    with tempfile.NamedTemporaryFile("w", suffix=".env") as empty:  # not a developer's own .env
        r0 = subprocess.run(["docker-compose", "--env-file", empty.name, "-f", "docker-compose.yml", "config"],
                            capture_output=True, text=True, env=env)
    check("docker-compose refuses to start without QT_API_TOKEN, saying how to make one (else it is stuck in SHADOW)",
          r0.returncode != 0 and "QT_API_TOKEN" in r0.stderr and "openssl rand" in r0.stderr, r0.stderr.strip()[:300])
    check("compose has redis, the five services, the second replicas of rl-decision, ml-threshold and trade-executor, "
          "and Prometheus and Grafana",
          set(svcs) == set(PORTS) | {"redis", "prometheus", "grafana"} | {n + "-replica" for n in REPLICATED}, sorted(svcs))
    for name in ("prometheus", "grafana"):
        s = svcs.get(name, {})
        check(name + ": only in the profile monitoring, published on 127.0.0.1", s.get("profiles") == ["monitoring"]
              and all(str(p).startswith("127.0.0.1:") or (isinstance(p, dict) and p.get("host_ip") == "127.0.0.1")
                      for p in s.get("ports", [])), s)
        for v in s.get("volumes", []):
            src = v.get("source") if isinstance(v, dict) else str(v).split(":")[0]
            if src and src.startswith("/"):
                check(name + ": mounts " + os.path.relpath(src) + ", which exists", os.path.exists(src))
    for name in REPLICATED:  # partitions by lease: the second replica is the first one without a published port
        a, b = svcs.get(name, {}), svcs.get(name + "-replica", {})
        check(name + "-replica: the same command and environment, no published port",
              a.get("command") == b.get("command") and a.get("environment") == b.get("environment") and not b.get("ports"),
              b)
    redis = svcs.get("redis", {})
    check("redis runs with AOF", "--appendonly" in redis.get("command", []) and "yes" in redis.get("command", []),
          redis.get("command"))
    cmd = redis.get("command", [])
    check("redis refuses values over 16 MB (proto-max-bulk-len, as QT_MAX_READ_BYTES)",
          "--proto-max-bulk-len" in cmd and cmd[cmd.index("--proto-max-bulk-len") + 1] == "16mb", cmd)
    check("redis has a healthcheck", "redis-cli" in " ".join(redis.get("healthcheck", {}).get("test", [])))
    for name, port in PORTS.items():
        s = svcs.get(name, {})
        env = s.get("environment", {})
        cmd = s.get("command", [])
        check(name + ": command is bin/" + name + ", a binary of the native build",
              cmd == ["bin/" + name] and os.access(os.path.join(BUILD, "bin", name), os.X_OK), cmd)
        check(name + ": port %d from QT_HTTP_PORT, published on 127.0.0.1" % port,
              str(env.get("QT_HTTP_PORT")) == str(port) and any(str(p).startswith("127.0.0.1:%d:%d" % (port, port))
                                                                 for p in s.get("ports", [])), s.get("ports"))
        check(name + ": healthcheck on /health", "http://127.0.0.1:%d/health" % port in " ".join(s.get("healthcheck", {}).get("test", [])))
        check(name + ": waits for a healthy redis", s.get("depends_on", {}).get("redis", {}).get("condition") == "service_healthy")
        check(name + ": configured by environment", env.get("REDIS_URL") == "redis://redis:6379/0" and env.get("QT_HTTP_BIND") == "0.0.0.0")
        check(name + ": the image built from deploy/Dockerfile", s.get("image") == "quantum-trader:latest")
    built = [s for s in svcs.values() if "build" in s]
    check("one service builds the image from deploy/Dockerfile",
          len(built) == 1 and built[0]["build"].get("dockerfile") == "deploy/Dockerfile")


def apt_line(stage):
    m = re.search(r"apt-get install[^\n]*?((?:\\\n|[^\n])*)", stage)
    return set(re.findall(r"[a-z0-9][a-z0-9.+-]+", m.group(0))) if m else set()


def needed_packages(binary):
    """Debian packages that provide the shared libraries binary links directly."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout)
    paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", subprocess.run(["ldd", binary], capture_output=True, text=True).stdout, re.M))
    pkgs = {}
    for so in needed:
        p = paths.get(so)
        for cand in (p, "/usr" + p if p else None):
            r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True) if cand else None
            if r and r.returncode == 0:
                pkgs[so] = r.stdout.split(":")[0]
                break
        else:
            pkgs[so] = None
    return pkgs


def dockerfile_checks():
    text = open("deploy/Dockerfile").read()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    check("Dockerfile: two stages on Debian 12", len(stages) == 2 and all(s.startswith("debian:bookworm") for s in stages))
    if len(stages) != 2:
        return
    build, runtime = stages
    check("Dockerfile: builds with the same `make all` as CI", re.search(r"RUN .*make [^\n]*WERROR=1 all", build))
    native = open("deploy/install-deps.sh").read()
    pkgs = set(re.search(r'PKGS="([^"]*)"', native, re.S).group(1).replace("\\\n", " ").split())
    missing = (pkgs - {"curl"}) - apt_line(build)
    check("Dockerfile: the build stage installs what deploy/install-deps.sh installs", not missing, missing)
    check("Dockerfile: the runtime stage holds the binaries and the models",
          "COPY --from=build /src/build/bin/" in runtime and "COPY --from=build /src/models/" in runtime)
    have = apt_line(runtime)
    for name in PORTS:
        need = needed_packages(os.path.join(BUILD, "bin", name))
        # The image is built without SANITIZE: a sanitizer build's runtimes are not shipped.
        lacking = {so: p for so, p in need.items()
                   if p != "libc6" and p not in have and not re.match(r"lib(a|ub|t|l)san\d", p or "")}
        check("Dockerfile: the runtime stage provides every library bin/%s links" % name, need and not lacking, lacking)
    check("Dockerfile: runs unprivileged", re.search(r"^USER \d+", runtime, re.M))
    check("the default model paths exist where bin/ runs (WORKDIR)",
          os.path.exists("models/ppo-default.bin") and all(os.path.exists(p) for p in glob.glob("models/ml/*.bin"))
          and len(glob.glob("models/ml/*.bin")) == 4)


def k8s_checks(yaml):
    docs = []
    for f in sorted(glob.glob("deploy/k8s/*.yaml")):
        try:
            docs += [(f, d) for d in yaml.safe_load_all(open(f)) if d]
        except yaml.YAMLError as e:
            check(f + " parses", False, e)
    kinds = {}
    for f, d in docs:
        kinds.setdefault(d["kind"], {})[d["metadata"]["name"] if "metadata" in d else f] = d
    kust = next(iter(kinds.get("Kustomization", {}).values()), {})
    listed = set(kust.get("resources", []))
    files = {os.path.basename(f) for f in glob.glob("deploy/k8s/*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    check("k8s: kustomization lists every manifest but the Secret's example", listed == files, (listed, files))
    applied = [d for f, d in docs if os.path.basename(f) in listed]
    check("k8s: `kubectl apply -k` applies no Secret (placeholders would overwrite the real one at every apply)",
          not any(d.get("kind") == "Secret" for d in applied))
    check("k8s: an images stanza for quantum-trader (kustomize edit set image)",
          any(i.get("name") == "quantum-trader" and i.get("newTag") for i in kust.get("images", [])), kust.get("images"))
    cm = kinds.get("ConfigMap", {}).get("qt-config", {}).get("data", {})
    check("k8s: REDIS_URL (it may hold a password) is not in the ConfigMap", "REDIS_URL" not in cm)
    check("k8s: the dashboard's service URLs and CORS origins set for a port-forward",
          all(cm.get(v, "").startswith("http://127.0.0.1:") for v in
              ("QT_ML_THRESHOLD_URL", "QT_RL_DECISION_URL", "QT_TRADE_EXECUTOR_URL", "QT_POLICY_STORE_URL"))
          and "http://127.0.0.1:8081" in cm.get("QT_CORS_ORIGINS", ""), cm)
    sec = kinds.get("Secret", {}).get("qt-secrets", {}).get("stringData", {})
    check("k8s: the Secret's example has REDIS_URL, the token and the exchange keys",
          {"REDIS_URL", "QT_API_TOKEN", "QT_BINANCE_API_KEY", "QT_BINANCE_API_SECRET"} <= set(sec))
    for name, port in PORTS.items():
        d = kinds.get("Deployment", {}).get(name)
        check("k8s: a Deployment for " + name, d is not None)
        if not d:
            continue
        c = d["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in c.get("env", [])}
        check(name + ": replicas set", isinstance(d["spec"].get("replicas"), int) and d["spec"]["replicas"] >= 1)
        check(name + ": command bin/" + name, c.get("command") == ["bin/" + name])
        check(name + ": port %d" % port, env.get("QT_HTTP_PORT", {}).get("value") == str(port)
              and c["ports"][0]["containerPort"] == port)
        check(name + ": readiness on /ready, liveness on /health",
              c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/ready"
              and c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/health")
        check(name + ": configuration from qt-config", {"configMapRef": {"name": "qt-config"}} in c.get("envFrom", []))
        check(name + ": the API token from the Secret",
              env.get("QT_API_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "qt-secrets")
        check(name + ": REDIS_URL from the Secret",
              env.get("REDIS_URL", {}).get("valueFrom", {}).get("secretKeyRef", {}) == {"name": "qt-secrets", "key": "REDIS_URL"})
        check("k8s: a Service for " + name, name in kinds.get("Service", {}))
    ex = kinds.get("Deployment", {}).get("trade-executor")
    if ex:
        env = {e["name"]: e for e in ex["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        check("trade-executor: exchange keys from the Secret", all(
            env.get(k, {}).get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "qt-secrets"
            for k in ("QT_BINANCE_API_KEY", "QT_BINANCE_API_SECRET")))
    for name in REPLICATED:
        d = kinds.get("Deployment", {}).get(name, {}).get("spec", {})
        check(name + " runs two replicas sharing the partitions by lease", d.get("replicas") == 2, d.get("replicas"))
    for name in ("trading-engine", "policy-store"):  # one active instance, one standby (lease.h)
        d = kinds.get("Deployment", {}).get(name, {}).get("spec", {})
        check(name + " runs an active and a standby replica, recreated (a rolling update waits on the standby)",
              d.get("replicas") == 2 and d.get("strategy", {}).get("type") == "Recreate")


def monitoring_checks(yaml):
    """deploy/prometheus and deploy/grafana: promtool's checks, the dashboard's shape. (That the expressions
    name metrics the services export, and that a real Prometheus scrapes them, is test_monitoring's.)"""
    if not shutil.which("promtool"):
        print("# promtool is missing (sh deploy/install-deps.sh --test-tools)")
        check("promtool is installed", os.environ.get("QT_REQUIRE_TEST_TOOLS") != "1")
    else:
        for what, f in (("config", "deploy/prometheus/prometheus.yml"), ("rules", "deploy/prometheus/alerts.yml")):
            r = subprocess.run(["promtool", "check", what, f], capture_output=True, text=True)
            check("promtool check %s %s" % (what, f), r.returncode == 0, (r.stdout + r.stderr).strip()[-400:])
    rules = [r for g in yaml.safe_load(open("deploy/prometheus/alerts.yml"))["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    check("alerts: a service not ready, a breaker open, DLQ growing, lag growing, no bars, daily drawdown past the limit",
          {"QtServiceNotReady", "QtBreakerOpen", "QtDeadLettersGrowing", "QtGroupLagGrowing", "QtNoBars",
           "QtDailyDrawdownPastLimit"} <= names, sorted(names))
    cfg = yaml.safe_load(open("deploy/prometheus/prometheus.yml"))
    targets = {t for sc in cfg["scrape_configs"] for st in sc["static_configs"] for t in st["targets"]}
    check("prometheus scrapes the five services and the replicas on their ports",
          {"%s:%d" % (n, p) for n, p in PORTS.items()} | {"%s-replica:%d" % (n, PORTS[n]) for n in REPLICATED} == targets,
          sorted(targets))
    dash = json.load(open("deploy/grafana/dashboards/quantum-trader.json"))
    ds = yaml.safe_load(open("deploy/grafana/provisioning/datasources/prometheus.yml"))["datasources"][0]
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    check("grafana: the dashboard's panels query the provisioned Prometheus",
          len(exprs) >= 10 and all(t["datasource"]["uid"] == ds["uid"] for p in dash["panels"] for t in p["targets"]))


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is None or not shutil.which("docker-compose"):
        print("# docker-compose or python3-yaml is missing (sh deploy/install-deps.sh --test-tools)")
        check("the deployment tools are installed", os.environ.get("QT_REQUIRE_TEST_TOOLS") != "1")
        finish()
    compose_checks(yaml)
    dockerfile_checks()
    k8s_checks(yaml)
    monitoring_checks(yaml)
    finish()


main()
