#!/usr/bin/env python3
"""Writes scenarios.jsonl: the attack and look-alike scenarios of `tests/k8s_eval.rs`.

Each scenario is written from a public description of an attack on Kubernetes (the reference is
in `source`) or of the benign thing closest to it, as raw API-server audit events (what
kube-apiserver's log or webhook backend emits), some of them wrapped the way EKS (CloudWatch
Logs), AKS (Azure diagnostics) and GKE (Cloud Audit Logs) deliver them. The Rust test decodes them
with the same decoders the server uses. Nothing here was tuned against the rules: a scenario is
what the technique or the benign activity looks like on the wire.

One line per scenario:
  {"id", "label": "attack"|"lookalike"|"attempt", "technique", "source", "what",
   "shape": "native"|"eks"|"aks"|"gke", "lines": [<body or record text per event>]}
Run: python3 gen.py > scenarios.jsonl
"""
import json
import itertools

ATTACKER = "dev-intern@example.com"
STOLEN = "system:serviceaccount:web:frontend"
_ids = itertools.count(1)
_clock = itertools.count(0)

PLURAL_GROUP = {
    "pods": ("", "v1"), "secrets": ("", "v1"), "configmaps": ("", "v1"), "services": ("", "v1"),
    "serviceaccounts": ("", "v1"), "namespaces": ("", "v1"), "nodes": ("", "v1"), "events": ("", "v1"),
    "deployments": ("apps", "v1"), "daemonsets": ("apps", "v1"), "statefulsets": ("apps", "v1"),
    "cronjobs": ("batch", "v1"), "jobs": ("batch", "v1"),
    "clusterroles": ("rbac.authorization.k8s.io", "v1"), "roles": ("rbac.authorization.k8s.io", "v1"),
    "clusterrolebindings": ("rbac.authorization.k8s.io", "v1"),
    "rolebindings": ("rbac.authorization.k8s.io", "v1"),
    "certificatesigningrequests": ("certificates.k8s.io", "v1"),
    "ingresses": ("networking.k8s.io", "v1"),
    "mutatingwebhookconfigurations": ("admissionregistration.k8s.io", "v1"),
    "validatingwebhookconfigurations": ("admissionregistration.k8s.io", "v1"),
    "selfsubjectrulesreviews": ("authorization.k8s.io", "v1"),
}


KUBECTL = "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819"


def default_user_agent(user):
    """What the client in front of the API server sends (client-go: `<binary>/<version> (os/arch)
    kubernetes/<commit>`). People and attackers holding a stolen token use kubectl (Microsoft's
    threat matrix: "Access container service account"); workloads and controllers their own binary."""
    if user == STOLEN or not user.startswith("system:"):
        return KUBECTL
    if user.startswith("system:node:"):
        return "kubelet/v1.29.2 (linux/amd64) kubernetes/4b8e819"
    if user.startswith("system:serviceaccount:"):
        return f"{user.rsplit(':', 1)[1]}/v1.29.2 (linux/amd64) kubernetes/4b8e819"
    return f"{user.split(':', 1)[1]}/v1.29.2 (linux/amd64) kubernetes/4b8e819"


def audit(user, verb, resource, ns=None, name=None, sub=None, code=200, stage="ResponseComplete",
          body=None, groups=None, ip="10.20.3.17", ua=None,
          query="", decision=None, aid=None):
    group, version = PLURAL_GROUP.get(resource, ("", "v1"))
    if ua is None:
        ua = default_user_agent(user)
    base = "/api/v1" if group == "" else f"/apis/{group}/{version}"
    uri = base + (f"/namespaces/{ns}" if ns else "") + f"/{resource}"
    if name and verb not in ("create",) or (name and sub):
        uri += f"/{name}"
    if sub:
        uri += f"/{sub}"
    if query:
        uri += "?" + query
    t = next(_clock)
    ts = f"2024-06-03T10:{t // 60 % 60:02d}:{t % 60:02d}.000000Z"
    if decision is None:
        decision = "forbid" if code == 403 and body is None else "allow"
    if groups is None:
        if user.startswith("system:serviceaccount:"):
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{user.split(':')[2]}", "system:authenticated"]
        elif user in ("system:anonymous",):
            groups = ["system:unauthenticated"]
        else:
            groups = ["system:authenticated"]
    ev = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": aid or f"00000000-0000-4000-8000-{next(_ids):012d}",
        "stage": stage, "requestURI": uri, "verb": verb,
        "user": {"username": user, "groups": groups},
        "sourceIPs": [ip], "userAgent": ua,
        "objectRef": {k: v for k, v in {"resource": resource, "namespace": ns, "name": name,
                                         "apiGroup": group or None, "apiVersion": version,
                                         "subresource": sub}.items() if v},
        "requestReceivedTimestamp": ts, "stageTimestamp": ts,
        "annotations": {"authorization.k8s.io/decision": decision, "authorization.k8s.io/reason": ""},
    }
    if stage != "RequestReceived":
        ev["responseStatus"] = {"metadata": {}, "code": code}
    if body is not None:
        ev["requestObject"] = body
    return ev


