#!/usr/bin/python3
"""Checks deploy/kubernetes/kshield-backup-cronjob.yaml without a Kubernetes API server.

`kubectl create --dry-run=client` needs a server for discovery, so this loads the manifest with
PyYAML and checks the fields a working backup job needs: a valid schedule, control-plane
placement, the admin socket path of kshield-kms.yaml, the recipient ConfigMap, a writable
output directory, a locked-down security context, and a shell script that parses.
Exit 77 (skipped) without PyYAML.
"""
import os
import re
import subprocess
import sys

try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml is not installed")
    sys.exit(77)

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def main(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    jobs = [d for d in docs if d.get("kind") == "CronJob"]
    check(len(jobs) == 1, "exactly one CronJob")
    cj = jobs[0]
    check(cj.get("apiVersion") == "batch/v1", "apiVersion batch/v1")
    check(cj["metadata"].get("namespace") == "kube-system", "namespace kube-system")
    spec = cj["spec"]
    fields = spec["schedule"].split()
    check(len(fields) == 5, "five-field cron schedule")
    check(all(re.fullmatch(r"[0-9*/,\-]+", x) for x in fields), "schedule fields")
    check(spec.get("concurrencyPolicy") == "Forbid", "no overlapping runs")
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    check(pod.get("restartPolicy") in ("OnFailure", "Never"), "job restartPolicy")
    check(pod.get("automountServiceAccountToken") is False, "no service account token")
    check("node-role.kubernetes.io/control-plane" in pod.get("nodeSelector", {}),
          "runs on a control-plane node")
    tol_keys = {t.get("key") for t in pod.get("tolerations", [])}
    check("node-role.kubernetes.io/control-plane" in tol_keys, "tolerates the control-plane taint")
    check(pod.get("securityContext", {}).get("seccompProfile", {}).get("type") == "RuntimeDefault",
          "seccomp RuntimeDefault")

    containers = pod["containers"]
    check(len(containers) == 1, "one container")
    c = containers[0]
    sc = c.get("securityContext", {})
    check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    check(sc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], "drop all capabilities")
    check(not sc.get("capabilities", {}).get("add"), "adds no capability")
    check(sc.get("privileged") in (None, False), "not privileged")

    cmd = c["command"]
    check(cmd[:2] == ["/bin/sh", "-c"], "shell script")
    script = cmd[2]
    r = subprocess.run(["/bin/sh", "-n", "-c", script], capture_output=True, text=True)
    check(r.returncode == 0, "script parses: " + r.stderr)
    check("kshieldctl" in script and " backup " in script, "runs kshieldctl backup")
    m = re.search(r"--recipient (\S+)", script)
    check(m is not None, "--recipient")
    recipient = m.group(1) if m else ""
    check("--out" in script and "$(date" in script, "date-stamped --out")
    m = re.search(r"--admin-socket (\S+)", script)
    check(m is not None, "--admin-socket")
    admin_socket = m.group(1) if m else ""

    # The admin socket is where kshield-kms.yaml puts it.
    kms_path = os.path.join(os.path.dirname(path), "kshield-kms.yaml")
    with open(kms_path) as f:
        kms = yaml.safe_load(f)
    kms_args = kms["spec"]["containers"][0]["command"]
    check("--admin-socket=" + admin_socket in kms_args,
          "admin socket matches kshield-kms.yaml (%s)" % admin_socket)

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for m in c["volumeMounts"]:
        check(m["name"] in volumes, "volume %s is defined" % m["name"])

    def volume_for(p):
        best = None
        for mp, m in mounts.items():
            if p == mp or p.startswith(mp.rstrip("/") + "/"):
                if best is None or len(mp) > len(best):
                    best = mp
        return volumes.get(mounts[best]["name"]) if best else None

    sock_vol = volume_for(admin_socket)
    check(sock_vol is not None and sock_vol.get("hostPath", {}).get("path") == "/var/run/kshield",
          "admin socket dir is the host's /var/run/kshield")
    rec_vol = volume_for(recipient)
    check(rec_vol is not None and "configMap" in rec_vol, "recipient key from a ConfigMap")
    if rec_vol is not None and "configMap" in rec_vol:
        items = rec_vol["configMap"].get("items", [])
        check(any(os.path.join("/etc/kshield-backup", i["path"]) == recipient for i in items),
              "ConfigMap item is the --recipient file")
    out_vol = volume_for("/backup/x")
    check(out_vol is not None and ("hostPath" in out_vol or "persistentVolumeClaim" in out_vol),
          "output on a hostPath or PVC")
    check(not mounts.get("/backup", {}).get("readOnly", False), "output dir is writable")
    check(mounts.get("/etc/kshield-backup", {}).get("readOnly") is True, "recipient mount read-only")

    if failures:
        for f in failures:
            print("FAIL:", f)
        return 1
    print("ok: %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
