"""Renders the chart in deploy/helm/magnum and checks what it renders (run by deploy/helm/test.sh).

- Rendering: Helm's own engine and install action. helm-python-sdk (PyPI) carries Helm v4's Go
  SDK built as a shared library; `Config.install(dry_run="client")` is the code path of
  `helm template` (client only, Chart.yaml's kubeVersion checked), `Chart.render` the engine
  alone (used for what an upgrade renders), `lint` is `helm lint --strict`.
- Schemas: every object against Kubernetes' OpenAPI schemas in strict mode (an unknown field
  fails) with kubernetes-validate (PyPI), for the oldest version Chart.yaml allows, 1.30 and the
  newest one the package carries.
- What no schema says: selectors against the pods they must select, probes on the processes'
  real health endpoints, volumes, modes of key files, the per-pod configuration each conductor
  ends up with, every magnum.conf key against deploy/magnum.conf.example, and the magnum binary's
  own check of each pod's configuration files.
- That the checks can fail: mutated objects and bad values must be refused.

Prints one line per check and `N passed, M failed` last; exits 1 on any failure.
"""

import argparse
import base64
import configparser
import copy
import functools
import os
import re
import subprocess
import sys
import tempfile

import helm_python as helm
import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHART = os.path.join(HERE, "magnum")
EXAMPLE = os.path.join(ROOT, "deploy", "magnum.conf.example")
NAMESPACE = "openstack"


def health_paths():
    """The health endpoints' paths as the code defines them (GET HEALTHCHECK_PATH: alive,
    GET READY_PATH: ready), and whether the API and the conductor both serve them."""
    wire = open(os.path.join(ROOT, "conductor", "proto", "src", "wire.rs")).read()
    paths = {}
    for const in ("HEALTHCHECK_PATH", "READY_PATH"):
        m = re.search(rf'pub const {const}: &str = "([^"]+)";', wire)
        if not m:
            sys.exit(f"conductor/proto/src/wire.rs defines no {const}: the probes' paths are unknown")
        paths[const] = m.group(1)
    problems = []
    for crate in ("api", "conductor"):
        text = ""
        for base, _, names in os.walk(os.path.join(ROOT, crate, "src")):
            text += "".join(open(os.path.join(base, n)).read() for n in names if n.endswith(".rs"))
        for const, path in paths.items():
            if const not in text and f'"{path}"' not in text:
                problems.append(f"{crate}/src serves no {const} ({path})")
    return paths["HEALTHCHECK_PATH"], paths["READY_PATH"], problems


LIVENESS, READINESS, SERVED = health_paths()

# The same schema files are read for every object: read each once.
kv_utils.schema_contents = functools.lru_cache(maxsize=None)(kv_utils.schema_contents)


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def check(self, name, problems):
        """`problems`: a list of strings, empty when the check holds."""
        if problems:
            self.failed.append(name)
            print(f"FAIL {name}")
            for p in problems[:20]:
                print(f"     {p}")
        else:
            self.passed += 1
            print(f"ok   {name}")


# --- rendering -------------------------------------------------------------------------------


def helm_template(values, release="magnum"):
    """What `helm template RELEASE CHART -n NAMESPACE -f values` prints, and the notes."""
    with helm.Config(storage_driver="memory", namespace=NAMESPACE,
                     kube_apiserver="https://127.0.0.1:1") as cfg:
        rel = cfg.install(CHART, release, values, dry_run="client", namespace=NAMESPACE)
    docs = [d for d in yaml.safe_load_all(rel["manifest"]) if d]
    return docs, rel.get("notes") or ""


def helm_render_upgrade(values, release="magnum"):
    """What an upgrade of an installed release renders (the engine alone, IsUpgrade)."""
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values, name=release, namespace=NAMESPACE, revision=2,
                           is_install=False, is_upgrade=True)
    return [d for path, text in sorted(out.items()) if path.endswith(".yaml")
            for d in yaml.safe_load_all(text) if d]


def merged_values(values):
    with helm.Chart.load(CHART) as chart:
        return chart.merge_values(values)


# --- small helpers ---------------------------------------------------------------------------