def nonresource(user, path, **kw):
    ev = audit(user, "get", "nonresource", **kw)
    ev["requestURI"] = path
    del ev["objectRef"]
    return ev


def eks(ev):
    return json.dumps({"timestamp": 1717408800000, "message": json.dumps(ev),
                       "logStream": "kube-apiserver-audit-3c4b9f0e8d7a6b5c", "logGroup": "/aws/eks/prod-eu/cluster"})


def aks(ev):
    return json.dumps({"operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
                       "category": "kube-audit", "properties": {"log": json.dumps(ev), "stream": "stdout",
                                                                 "pod": "kube-apiserver-6d8c7b9f5-q2r8t"},
                       "resourceId": "/SUBSCRIPTIONS/0B5E6F0A-2C4D-4E8F-9A1B-3C5D7E9F1A2B/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/AKS-PROD",
                       "time": "2024-06-03T10:00:00.000Z"})


GRPC = {200: 0, 201: 0, 101: 0, 403: 7, 401: 16, 404: 5, 409: 6}


def gke(ev):
    ref = ev["objectRef"]
    group = ref.get("apiGroup") or "core"
    method = f"io.k8s.{'core' if group == 'core' else group.split('.')[0]}.{ref['apiVersion']}.{ref['resource']}"
    if ref.get("subresource"):
        method += "." + ref["subresource"]
    method += "." + ev["verb"]
    rn = f"{group}/{ref['apiVersion']}" + (f"/namespaces/{ref['namespace']}" if ref.get("namespace") else "") + f"/{ref['resource']}"
    if ref.get("name"):
        rn += f"/{ref['name']}"
    if ref.get("subresource"):
        rn += f"/{ref['subresource']}"
    code = ev["responseStatus"]["code"]
    proto = {"@type": "type.googleapis.com/google.cloud.audit.AuditLog", "serviceName": "k8s.io",
             "methodName": method, "resourceName": rn,
             "authenticationInfo": {"principalEmail": ev["user"]["username"]},
             "requestMetadata": {"callerIp": ev["sourceIPs"][0], "callerSuppliedUserAgent": ev["userAgent"]},
             "status": {} if GRPC.get(code, 0) == 0 else {"code": GRPC[code]}}
    if "requestObject" in ev:
        proto["request"] = ev["requestObject"]
    return json.dumps({"protoPayload": proto, "insertId": ev["auditID"][-12:],
                       "resource": {"type": "k8s_cluster", "labels": {"cluster_name": "prod-eu", "location": "europe-west1", "project_id": "acme-prod"}},
                       "timestamp": ev["requestReceivedTimestamp"], "operation": {"id": ev["auditID"], "producer": "k8s.io", "first": True, "last": True},
                       "labels": {"authorization.k8s.io/decision": ev["annotations"]["authorization.k8s.io/decision"]}})


SCENARIOS = []
PREFIX = {"attack": "atk", "lookalike": "lka", "attempt": "try"}


def scenario(label, technique, source, what, events, shape="native"):
    wrap = {"native": json.dumps, "eks": eks, "aks": aks, "gke": gke}[shape]
    SCENARIOS.append({"id": f"{PREFIX[label]}-{len(SCENARIOS) + 1:03d}", "label": label, "technique": technique,
                      "source": source, "what": what, "shape": shape, "lines": [wrap(e) for e in events]})


def attack(*a, **k):
    scenario("attack", *a, **k)


def lookalike(*a, **k):
    scenario("lookalike", *a, **k)


def attempt(*a, **k):
    scenario("attempt", *a, **k)


MTX = "https://microsoft.github.io/Threat-Matrix-for-Kubernetes/techniques/"


def pod(spec, name="x", kind="Pod"):
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def workload(kind, spec):
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}}, "spec": spec}}}


