#!/usr/bin/env python3
"""Builds crates/console/assets/attack/containers.json from MITRE ATT&CK's STIX data.

Usage: scripts/attack-containers.py <checkout of github.com/mitre/cti> > crates/console/assets/attack/containers.json

Keeps the Enterprise tactics (in matrix order) and the techniques and sub-techniques whose
x_mitre_platforms include "Containers" (neither revoked nor deprecated): id, name, tactics.
"""
import json, pathlib, sys

root = pathlib.Path(sys.argv[1]) / "enterprise-attack"
def objects(kind):
    for path in sorted((root / kind).glob("*.json")):
        for obj in json.loads(path.read_text())["objects"]:
            if obj.get("type") == kind:
                yield obj

def ext_id(obj):
    return next(r["external_id"] for r in obj["external_references"] if r.get("source_name") == "mitre-attack")

matrix = next(objects("x-mitre-matrix"))
tactics = {t["id"]: t for t in objects("x-mitre-tactic")}
version = matrix.get("x_mitre_attack_spec_version", "")
techniques = []
for t in objects("attack-pattern"):
    if t.get("revoked") or t.get("x_mitre_deprecated") or "Containers" not in t.get("x_mitre_platforms", []):
        continue
    techniques.append({
        "id": ext_id(t),
        "name": t["name"],
        "tactics": [p["phase_name"] for p in t.get("kill_chain_phases", []) if p["kill_chain_name"] == "mitre-attack"],
    })
techniques.sort(key=lambda t: [int(p) if p.isdigit() else p for p in t["id"][1:].split(".")])
out = {
    "source": "MITRE ATT&CK Enterprise STIX data (github.com/mitre/cti), techniques whose platforms include Containers",
    "attack_version": sys.argv[2] if len(sys.argv) > 2 else "",
    "tactics": [{"id": ext_id(tactics[r]), "shortname": tactics[r]["x_mitre_shortname"], "name": tactics[r]["name"]}
                for r in matrix["tactic_refs"]],
    "techniques": techniques,
}
json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
print()