def one(docs, kind, component=None, headless=None):
    found = [d for d in docs if d["kind"] == kind
             and (component is None or d["metadata"]["labels"].get("component") == component)
             and (headless is None or (d["spec"].get("clusterIP") == "None") == headless)]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} ({component}, headless={headless}), got {len(found)}")
    return found[0]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def pod_labels(workload):
    return workload["spec"]["template"]["metadata"]["labels"]


def secret_files(secret):
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def parse_ini(text, name):
    cp = configparser.ConfigParser(interpolation=None, strict=True)
    cp.optionxform = str
    cp.read_string(text, source=name)
    return cp


def example_keys():
    keys, section = set(), None
    for line in open(EXAMPLE):
        m = re.match(r"^\[(\w+)\]$", line.strip())
        if m:
            section = m.group(1)
        m = re.match(r"^#(\w+) =", line)
        if m and section:
            keys.add((section, m.group(1)))
    return keys


def mounted_files(workload, docs):
    """The files a container sees from Secrets and projected volumes: path -> (secret, key, mode)."""
    spec = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    out = {}
    for mount in spec["containers"][0].get("volumeMounts", []):
        vol = volumes.get(mount["name"])
        if vol is None:
            continue
        sources = []
        if "secret" in vol:
            sources = [(vol["secret"], vol["secret"].get("defaultMode", 0o644))]
        elif "projected" in vol:
            dm = vol["projected"].get("defaultMode", 0o644)
            sources = [(s["secret"], dm) for s in vol["projected"]["sources"] if "secret" in s]
        for src, default_mode in sources:
            name = src.get("secretName") or src.get("name")
            items = src.get("items")
            if items is None:  # the whole Secret: only knowable for the chart's own
                sec = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == name]
                items = [{"key": k, "path": k} for k in (sec[0].get("data", {}) if sec else {})]
            for it in items:
                path = mount["mountPath"].rstrip("/") + "/" + it["path"]
                out[path] = (name, it["key"], it.get("mode", default_mode))
    return out


# --- checks of one rendering -----------------------------------------------------------------


def check_labels(docs, release_group):
    problems = []
    for d in docs:
        labels = d["metadata"].get("labels", {})
        where = f"{d['kind']}/{d['metadata']['name']}"
        if labels.get("application") != "magnum":
            problems.append(f"{where}: label application != magnum")
        if labels.get("release_group") != release_group:
            problems.append(f"{where}: label release_group != {release_group}")
        if "component" not in labels:
            problems.append(f"{where}: no component label")
        name = d["metadata"]["name"]
        limit = 52 if d["kind"] == "StatefulSet" else 63
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > limit:
            problems.append(f"{where}: not a DNS label of at most {limit} characters")
    return problems