C = {"name": "c", "image": "alpine:3.19", "command": ["sleep", "infinity"]}

# --- Execution (T1609 / T1610) -------------------------------------------------------------
for shape in ("native", "eks", "aks", "gke"):
    attack("T1609", MTX + "Exec%20into%20container/", f"kubectl exec into a pod ({shape})",
           [audit(ATTACKER, "create", "pods", "payments", "api-7d9f8", "exec", code=101, stage="ResponseStarted",
                  query="command=sh&container=api&stdin=true&stdout=true&tty=true")], shape)
attack("T1609", MTX + "Exec%20into%20container/", "exec logged at both stages (ResponseStarted then ResponseComplete) alerts once",
       [audit(ATTACKER, "create", "pods", "payments", "api-7d9f8", "exec", code=101, stage="ResponseStarted", query="command=bash", aid="00000000-0000-4000-8000-0000000e0e0e"),
        audit(ATTACKER, "create", "pods", "payments", "api-7d9f8", "exec", code=101, stage="ResponseComplete", query="command=bash", aid="00000000-0000-4000-8000-0000000e0e0e")])
attack("T1609", "https://kubernetes.io/docs/reference/kubectl/generated/kubectl_attach/", "kubectl attach",
       [audit(ATTACKER, "create", "pods", "payments", "api-7d9f8", "attach", code=101, stage="ResponseStarted")])
attack("T1609", "https://kubernetes.io/docs/tasks/debug/debug-application/debug-running-pod/#ephemeral-container", "kubectl debug adds an ephemeral container",
       [audit(ATTACKER, "patch", "pods", "payments", "api-7d9f8", "ephemeralcontainers",
              body={"spec": {"ephemeralContainers": [{"name": "debugger", "image": "busybox", "stdin": True, "tty": True}]}})])
