#!/usr/bin/env python3
"""Loads an NDJSON corpus into DuckDB and chDB and measures them the way `crowsnest bench
peers` measures crowsnest: load time, size on disk against the raw file, count by namespace,
and a free-text needle. Prints one JSON object per engine, one a line.

    python3 scripts/peers.py --corpus FILE --needle WORD --workdir DIR [--runs 5]

DuckDB: `CREATE TABLE ... AS SELECT * FROM read_json_auto(...)` (typed columns inferred from
the whole file); the needle has no equivalent over typed columns, so it is not measured.
chDB (ClickHouse): each raw line as a ZSTD(3) String with a token bloom filter index, the
namespace a materialized column (coalesced from the container-log, Fluent Bit and audit paths);
the needle is `hasToken(raw, needle)`.

An engine whose package is missing is reported as `{"engine": ..., "missing": "pip install ..."}`.
Needs the venv of scripts/setup-ecosystem.sh (`.venv-test/bin/python`).
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import time


def dir_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def timed(runs, fn):
    times = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1e3)
    return result, statistics.median(times)


def duckdb_peer(corpus, needle, workdir, runs):
    try:
        import duckdb
    except ImportError:
        return {"engine": "DuckDB", "missing": "pip install duckdb (scripts/setup-ecosystem.sh installs it into .venv-test)"}
    path = os.path.join(workdir, "peer.duckdb")
    for leftover in (path, path + ".wal"):
        if os.path.exists(leftover):
            os.remove(leftover)
    con = duckdb.connect(path)
    started = time.perf_counter()
    con.execute(
        "CREATE TABLE events AS SELECT * FROM read_json_auto(?, format='newline_delimited', "
        "union_by_name=true, sample_size=-1, maximum_object_size=67108864, ignore_errors=true)",
        [corpus],
    )
    con.execute("CHECKPOINT")
    load = time.perf_counter() - started
    rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
    candidates = ["kubernetes.namespace", "kubernetes.namespace_name", '"objectRef".namespace']
    usable = []
    for expr in candidates:
        try:
            con.execute(f"SELECT {expr} FROM events LIMIT 0")
            usable.append(f"CAST({expr} AS VARCHAR)")
        except Exception:  # noqa: BLE001 - a path this corpus does not have
            pass
    namespace = f"coalesce({', '.join(usable)})" if usable else "NULL"
    groups, by_ns_ms = timed(
        runs, lambda: con.execute(f"SELECT {namespace} AS ns, count(*) FROM events GROUP BY ns").fetchall()
    )
    con.close()
    return {
        "engine": "DuckDB",
        "how": "CREATE TABLE from NDJSON (read_json_auto)",
        "rows": rows,
        "load_s": load,
        "bytes": dir_bytes(path),
        "count_by_namespace_ms": by_ns_ms,
        "namespaces": len(groups),
        "needle_ms": None,
        "needle_hits": None,
    }


def chdb_peer(corpus, needle, workdir, runs):
    try:
        from chdb import session as chs
    except ImportError:
        return {"engine": "chDB", "missing": "pip install chdb (scripts/setup-ecosystem.sh installs it into .venv-test)"}
    path = os.path.join(workdir, "peer.chdb")
    shutil.rmtree(path, ignore_errors=True)
    sess = chs.Session(path)
    sess.query("CREATE DATABASE IF NOT EXISTS peer")
    sess.query(
        "CREATE TABLE peer.events (raw String CODEC(ZSTD(3)), "
        "ns String MATERIALIZED coalesce(nullIf(JSONExtractString(raw, 'kubernetes', 'namespace'), ''), "
        "nullIf(JSONExtractString(raw, 'kubernetes', 'namespace_name'), ''), JSONExtractString(raw, 'objectRef', 'namespace')), "
        "INDEX tok raw TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 1) "
        "ENGINE = MergeTree ORDER BY tuple()"
    )
    started = time.perf_counter()
    quoted = corpus.replace("'", "\\'")
    sess.query(f"INSERT INTO peer.events (raw) SELECT line FROM file('{quoted}', 'LineAsString')")
    sess.query("OPTIMIZE TABLE peer.events FINAL")
    load = time.perf_counter() - started
    rows = int(str(sess.query("SELECT count() FROM peer.events", "CSV")).strip())
    size = int(
        str(
            sess.query(
                "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'peer' AND table = 'events' AND active",
                "CSV",
            )
        ).strip()
    )
    groups, by_ns_ms = timed(
        runs, lambda: str(sess.query("SELECT ns, count() FROM peer.events GROUP BY ns", "CSV"))
    )
    word = needle.replace("'", "")
    hits, needle_ms = timed(
        runs, lambda: str(sess.query(f"SELECT count() FROM peer.events WHERE hasToken(raw, '{word}')", "CSV"))
    )
    sess.close()
    return {
        "engine": "chDB",
        "how": "raw line ZSTD(3) + token bloom-filter index, namespace materialized",
        "rows": rows,
        "load_s": load,
        "bytes": size,
        "count_by_namespace_ms": by_ns_ms,
        "namespaces": len([g for g in groups.splitlines() if g.strip()]),
        "needle_ms": needle_ms,
        "needle_hits": int(hits.strip() or 0),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--needle", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engines", default="duckdb,chdb")
    args = parser.parse_args()
    corpus = os.path.abspath(args.corpus)
    os.makedirs(args.workdir, exist_ok=True)
    raw = os.path.getsize(corpus)
    for name in args.engines.split(","):
        peer = {"duckdb": duckdb_peer, "chdb": chdb_peer}.get(name.strip())
        if peer is None:
            print(json.dumps({"engine": name, "error": "unknown engine (duckdb, chdb)"}), flush=True)
            continue
        try:
            result = peer(corpus, args.needle, args.workdir, max(args.runs, 1))
        except Exception as error:  # noqa: BLE001 - reported, the other engine still runs
            result = {"engine": name, "error": f"{type(error).__name__}: {error}"}
        result["raw_bytes"] = raw
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