def check_workload(w, component, tls):
    """Selector, security, command, probes, volumes of a Deployment or StatefulSet."""
    problems = []
    where = f"{w['kind']}/{w['metadata']['name']}"
    spec = w["spec"]
    pod = spec["template"]["spec"]
    if not selects(spec["selector"]["matchLabels"], pod_labels(w)):
        problems.append(f"{where}: selector does not select its own pod template")
    if pod_labels(w).get("component") != component:
        problems.append(f"{where}: pods are not component={component}")
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append(f"{where}: pod securityContext.runAsNonRoot is not true")
    if pod.get("terminationGracePeriodSeconds", 30) < 30:
        problems.append(f"{where}: terminationGracePeriodSeconds below 30")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: mounts a service account token it never uses")
    if pod.get("enableServiceLinks") is not False:
        problems.append(f"{where}: Service links would put *_PORT variables in the environment")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    used = set()
    for c in pod["containers"]:
        cw = f"{where} container {c['name']}"
        sc = c.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{cw}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{cw}: allowPrivilegeEscalation is not false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problems.append(f"{cw}: capabilities do not drop ALL")
        if sc.get("privileged"):
            problems.append(f"{cw}: privileged")
        # The image is FROM scratch: the binary and nothing else, no shell.
        if c.get("command") != ["/usr/bin/magnum"]:
            problems.append(f"{cw}: command is not [/usr/bin/magnum]")
        args = c.get("args", [])
        if not args or args[0] != component:
            problems.append(f"{cw}: first argument is not {component}")
        env = {e["name"] for e in c.get("env", [])}
        for a in args:
            for var in re.findall(r"\$\((\w+)\)", a):
                if var not in env:
                    problems.append(f"{cw}: argument {a!r} names $({var}), which is not in env "
                                    "(the kubelet would leave it as it is)")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        expect = {"livenessProbe": LIVENESS, "readinessProbe": READINESS,
                  "startupProbe": LIVENESS}
        for kind, path in expect.items():
            probe = c.get(kind)
            if probe is None:
                if kind != "startupProbe":
                    problems.append(f"{cw}: no {kind}")
                continue
            get = probe.get("httpGet")
            if get is None:
                problems.append(f"{cw}: {kind} is not an HTTP GET")
                continue
            if get["path"] != path:
                problems.append(f"{cw}: {kind} path {get['path']} is not {path}")
            if get["port"] not in ports and get["port"] not in ports.values():
                problems.append(f"{cw}: {kind} port {get['port']} is no container port")
            want = "HTTPS" if (component == "conductor" and tls) else "HTTP"
            if get.get("scheme", "HTTP") != want:
                problems.append(f"{cw}: {kind} scheme {get.get('scheme', 'HTTP')}, expected {want}")
        mounts = c.get("volumeMounts", [])
        paths = [m["mountPath"] for m in mounts]
        for m in mounts:
            used.add(m["name"])
            if m["name"] not in volumes and m["name"] not in claims:
                problems.append(f"{cw}: mounts {m['name']}, which is no volume")
            vol = volumes.get(m["name"], {})
            if ("secret" in vol or "projected" in vol) and not m.get("readOnly"):
                problems.append(f"{cw}: Secret volume {m['name']} is not mounted read-only")
            for other in paths:
                if other != m["mountPath"] and m["mountPath"].startswith(other.rstrip("/") + "/"):
                    problems.append(f"{cw}: {m['mountPath']} is inside the mount {other}")
    for name, v in volumes.items():
        if name not in used:
            problems.append(f"{where}: volume {name} is mounted nowhere")
        modes = []
        if "secret" in v:
            modes = [v["secret"].get("defaultMode", 0o644)] + \
                    [i.get("mode", 0) for i in v["secret"].get("items", [])]
        if "projected" in v:
            modes = [v["projected"].get("defaultMode", 0o644)]
        for mode in modes:
            if mode & 0o007:
                problems.append(f"{where}: volume {name} lets others read it (mode {mode:o})")
    for name in claims - used:
        problems.append(f"{where}: volumeClaimTemplate {name} is mounted nowhere")
    return problems