attack("T1610", MTX + "New%20container/", "privileged pod with the host filesystem (BadPods everything-allowed)",
       [audit(ATTACKER, "create", "pods", "default", body=pod({"hostPID": True, "hostNetwork": True, "hostIPC": True,
              "containers": [dict(C, securityContext={"privileged": True}, volumeMounts=[{"name": "h", "mountPath": "/host"}])],
              "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "everything-allowed"), code=201)])
for shape in ("eks", "gke"):
    attack("T1611", "https://github.com/BishopFox/badPods", f"privileged pod ({shape})",
           [audit(ATTACKER, "create", "pods", "default", body=pod({"containers": [dict(C, securityContext={"privileged": True})]}, "priv"), code=201)], shape)
attack("T1611", "https://github.com/BishopFox/badPods", "hostPID pod (nsenter into the node)",
       [audit(ATTACKER, "create", "pods", "default", body=pod({"hostPID": True, "containers": [C]}, "hostpid"), code=201)])
attack("T1611", "https://github.com/BishopFox/badPods", "hostPath / mounted by a deployment template",
       [audit(ATTACKER, "create", "deployments", "default", body=workload("Deployment", {"containers": [dict(C, volumeMounts=[{"name": "h", "mountPath": "/host"}])], "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}), code=201)])
attack("T1611", "https://kubernetes.io/docs/concepts/security/pod-security-standards/", "pod mounting the containerd socket",
       [audit(ATTACKER, "create", "pods", "default", body=pod({"containers": [dict(C, volumeMounts=[{"name": "s", "mountPath": "/run/containerd/containerd.sock"}])], "volumes": [{"name": "s", "hostPath": {"path": "/run/containerd/containerd.sock"}}]}, "sock"), code=201)])
attack("T1611", "https://man7.org/linux/man-pages/man7/capabilities.7.html", "container with SYS_ADMIN",
       [audit(ATTACKER, "create", "pods", "default", body=pod({"containers": [dict(C, securityContext={"capabilities": {"add": ["SYS_ADMIN"]}})]}, "capsys"), code=201)])
attack("T1610", MTX + "Backdoor%20container/", "DaemonSet created by a person (miner on every node)",
       [audit(ATTACKER, "create", "daemonsets", "default", body=workload("DaemonSet", {"containers": [dict(C, image="xmrig/xmrig")]}), code=201)])
attack("T1610", MTX + "Backdoor%20container/", "DaemonSet created by a person (EKS)",
       [audit("arn:aws:iam::111122223333:user/mallory", "create", "daemonsets", "kube-public", body=workload("DaemonSet", {"containers": [C]}), code=201)], "eks")
attack("T1036.005", "https://attack.mitre.org/techniques/T1036/005/", "pod created in kube-system by a person",
       [audit(ATTACKER, "create", "pods", "kube-system", body=pod({"containers": [C]}, "kube-proxy-x7"), code=201)])
attack("T1053.007", "https://attack.mitre.org/techniques/T1053/007/", "CronJob created by a person",
       [audit(ATTACKER, "create", "cronjobs", "default", body={"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cleanup"}, "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [C]}}}}}}, code=201)])

# --- Persistence / privilege escalation (T1098.006) ---------------------------------------------
attack("T1098.006", MTX + "Cluster-admin%20binding/", "ClusterRoleBinding to cluster-admin for a service account",
       [audit(ATTACKER, "create", "clusterrolebindings", body={"kind": "ClusterRoleBinding", "metadata": {"name": "backdoor"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}, "subjects": [{"kind": "ServiceAccount", "name": "frontend", "namespace": "web"}]}, code=201)])
attack("T1098.006", MTX + "Cluster-admin%20binding/", "ClusterRoleBinding to cluster-admin (GKE)",
       [audit(STOLEN, "create", "clusterrolebindings", name="ops-backdoor", body={"kind": "ClusterRoleBinding", "metadata": {"name": "ops-backdoor"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}, "subjects": [{"kind": "ServiceAccount", "name": "frontend", "namespace": "web"}]}, code=201)], "gke")
attack("T1078.001", "https://kubernetes.io/docs/reference/access-authn-authz/rbac/#discovery-roles", "binding granting system:anonymous a role",
       [audit(ATTACKER, "create", "clusterrolebindings", body={"kind": "ClusterRoleBinding", "metadata": {"name": "anon"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}, "subjects": [{"kind": "User", "name": "system:anonymous"}]}, code=201)])
attack("T1098.006", "https://kubernetes.io/docs/concepts/security/rbac-good-practices/", "ClusterRole with write on pods and secrets",
       [audit(ATTACKER, "create", "clusterroles", body={"kind": "ClusterRole", "metadata": {"name": "helper"}, "rules": [{"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get", "create", "delete"]}]}, code=201)])
attack("T1098.006", "https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping", "ClusterRole with escalate and bind",
       [audit(ATTACKER, "create", "clusterroles", body={"kind": "ClusterRole", "metadata": {"name": "rbac-helper"}, "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["escalate", "bind"]}]}, code=201)])
attack("T1098.006", "https://kubernetes.io/docs/reference/access-authn-authz/rbac/", "Role with wildcard verbs (AKS)",
       [audit(ATTACKER, "create", "roles", "web", body={"kind": "Role", "metadata": {"name": "all"}, "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}, code=201)], "aks")
attack("T1098.006", "https://kubernetes.io/docs/reference/access-authn-authz/rbac/#user-facing-roles", "built-in system:* ClusterRole widened",
       [audit(ATTACKER, "patch", "clusterroles", name="system:node", body={"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]}, code=200)])
attack("T1098", MTX + "Malicious%20admission%20controller/", "mutating webhook created by a person",
       [audit(ATTACKER, "create", "mutatingwebhookconfigurations", body={"kind": "MutatingWebhookConfiguration", "metadata": {"name": "inject"}, "webhooks": [{"name": "inject.evil.io", "clientConfig": {"url": "https://203.0.113.9/mutate"}}]}, code=201)])
attack("T1649", "https://kubernetes.io/docs/reference/access-authn-authz/certificate-signing-requests/#normal-user", "CSR for a client certificate created by a person",
       [audit(ATTACKER, "create", "certificatesigningrequests", body={"kind": "CertificateSigningRequest", "metadata": {"name": "admin-cert"}, "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"], "request": "LS0t"}}, code=201)])
attack("T1649", "https://kubernetes.io/docs/reference/access-authn-authz/certificate-signing-requests/#approval-rejection", "CSR approved by a person (kubectl certificate approve)",
       [audit(ATTACKER, "update", "certificatesigningrequests", name="admin-cert", sub="approval", code=200, body={"kind": "CertificateSigningRequest", "status": {"conditions": [{"type": "Approved", "status": "True"}]}})])
attack("T1649", "https://kubernetes.io/docs/reference/access-authn-authz/certificate-signing-requests/", "CSR created by a stolen service account (EKS)",
       [audit(STOLEN, "create", "certificatesigningrequests", body={"kind": "CertificateSigningRequest", "metadata": {"name": "x"}, "spec": {"signerName": "kubernetes.io/kube-apiserver-client"}}, code=201)], "eks")
attack("T1136", "https://attack.mitre.org/techniques/T1136/", "service account created in kube-system by a person",
       [audit(ATTACKER, "create", "serviceaccounts", "kube-system", body={"kind": "ServiceAccount", "metadata": {"name": "kube-dns-helper"}}, code=201)])

# --- Credential access (T1528, T1552.007) -------------------------------------------------------
attack("T1528", "https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-request-v1/", "stolen service account mints a token for another service account",
       [audit(STOLEN, "create", "serviceaccounts", "web", "deployer", "token", code=201, body={"kind": "TokenRequest", "spec": {"expirationSeconds": 86400}})])
attack("T1528", "https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-request-v1/", "person mints a token for the cluster's deployer (kubectl create token)",
       [audit(ATTACKER, "create", "serviceaccounts", "ci", "deployer", "token", code=201, body={"kind": "TokenRequest", "spec": {}})])
attack("T1528", "https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-request-v1/", "token minted for another service account (AKS)",
       [audit(STOLEN, "create", "serviceaccounts", "web", "admin-bot", "token", code=201, body={"kind": "TokenRequest", "spec": {}})], "aks")
attack("T1552.007", MTX + "List%20K8S%20secrets/", "secrets listed across all namespaces",
       [audit(STOLEN, "list", "secrets", code=200)])
attack("T1552.007", MTX + "List%20K8S%20secrets/", "secret read with a stolen token (GKE)",
       [audit(STOLEN, "get", "secrets", "payments", "db-credentials", code=200)], "gke")
attack("T1552.007", "https://aws.github.io/aws-eks-best-practices/security/docs/iam/", "aws-auth ConfigMap read by a workload token",
       [audit(STOLEN, "get", "configmaps", "kube-system", "aws-auth", code=200)], "eks")
attack("T1550.001", "https://attack.mitre.org/techniques/T1550/001/", "service-account token used from a public address",
       [audit(STOLEN, "list", "pods", "web", code=200, ip="198.51.100.23", ua="curl/8.5.0")])
attack("T1550.001", "https://attack.mitre.org/techniques/T1550/001/", "service-account token used with kubectl",
       [audit(STOLEN, "list", "pods", "web", code=200, ip="10.20.3.17")])
attack("T1078", "https://kubernetes.io/docs/reference/access-authn-authz/authentication/#user-impersonation", "request impersonating system:masters",
       [dict(audit(ATTACKER, "list", "secrets", "kube-system", code=200), impersonatedUser={"username": "admin", "groups": ["system:masters"]})])

# --- Initial access / discovery (T1078.001, T1613) ----------------------------------------------
for shape in ("native", "eks", "gke"):
    attack("T1078.001", "https://kubernetes.io/docs/reference/access-authn-authz/authentication/#anonymous-requests", f"anonymous request allowed ({shape})",
           [audit("system:anonymous", "list", "pods", code=200, ip="198.51.100.40", ua="python-requests/2.31")], shape)
attack("T1613", "https://github.com/inguardians/peirates", "burst of forbidden requests from one address (stolen token walking resources)",
       [audit(STOLEN, v, r, ns, code=403, ip="10.20.3.99") for ns in ("default", "kube-system", "payments", "monitoring", "ci")
        for v, r in (("list", "secrets"), ("list", "configmaps"), ("get", "nodes"), ("list", "serviceaccounts"))])
attack("T1613", "https://github.com/aquasecurity/kube-hunter", "burst of 401s from an unauthenticated scanner (EKS)",
       [audit("system:anonymous", "get", r, code=401, ip="203.0.113.77", ua="kube-hunter") for r in
        ("pods", "secrets", "nodes", "namespaces", "configmaps", "services", "deployments", "daemonsets",
         "events", "serviceaccounts", "roles", "clusterroles", "rolebindings", "clusterrolebindings", "jobs", "cronjobs")], "eks")
attack("T1613", "https://kubernetes.io/docs/reference/access-authn-authz/authorization/#checking-api-access", "permission enumeration by a service account (auth can-i --list)",
       [audit(STOLEN, "create", "selfsubjectrulesreviews", code=201, body={"kind": "SelfSubjectRulesReview", "spec": {"namespace": "kube-system"}})])

# --- Exposure (T1133) ---------------------------------------------------------------------------
attack("T1133", MTX + "Exposed%20sensitive%20interfaces/", "NodePort service exposing a backdoor",
       [audit(ATTACKER, "create", "services", "default", body={"kind": "Service", "metadata": {"name": "shell"}, "spec": {"type": "NodePort", "ports": [{"port": 4444, "nodePort": 31337}]}}, code=201)])
attack("T1133", MTX + "Exposed%20sensitive%20interfaces/", "internal dashboard switched to a LoadBalancer (GKE)",
       [audit(ATTACKER, "patch", "services", "monitoring", "grafana", body={"spec": {"type": "LoadBalancer"}}, code=200)], "gke")
attack("T1133", "https://kubernetes.io/docs/concepts/services-networking/ingress/#tls", "Ingress without TLS publishing an admin UI",
       [audit(ATTACKER, "create", "ingresses", "default", body={"kind": "Ingress", "metadata": {"name": "admin"}, "spec": {"rules": [{"host": "admin.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "admin", "port": {"number": 80}}}}]}}]}}, code=201)])

# --- Defense evasion ----------------------------------------------------------------------------
attack("T1070", "https://attack.mitre.org/techniques/T1070/", "events deleted in a namespace",
       [audit(ATTACKER, "deletecollection", "events", "payments", code=200)])
attack("T1562.001", MTX + "Delete%20K8S%20events/", "validating webhook (policy engine) deleted",
       [audit(ATTACKER, "delete", "validatingwebhookconfigurations", name="gatekeeper-validating-webhook-configuration", code=200)])

# ================================ benign look-alikes =============================================
OPS = {
    "prom": "system:serviceaccount:monitoring:prometheus-operator",
    "argo": "system:serviceaccount:argocd:argocd-application-controller",
    "certm": "system:serviceaccount:cert-manager:cert-manager",
    "nginx": "system:serviceaccount:ingress-nginx:ingress-nginx",
    "eso": "system:serviceaccount:external-secrets:external-secrets",
    "flux": "system:serviceaccount:flux-system:kustomize-controller",
    "velero": "system:serviceaccount:velero:velero",
}
lookalike("-", "operator", "prometheus-operator reads the secrets it renders into Prometheus config",
          [audit(OPS["prom"], "get", "secrets", "monitoring", "alertmanager-main", ua="PrometheusOperator/0.72")])
lookalike("-", "operator", "Argo CD lists secrets cluster-wide (cluster credentials)",
          [audit(OPS["argo"], "list", "secrets", code=200, ua="argocd-application-controller/v2.10")])
lookalike("-", "operator", "cert-manager watches secrets (EKS)",
          [audit(OPS["certm"], "watch", "secrets", code=200, ua="cert-manager-controller/v1.14")], "eks")
lookalike("-", "operator", "ingress-nginx reads TLS secrets (AKS)",
          [audit(OPS["nginx"], "get", "secrets", "web", "web-tls", code=200)], "aks")
lookalike("-", "operator", "external-secrets updates a secret it syncs",
          [audit(OPS["eso"], "get", "secrets", "payments", "db-credentials", code=200)])
lookalike("-", "operator", "Argo CD reads argocd-cm",
          [audit("system:serviceaccount:argocd:argocd-server", "get", "configmaps", "argocd", "argocd-cm", code=200)])
lookalike("-", "operator", "Flux applies a DaemonSet from git",
          [audit(OPS["flux"], "create", "daemonsets", "logging", body=workload("DaemonSet", {"containers": [C]}), code=201)])
lookalike("-", "operator", "Argo CD applies a webhook configuration",
          [audit(OPS["argo"], "create", "validatingwebhookconfigurations", body={"kind": "ValidatingWebhookConfiguration", "metadata": {"name": "kyverno"}}, code=201)])
lookalike("-", "operator", "Argo CD applies a ClusterRole with write verbs",
          [audit(OPS["argo"], "create", "clusterroles", body={"kind": "ClusterRole", "metadata": {"name": "app-operator"}, "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create", "update", "delete"]}]}, code=201)])
lookalike("-", "operator", "Velero lists secrets for a backup (GKE)",
          [audit(OPS["velero"], "list", "secrets", code=200)], "gke")
lookalike("-", "operator", "Argo CD requests a token for a managed cluster's service account",
          [audit(OPS["argo"], "create", "serviceaccounts", "argocd", "argocd-manager", "token", code=201, body={"kind": "TokenRequest", "spec": {}})])
lookalike("-", "controller", "kubelet requests a token for a pod's service account",
          [audit("system:node:ip-10-0-1-23.ec2.internal", "create", "serviceaccounts", "web", "frontend", "token", code=201, body={"kind": "TokenRequest"})], "eks")
lookalike("-", "controller", "kubelet creates its client CSR (TLS bootstrap)",
          [audit("system:bootstrap:abcdef", "create", "certificatesigningrequests", body={"kind": "CertificateSigningRequest", "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet"}}, code=201)])
lookalike("-", "controller", "node renews its serving certificate",
          [audit("system:node:worker-2", "create", "certificatesigningrequests", body={"kind": "CertificateSigningRequest", "spec": {"signerName": "kubernetes.io/kubelet-serving"}}, code=201)])
lookalike("-", "controller", "controller manager approves a kubelet CSR",
          [audit("system:serviceaccount:kube-system:certificate-controller", "update", "certificatesigningrequests", name="csr-8x2k", sub="approval", code=200)])
lookalike("-", "controller", "EKS control plane approves a node CSR",
          [audit("eks:certificate-controller", "update", "certificatesigningrequests", name="csr-9z", sub="approval", code=200)], "eks")
lookalike("-", "controller", "daemonset controller creates a DaemonSet's pods (no privilege)",
          [audit("system:serviceaccount:kube-system:daemon-set-controller", "create", "pods", "logging", body=pod({"containers": [C]}), code=201)])
lookalike("-", "controller", "kube-system addon manager creates a DaemonSet (AKS)",
          [audit("system:serviceaccount:kube-system:addon-manager", "create", "daemonsets", "kube-system", body=workload("DaemonSet", {"containers": [C]}), code=201)], "aks")
lookalike("-", "controller", "cloud controller updates a LoadBalancer's status",
          [audit("system:serviceaccount:kube-system:service-controller", "update", "services", "web", "web", "status", body={"kind": "Service", "spec": {"type": "LoadBalancer"}}, code=200)])
lookalike("-", "controller", "kubelets denied configmap watches (node authorizer)",
          [audit("system:node:worker-1", "watch", "configmaps", "monitoring", code=403, decision="forbid")] * 1
          + [audit("system:node:worker-1", "list", "configmaps", ns, code=403) for ns in ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p")])
lookalike("-", "controller", "kube-scheduler forbidden during start-up (GKE)",
          [audit("system:kube-scheduler", "list", "csinodes", code=403)], "gke")
lookalike("-", "near-miss", "ClusterIP service created by a person",
          [audit(ATTACKER, "create", "services", "default", body={"kind": "Service", "metadata": {"name": "web"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}, code=201)])
lookalike("-", "near-miss", "Ingress with TLS",
          [audit(ATTACKER, "create", "ingresses", "default", body={"kind": "Ingress", "metadata": {"name": "web"}, "spec": {"tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}], "rules": [{"host": "web.example.com"}]}}, code=201)])
lookalike("-", "near-miss", "Ingress change logged at Metadata level (no body)",
          [audit(ATTACKER, "update", "ingresses", "default", "web", code=200)])
lookalike("-", "near-miss", "read-only ClusterRole",
          [audit(ATTACKER, "create", "clusterroles", body={"kind": "ClusterRole", "metadata": {"name": "pod-reader"}, "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]}]}, code=201)])
lookalike("-", "near-miss", "ClusterRole with write on a custom resource only",
          [audit(ATTACKER, "create", "clusterroles", body={"kind": "ClusterRole", "metadata": {"name": "widgets-editor"}, "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["create", "update", "delete"]}]}, code=201)])
lookalike("-", "near-miss", "service account requests its own token",
          [audit("system:serviceaccount:web:vault-client", "create", "serviceaccounts", "web", "vault-client", "token", code=201, body={"kind": "TokenRequest", "spec": {"audiences": ["vault"]}})])
lookalike("-", "near-miss", "unprivileged pod with an explicit privileged: false",
          [audit(ATTACKER, "create", "pods", "default", body=pod({"containers": [dict(C, securityContext={"privileged": False, "allowPrivilegeEscalation": False})]}), code=201)])
lookalike("-", "near-miss", "hostPath of a non-sensitive directory by a deployment",
          [audit(ATTACKER, "create", "deployments", "default", body=workload("Deployment", {"containers": [C], "volumes": [{"name": "cache", "hostPath": {"path": "/var/cache/app"}}]}), code=201)])
lookalike("-", "near-miss", "anonymous health probe",
          [nonresource("system:anonymous", "/healthz", code=200, ip="10.0.0.2", ua="kube-probe/1.29")])
lookalike("-", "near-miss", "anonymous /version (EKS)",
          [nonresource("system:anonymous", "/version", code=200, ip="10.0.0.2")], "eks")
lookalike("-", "near-miss", "a few forbidden requests from one user (a typo, not a burst)",
          [audit(ATTACKER, "list", "pods", "kube-system", code=403, ip="10.20.3.50") for _ in range(4)])
lookalike("-", "denied", "anonymous request refused (403)",
          [audit("system:anonymous", "list", "pods", code=403, ip="198.51.100.41")])
lookalike("-", "dry-run", "privileged pod validated with --dry-run=server",
          [audit(ATTACKER, "create", "pods", "default", query="dryRun=All&fieldManager=kubectl-run", body=pod({"containers": [dict(C, securityContext={"privileged": True})]}), code=201)])
lookalike("-", "dry-run", "cluster-admin binding validated with --dry-run=server",
          [audit(ATTACKER, "create", "clusterrolebindings", query="dryRun=All", body={"kind": "ClusterRoleBinding", "metadata": {"name": "tmp"}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}, "subjects": [{"kind": "User", "name": "bob"}]}, code=201)])
lookalike("-", "dry-run", "NodePort service diffed with kubectl diff (dry run)",
          [audit(ATTACKER, "patch", "services", "default", "web", query="dryRun=All", body={"spec": {"type": "NodePort"}}, code=200)])
lookalike("-", "stage", "privileged pod at RequestReceived (outcome unknown), then refused by admission",
          [audit(ATTACKER, "create", "pods", "default", stage="RequestReceived", body=pod({"containers": [dict(C, securityContext={"privileged": True})]}), aid="00000000-0000-4000-8000-00000000a1a1"),
           audit("system:serviceaccount:kube-system:replicaset-controller", "create", "pods", "default", code=403, body=pod({"containers": [dict(C, securityContext={"privileged": True})]}), aid="00000000-0000-4000-8000-00000000a1a2")])
lookalike("-", "denied", "controller's privileged pod refused by Pod Security admission (EKS)",
          [audit("system:serviceaccount:kube-system:replicaset-controller", "create", "pods", "web", code=403, body=pod({"containers": [dict(C, securityContext={"privileged": True})]}))], "eks")
lookalike("-", "failed", "cluster-admin binding that already exists (409)",
          [audit(ATTACKER, "create", "clusterrolebindings", body={"kind": "ClusterRoleBinding", "metadata": {"name": "admins"}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}, "subjects": [{"kind": "Group", "name": "admins"}]}, code=409)])
lookalike("-", "failed", "DaemonSet create rejected as invalid (422)",
          [audit(ATTACKER, "create", "daemonsets", "default", body=workload("DaemonSet", {"containers": [C]}), code=422)])
lookalike("-", "near-miss", "person reads a ConfigMap that is not sensitive",
          [audit(ATTACKER, "get", "configmaps", "web", "web-config", code=200)])
lookalike("-", "near-miss", "person lists pods (kubectl get pods)",
          [audit(ATTACKER, "list", "pods", "web", code=200)])

# --- denied attempts: only the low 'attempt' rule may speak --------------------------------------
attempt("T1609", MTX + "Exec%20into%20container/", "exec into a pod denied by RBAC",
        [audit(STOLEN, "create", "pods", "payments", "api-7d9f8", "exec", code=403, query="command=sh")])
attempt("T1611", "https://kubernetes.io/docs/concepts/security/pod-security-admission/", "privileged pod refused by Pod Security admission",
        [audit(ATTACKER, "create", "pods", "default", code=403, body=pod({"containers": [dict(C, securityContext={"privileged": True})]}))])
attempt("T1098.006", MTX + "Cluster-admin%20binding/", "cluster-admin binding denied (GKE)",
        [audit(STOLEN, "create", "clusterrolebindings", name="x", body={"kind": "ClusterRoleBinding", "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}}, code=403)], "gke")
attempt("T1528", "https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-request-v1/", "token request for another service account denied",
        [audit(STOLEN, "create", "serviceaccounts", "web", "deployer", "token", code=403)])

if __name__ == "__main__":
    for s in SCENARIOS:
        print(json.dumps(s))
