"""End-to-end ingest with the integrity chain on and off: a real `crowsnest server` (release
build), `crowsnest ingest` of a fixed corpus, the clock stopped when every event is searchable;
the server's CPU seconds from /proc and the chain's records per kind. Alternates on/off runs.

    crowsnest bench --events 300000 --corpus-out /tmp/corpus.ndjson
    python3 benches/integrity-on-off.py target/release/crowsnest /tmp/corpus.ndjson 2

Data directories go under /tmp/crowsnest-integrity-bench (removed after each run)."""
import json, os, shutil, socket, subprocess, sys, time, urllib.request

B = sys.argv[1]
CORPUS = sys.argv[2]
RUNS = int(sys.argv[3])
N = sum(1 for _ in open(CORPUS))
TICK = os.sysconf("SC_CLK_TCK")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK

def search_total(url, token):
    body = json.dumps({"query": "* AND NOT event.kind:alert AND NOT event.dataset:crowsnest.audit AND NOT event.dataset:crowsnest.verify", "limit": 0}).encode()
    req = urllib.request.Request(url + "/api/v1/search", body, {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=60))["total"]

def run(chain):
    d = f"/tmp/crowsnest-integrity-bench/data-{chain}"
    shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
    cfg = os.path.join(d, "..", f"cfg-{chain}.toml")
    open(cfg, "w").write(f"[integrity]\nenabled = {'true' if chain == 'on' else 'false'}\n")
    port = free_port(); url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([B, "server", "--config", cfg, "--data-dir", d, "--listen", f"127.0.0.1:{port}", "--log", "warn"],
                              stdout=subprocess.DEVNULL, stderr=open(d + ".log", "w"))
    try:
        for _ in range(600):
            if os.path.exists(d + "/admin.token"):
                try:
                    urllib.request.urlopen(url + "/api/v1/openapi.json", timeout=2); break
                except Exception: pass
            time.sleep(0.1)
        token = open(d + "/admin.token").read().strip()
        cpu0 = cpu(server.pid); t0 = time.time()
        subprocess.run([B, "ingest", "--server", url, "--token", token, "--log", "warn", CORPUS], check=True, stdout=subprocess.DEVNULL)
        acked = time.time() - t0
        while True:
            total = search_total(url, token)
            if total >= N: break
            time.sleep(0.2)
        searchable = time.time() - t0
        cpus = cpu(server.pid) - cpu0
        chain_file = d + "/integrity/chain.jsonl"
        seals = {}
        if os.path.exists(chain_file):
            for line in open(chain_file):
                kind = json.loads(line)["kind"]
                seals[kind] = seals.get(kind, 0) + 1
        return dict(chain=chain, acked_s=round(acked, 1), searchable_s=round(searchable, 1), events_per_s=round(N / searchable),
                    server_cpu_s=round(cpus, 1), cpu_us_per_event=round(cpus / N * 1e6, 1), chain_records=seals, total=total)
    finally:
        server.terminate(); server.wait(timeout=120)
        shutil.rmtree(d, ignore_errors=True)

print(f"corpus {N} events, {os.path.getsize(CORPUS)/1e6:.1f} MB; load {os.getloadavg()}", flush=True)
for i in range(RUNS):
    for chain in (["on", "off"] if i % 2 == 0 else ["off", "on"]):
        r = run(chain); r["load1"] = round(os.getloadavg()[0], 1)
        print(json.dumps(r), flush=True)