def check_services(docs, sts, api, discovery, client, api_svc):
    problems = []
    workloads = [sts, api]
    for svc in [discovery, client, api_svc]:
        where = f"Service/{svc['metadata']['name']}"
        sel = svc["spec"].get("selector", {})
        chosen = [w for w in workloads if selects(sel, pod_labels(w))]
        if len(chosen) != 1:
            problems.append(f"{where}: selects the pods of {len(chosen)} workloads, not one")
            continue
        ports = {p["name"]: p["containerPort"]
                 for c in chosen[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            t = p.get("targetPort", p["port"])
            if t not in ports and t not in ports.values():
                problems.append(f"{where}: targetPort {t} is no port of {chosen[0]['metadata']['name']}")
            elif isinstance(t, str) and ports[t] != p["port"]:
                problems.append(f"{where}: port {p['port']} forwards to {ports[t]}: callers use the "
                                "Service port, the configuration the container port")
    if not selects(discovery["spec"]["selector"], pod_labels(sts)):
        problems.append("the headless Service does not select the conductors")
    if discovery["spec"].get("clusterIP") != "None":
        problems.append("the discovery Service is not headless")
    if discovery["spec"].get("publishNotReadyAddresses") is not True:
        problems.append("the discovery Service publishes only ready pods: voters could not find "
                        "each other before there is a leader")
    if sts["spec"]["serviceName"] != discovery["metadata"]["name"]:
        problems.append("the StatefulSet's serviceName is not the headless Service")
    return problems


def check_pdbs(docs, sts, api):
    problems = []
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for_sts = [p for p in pdbs if selects(p["spec"]["selector"]["matchLabels"], pod_labels(sts))]
    if len(for_sts) != 1:
        problems.append(f"{len(for_sts)} PodDisruptionBudgets select the conductors, not one")
    else:
        pdb = for_sts[0]
        if pdb["spec"].get("maxUnavailable") != 1:
            problems.append(f"the conductors' budget allows {pdb['spec'].get('maxUnavailable')} down, not 1")
        if selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(api)):
            problems.append("the conductors' budget also counts API pods")
    api_pdb = [p for p in pdbs if selects(p["spec"]["selector"]["matchLabels"], pod_labels(api))]
    for p in api_pdb:
        if p["spec"].get("minAvailable", 0) >= api["spec"]["replicas"]:
            problems.append("the API's budget lets no API pod be evicted: node drains would hang")
    for p in pdbs:
        if not any(selects(p["spec"]["selector"]["matchLabels"], pod_labels(w)) for w in (sts, api)):
            problems.append(f"PodDisruptionBudget/{p['metadata']['name']} selects nothing")
    return problems


def config_files_of(container, pod_name):
    args = [a.replace("$(POD_NAME)", pod_name) for a in container["args"]]
    return [args[i + 1] for i, a in enumerate(args) if a == "--config-file"]


def effective(files, texts):
    """The files' keys, later files winning key by key (as magnum reads them)."""
    out = {}
    for path in files:
        cp = parse_ini(texts[path], path)
        for s in cp.sections():
            for k, v in cp.items(s):
                out[(s, k)] = v
    return out


def check_conductor_config(docs, values, sts, discovery, client, install):
    """What each conductor pod reads: its node id, peers, certificate, bootstrap, data dir."""
    problems = []
    c = sts["spec"]["template"]["spec"]["containers"][0]
    files = mounted_files(sts, docs)
    secrets = {d["metadata"]["name"]: secret_files(d) for d in docs if d["kind"] == "Secret"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    headless_ports = {p["name"]: p["port"] for p in discovery["spec"]["ports"]}
    if headless_ports.get("raft") != ports["raft"] or headless_ports.get("service") != ports["service"]:
        problems.append("the headless Service's ports are not the containers'")
    env = {e["name"]: e for e in c.get("env", [])}
    if env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        problems.append("POD_NAME is not the pod's name")
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    data_mount = mounts.get("data")
    if data_mount != "/var/lib/magnum/data":
        problems.append(f"the volume claim is mounted at {data_mount}, not /var/lib/magnum/data")
    if sts["spec"].get("podManagementPolicy") != "Parallel":
        problems.append("podManagementPolicy is not Parallel: pod 0 would wait for a readiness "
                        "that needs a leader, which needs the other pods")
    replicas = sts["spec"]["replicas"]
    voters = values["conductor"]["initial_voters"]
    tls = values["tls"]["internal"]["enabled"]
    name, ns = sts["metadata"]["name"], NAMESPACE
    domain = values["endpoints"]["cluster_domain_suffix"]

    def peer(ordinal):
        fqdn = f"{name}-{ordinal}.{discovery['metadata']['name']}.{ns}.svc.{domain}"
        return f"{ordinal + 1}={fqdn}:{ports['raft']}@{fqdn}:{ports['service']}"

    voter_peers = [peer(i) for i in range(voters)]
    texts_by_pod = {}
    for ordinal in range(replicas):
        pod = f"{name}-{ordinal}"
        node_id = ordinal + 1
        paths = config_files_of(c, pod)
        texts = {}
        for p in paths:
            if p not in files:
                problems.append(f"{pod}: --config-file {p} is in none of its volumes")
                continue
            secret, key, _ = files[p]
            if key not in secrets.get(secret, {}):
                problems.append(f"{pod}: {p} would be key {key} of Secret {secret}, which has none")
                continue
            texts[p] = secrets[secret][key]
        if len(texts) != len(paths):
            continue
        texts_by_pod[pod] = (paths, texts)
        conf = effective(paths, texts)
        get = conf.get
        if get(("conductor", "node_id")) != str(node_id):
            problems.append(f"{pod}: node_id {get(('conductor', 'node_id'))}, expected {node_id}")
        boot = get(("conductor", "bootstrap_if_new")) == "true"
        want_boot = node_id <= voters and (values["conductor"]["bootstrap_if_new"] == "always" or (
            values["conductor"]["bootstrap_if_new"] == "install" and install))
        if boot != want_boot:
            problems.append(f"{pod}: bootstrap_if_new is {boot}, expected {want_boot}")
        if get(("conductor", "bootstrap")):
            problems.append(f"{pod}: sets bootstrap, which bootstraps on every start")
        want_peers = voter_peers if node_id <= voters else voter_peers + [peer(ordinal)]
        if (get(("conductor", "peers")) or "").split(",") != want_peers:
            problems.append(f"{pod}: peers {get(('conductor', 'peers'))!r}, expected {','.join(want_peers)!r}")
        for key, port in (("raft_listen", ports["raft"]), ("service_listen", ports["service"])):
            if not (get(("conductor", key)) or "").endswith(f":{port}"):
                problems.append(f"{pod}: {key} {get(('conductor', key))} is not on container port {port}")
        data_dir = get(("conductor", "data_dir")) or ""
        if not data_dir.startswith(data_mount + "/"):
            problems.append(f"{pod}: data_dir {data_dir} is not a directory inside the volume "
                            f"{data_mount} (the conductor makes it 0700, which needs its owner)")
        key_file = get(("certificates", "cert_key_file"))
        if key_file not in files:
            problems.append(f"{pod}: cert_key_file {key_file} is in none of its volumes")
        elif files[key_file][2] & 0o077:
            problems.append(f"{pod}: the sealing key is mode {files[key_file][2]:o}")
        mode = get(("internal", "mode"))
        tls_dir = get(("internal", "tls_dir"))
        if tls:
            if mode not in ("strict", "permissive"):
                problems.append(f"{pod}: [internal] mode {mode} with TLS on")
            want_dir = f"{mounts.get('internal-tls')}/conductor-{node_id}"
            if tls_dir != want_dir:
                problems.append(f"{pod}: tls_dir {tls_dir}, expected {want_dir}")
            for f in ("ca.crt", "node.crt", "node.key"):
                got = files.get(f"{tls_dir}/{f}")
                want = (f"{values['secrets']['tls']['internal']}-conductor-{node_id}", f)
                if got is None or got[:2] != want:
                    problems.append(f"{pod}: {tls_dir}/{f} is not key {want[1]} of Secret {want[0]}")
                elif f == "node.key" and got[2] != 0o400:
                    problems.append(f"{pod}: {tls_dir}/node.key has mode {got[2]:o}, not 400")
        else:
            if mode != "plain" or tls_dir:
                problems.append(f"{pod}: TLS off but [internal] mode={mode} tls_dir={tls_dir}")
    if tls:
        vols = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
        for src in vols["internal-tls"]["projected"]["sources"]:
            n = int(src["secret"]["name"].rsplit("-", 1)[1])
            if (n <= voters) == bool(src["secret"].get("optional")):
                problems.append(f"conductor {n}'s certificate Secret is "
                                f"{'optional' if n <= voters else 'required'}: only the joiners' may be missing")
    # Whole-Secret mounts hold every pod's file: one per pod and no more.
    etc = [n for n, f in secrets.items() if "magnum.conf" in f]
    if etc:
        per_pod = sorted(k for k in secrets[etc[0]] if k.startswith(f"{name}-"))
        if per_pod != sorted(f"{name}-{i}.conf" for i in range(replicas)):
            problems.append(f"per-pod files {per_pod} are not one per pod")
    return problems, texts_by_pod


def check_api_config(docs, values, api, client):
    problems = []
    c = api["spec"]["template"]["spec"]["containers"][0]
    files = mounted_files(api, docs)
    secrets = {d["metadata"]["name"]: secret_files(d) for d in docs if d["kind"] == "Secret"}
    paths = config_files_of(c, "unused")
    texts = {}
    for p in paths:
        if p not in files or files[p][1] not in secrets.get(files[p][0], {}):
            problems.append(f"api: --config-file {p} is no file of its volumes")
        else:
            texts[p] = secrets[files[p][0]][files[p][1]]
    if problems:
        return problems, None
    conf = effective(paths, texts)
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["m-api"]
    if conf.get(("api", "port")) != str(port):
        problems.append(f"api: [api] port {conf.get(('api', 'port'))} is not the container port {port}")
    domain = values["endpoints"]["cluster_domain_suffix"]
    client_port = client["spec"]["ports"][0]["port"]
    want = f"{client['metadata']['name']}.{NAMESPACE}.svc.{domain}:{client_port}"
    if conf.get(("api", "conductors")) != want:
        problems.append(f"api: [api] conductors {conf.get(('api', 'conductors'))}, expected {want}")
    ident = values["endpoints"]["identity"]
    host = (ident["host_fqdn_override"].get("default")
            or f"{ident['hosts']['internal']}.{ident.get('namespace') or NAMESPACE}.svc.{domain}")
    want = f"{ident['scheme']['default']}://{host}:{ident['port']['api']['internal']}{ident['path']['default']}"
    if conf.get(("keystone_authtoken", "auth_url")) != want:
        problems.append(f"api: auth_url {conf.get(('keystone_authtoken', 'auth_url'))}, expected {want}")
    if not conf.get(("keystone_authtoken", "password")):
        problems.append("api: no service password")
    tls_dir = conf.get(("internal", "tls_dir"))
    if values["tls"]["internal"]["enabled"]:
        for f in ("ca.crt", "node.crt", "node.key"):
            got = files.get(f"{tls_dir}/{f}")
            if got is None or got[:2] != (f"{values['secrets']['tls']['internal']}-api", f):
                problems.append(f"api: {tls_dir}/{f} is not from the API's certificate Secret")
    elif tls_dir or conf.get(("internal", "mode")) != "plain":
        problems.append("api: TLS off but a tls_dir or a mode other than plain")
    return problems, (paths, texts)


def check_conf_keys(docs):
    known = example_keys()
    problems = []
    for d in docs:
        if d["kind"] != "Secret":
            continue
        for name, text in secret_files(d).items():
            if not name.endswith(".conf"):
                continue
            cp = parse_ini(text, name)
            for s in cp.sections():
                for k, _ in cp.items(s):
                    if (s, k) not in known:
                        problems.append(f"{name}: [{s}] {k} is not in deploy/magnum.conf.example")
                    if re.search(r"\de\+\d", cp.get(s, k)):
                        problems.append(f"{name}: [{s}] {k} = {cp.get(s, k)}: a number in exponent form")
    return problems


def run_binary(magnum, role, paths, texts):
    """`magnum ROLE --config-file ...` checks the files (unknown keys, types, required keys,
    values clap parses) before anything starts; `--check-config` where the binary has it, else
    `--help`, which clap handles after every value before it is parsed."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [magnum, role]
        for i, p in enumerate(paths):
            local = os.path.join(tmp, f"{i}-{os.path.basename(p)}")
            with open(local, "w") as f:
                f.write(texts[p])
            args += ["--config-file", local]
        args.append(CHECK_FLAG[role])
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
        return [] if r.returncode == 0 else [f"{role} {paths}: exit {r.returncode}: {r.stderr.strip()}"]


CHECK_FLAG = {}


def detect_check_flag(magnum):
    for role in ("api", "conductor"):
        h = subprocess.run([magnum, role, "--help"], capture_output=True, text=True, timeout=30).stdout
        CHECK_FLAG[role] = "--check-config" if "--check-config" in h else "--help"


def validate_all(docs, versions):
    problems = []
    for v in versions:
        for d in docs:
            try:
                kubernetes_validate.validate(d, v, strict=True)
            except kubernetes_validate.ValidationError as e:
                problems.append(f"{v} {d['kind']}/{d['metadata']['name']}: "
                                f"{'.'.join(map(str, e.path))}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                problems.append(f"{v} {d['kind']}: {e.message}")
    return problems


# --- the run ---------------------------------------------------------------------------------

VARIANTS = [
    # name, values, release
    ("default", None, "magnum"),
    ("5 conductors, 3 initial voters", {"pod": {"replicas": {"conductor": 5}}}, "magnum"),
    ("5 initial voters", {"pod": {"replicas": {"conductor": 5}}, "conductor": {"initial_voters": 5}},
     "magnum"),
    ("internal TLS off", {"tls": {"internal": {"enabled": False}}}, "magnum"),
    ("release prod, everything else changed",
     {"release_group": "cloud", "pod": {"resources": {"enabled": True}},
      "network": {"api": {"node_port": {"enabled": True}}},
      "volume": {"conductor": {"class_name": "fast"}},
      "conductor": {"bootstrap_if_new": "always"},
      "tls": {"internal": {"mode": "permissive"}},
      "endpoints": {"cluster_domain_suffix": "example.internal",
                    "identity": {"host_fqdn_override": {"default": "keystone.example.org"}}},
      "conf": {"magnum": {"conductor": {"stalled_after_secs": 7200000, "shards": 32},
                          "keystone_authtoken": {"password": "s3cret"}}}},
     "prod"),
]

BAD_VALUES = [
    ({"pod": {"replicas": {"conductor": 2}}}, "below conductor.initial_voters"),
    ({"conductor": {"initial_voters": 4}, "pod": {"replicas": {"conductor": 5}}}, "must be odd"),
    ({"conductor": {"bootstrap_if_new": "yes"}}, "bootstrap_if_new must be"),
    ({"tls": {"internal": {"mode": "plain"}}}, "tls.internal.mode"),
    ({"conf": {"magnum": {"conductor": {"node_id": 1}}}}, "differs per conductor"),
    ({"conf": {"magnum": {"internal": {"tls_dir": "/x"}}}}, "comes from tls.internal"),
    ({"tls": {"internal": {"conductor_certificates": 1}}}, "conductor_certificates"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--magnum", required=True, help="the magnum binary")
    args = ap.parse_args()
    detect_check_flag(args.magnum)
    oldest = re.search(r'kubeVersion:\s*">=\s*(\d+\.\d+)', open(os.path.join(CHART, "Chart.yaml")).read())
    versions = [oldest.group(1), "1.30", kv_utils.latest_version()]
    print(f"Helm SDK {helm.helm_sdk_version()} (helm-python-sdk {helm.__version__}); "
          f"kubernetes-validate {kubernetes_validate.__version__}: Kubernetes {', '.join(versions)}, strict; "
          f"magnum's own check: {CHECK_FLAG['conductor']}")
    r = Report()
    r.check(f"the probes' paths {LIVENESS} and {READINESS} are served by the API and the conductor",
            SERVED)
    lint = helm.lint(CHART, None, strict=True, kube_version=f"v{versions[0]}.0")
    r.check("helm lint --strict", [f"{m['path']}: {m['error']}" for m in lint["messages"]
                                    if m["severity"] >= 2] + lint["errors"])
    first = None
    for label, values, release in VARIANTS:
        docs, notes = helm_template(values, release)
        first = first or docs
        vals = merged_values(values)
        tls = vals["tls"]["internal"]["enabled"]
        kinds = sorted(d["kind"] for d in docs)
        r.check(f"[{label}] objects rendered", [] if kinds == sorted(
            ["Deployment", "PodDisruptionBudget", "PodDisruptionBudget", "Secret", "Service", "Service",
             "Service", "StatefulSet"]) else [f"kinds {kinds}"])
        r.check(f"[{label}] Kubernetes schemas, strict ({len(docs)} objects x {len(versions)} versions)",
                validate_all(docs, versions))
        sts = one(docs, "StatefulSet")
        api = one(docs, "Deployment")
        discovery = one(docs, "Service", "conductor", headless=True)
        client = one(docs, "Service", "conductor", headless=False)
        api_svc = one(docs, "Service", "api")
        r.check(f"[{label}] names and labels", check_labels(docs, vals.get("release_group") or release))
        r.check(f"[{label}] conductor pods: selector, security, command, probes, volumes",
                check_workload(sts, "conductor", tls))
        r.check(f"[{label}] API pods: selector, security, command, probes, volumes",
                check_workload(api, "api", tls))
        r.check(f"[{label}] Services select the right pods on the right ports",
                check_services(docs, sts, api, discovery, client, api_svc))
        r.check(f"[{label}] PodDisruptionBudgets", check_pdbs(docs, sts, api))
        problems, per_pod = check_conductor_config(docs, vals, sts, discovery, client, install=True)
        r.check(f"[{label}] each conductor pod's configuration ({sts['spec']['replicas']} pods)", problems)
        api_problems, api_files = check_api_config(docs, vals, api, client)
        r.check(f"[{label}] the API pods' configuration", api_problems)
        r.check(f"[{label}] magnum.conf keys all in deploy/magnum.conf.example", check_conf_keys(docs))
        runs = [p for paths, texts in per_pod.values() for p in run_binary(args.magnum, "conductor", paths, texts)]
        if api_files:
            runs += run_binary(args.magnum, "api", *api_files)
        r.check(f"[{label}] magnum accepts every pod's configuration files", runs)
        # An upgrade drops bootstrap_if_new (bootstrap=install) and changes nothing else that
        # would restart a pod.
        up = helm_render_upgrade(values, release)
        up_sts = one(up, "StatefulSet")
        p2, _ = check_conductor_config(up, vals, up_sts, one(up, "Service", "conductor", headless=True),
                                       one(up, "Service", "conductor", headless=False), install=False)
        def strip(ds):
            return sorted((d for d in ds if d["kind"] != "Secret"),
                          key=lambda d: (d["kind"], d["metadata"]["name"]))
        if strip(up) != strip(docs):
            p2.append("an upgrade with the same values changes a workload or a Service")
        r.check(f"[{label}] what an upgrade renders (no bootstrap, no restart)", p2)
        if label == "default":
            default_sts = sts
        if label == "5 conductors, 3 initial voters":
            r.check(f"[{label}] scaling up from 3 changes no pod template (no restarts while joining)",
                    [] if sts["spec"]["template"] == default_sts["spec"]["template"]
                    else ["the conductors' pod template differs from the 3-conductor one"])
            want = [f"magnum manage conductor add {i}" for i in (4, 5)]
            r.check(f"[{label}] NOTES name the joiners' add commands",
                    [w for w in want if w not in notes])

    # The checks can fail: broken copies of good objects must be refused.
    docs = first
    sts = one(docs, "StatefulSet")
    api = one(docs, "Deployment")
    mutations = []
    m = copy.deepcopy(sts)
    m["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = LIVENESS
    mutations.append(("unknown field in a probe", m))
    m = copy.deepcopy(sts)
    m["spec"]["replicas"] = "three"
    mutations.append(("replicas as a string", m))
    m = copy.deepcopy(one(docs, "PodDisruptionBudget", "conductor"))
    m["spec"]["maxUnavailabe"] = 1
    mutations.append(("misspelt PodDisruptionBudget field", m))
    m = copy.deepcopy(api)
    m["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "m-api"
    mutations.append(("a port number as a name", m))
    for what, obj in mutations:
        r.check(f"[negative] the schemas refuse: {what}", [] if validate_all([obj], versions[-1:])
                else ["validated, but must not"])
    discovery = one(docs, "Service", "conductor", headless=True)
    client = one(docs, "Service", "conductor", headless=False)
    api_svc = one(docs, "Service", "api")
    semantic = []
    m = copy.deepcopy(sts)
    m["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/health"
    semantic.append(("a probe on no real endpoint", lambda: check_workload(m, "conductor", True)))
    m2 = copy.deepcopy(docs)
    one(m2, "PodDisruptionBudget", "conductor")["spec"]["selector"]["matchLabels"]["component"] = "api"
    semantic.append(("a budget selecting the wrong pods",
                     lambda: check_pdbs(m2, one(m2, "StatefulSet"), one(m2, "Deployment"))))
    m3 = copy.deepcopy(discovery)
    del m3["spec"]["publishNotReadyAddresses"]
    semantic.append(("a discovery Service hiding unready pods",
                     lambda: check_services(docs, sts, api, m3, client, api_svc)))
    m4 = copy.deepcopy(sts)
    m4["spec"]["template"]["spec"]["containers"][0]["volumeMounts"].append(
        {"name": "nowhere", "mountPath": "/x"})
    semantic.append(("a mount of no volume", lambda: check_workload(m4, "conductor", True)))
    m5 = copy.deepcopy(docs)
    sec = one(m5, "Secret")
    conf = secret_files(sec)["magnum.conf"] + "\n[raft]\nno_such_key = 1\n"
    sec["data"]["magnum.conf"] = base64.b64encode(conf.encode()).decode()
    semantic.append(("a magnum.conf key magnum does not have", lambda: check_conf_keys(m5)))
    semantic.append(("the binary itself on that key", lambda: run_binary(
        args.magnum, "api", ["/etc/magnum/magnum.conf"], {"/etc/magnum/magnum.conf": conf})))
    for what, run in semantic:
        r.check(f"[negative] the invariants catch: {what}", [] if run() else ["not caught"])
    for values, message in BAD_VALUES:
        try:
            helm_template(values)
            problems = ["rendered, but must not"]
        except helm.HelmError as e:
            problems = [] if message in str(e) else [f"refused for another reason: {e}"]
        r.check(f"[negative] the chart refuses {values}", problems)

    print(f"helm chart: {r.passed} passed, {len(r.failed)} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
