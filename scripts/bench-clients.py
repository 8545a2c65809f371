#!/usr/bin/env python3
"""Drives one real client against a running crowsnest server, for `crowsnest bench protocols --clients`.

Run with the venv of scripts/setup-ecosystem.sh:

    .venv-test/bin/python scripts/bench-clients.py --client es --url http://127.0.0.1:8470 \
        --token TOKEN --corpus events.ndjson [--connections 4] [--batch 1000]

Clients (one per run, so each gets a fresh server and its own CPU figures):

  es       official `elasticsearch` client, helpers.parallel_bulk (create actions, `--batch`
           documents per request, `--connections` threads), against URL/es
  otlp     OpenTelemetry SDK: Python logging -> LoggingHandler -> BatchLogRecordProcessor
           (batches of `--batch`) -> OTLPLogExporter (OTLP/HTTP protobuf) to URL/v1/logs
  fluent   `fluent-logger` FluentSender (forward protocol, Message mode, one emit per
           event) from `--connections` threads to --forward-port
  rsyslog  rsyslogd with imfile reading the corpus and omfwd forwarding over TCP,
           octet-counted RFC 5424, to --syslog-tcp-port

Protocol with the caller, on stdout/stdin: the script prepares everything that is not sending
(reading and parsing the corpus, importing, connecting), prints `ready`, waits for a `go` line
on stdin, sends, and prints one JSON line {"client", "sent", "send_seconds"}. The caller
measures from `go` until every event is searchable in the server. For rsyslog, the script
then waits for stdin to close before stopping rsyslogd (it forwards after the script returns).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time


def handshake():
    print("ready", flush=True)
    line = sys.stdin.readline()
    if line.strip() != "go":
        sys.exit("expected `go` on stdin, got %r" % line)


def done(client, sent, started):
    print(json.dumps({"client": client, "sent": sent,
                      "send_seconds": time.monotonic() - started}), flush=True)


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def run_es(args):
    from elasticsearch import Elasticsearch, helpers
    docs = [json.loads(line) for line in read_lines(args.corpus)]
    # Retries with backoff on 429/502/503/504, as a production client is configured: the server
    # answers 503 while its pipeline is full, and the bulk helper retries only item-level 429s.
    es = Elasticsearch(args.url + "/es", api_key=args.token, request_timeout=300,
                       max_retries=100, retry_on_status=(429, 502, 503, 504),
                       retry_backoff_base=0.25, retry_backoff_cap=2.0)
    es.info()
    actions = [{"_index": "logs-bench", "_op_type": "create", "_source": d} for d in docs]
    handshake()
    started = time.monotonic()
    sent = 0
    for ok, item in helpers.parallel_bulk(es, actions, thread_count=args.connections,
                                          chunk_size=args.batch, max_chunk_bytes=64 << 20):
        if not ok:
            sys.exit("bulk item failed: %r" % (item,))
        sent += 1
    done("elasticsearch parallel_bulk", sent, started)


def run_otlp(args):
    import logging
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    lines = read_lines(args.corpus)
    provider = LoggerProvider(resource=Resource.create({"service.name": "crowsnest-bench",
                                                        "host.name": "bench-node"}))
    exporter = OTLPLogExporter(endpoint=args.url + "/v1/logs", timeout=300,
                               headers={"Authorization": "Bearer " + args.token})
    # The queue holds the whole corpus: the processor drops records when its queue is full,
    # and this measures throughput, not the drop policy.
    provider.add_log_record_processor(BatchLogRecordProcessor(
        exporter, schedule_delay_millis=200, max_export_batch_size=args.batch,
        max_queue_size=len(lines) + 1))
    logger = logging.getLogger("crowsnest-bench")
    logger.propagate = False
    logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
    logger.setLevel(logging.INFO)
    handshake()
    started = time.monotonic()
    for line in lines:
        logger.info(line)
    provider.force_flush(timeout_millis=600_000)
    done("opentelemetry-sdk BatchLogRecordProcessor + OTLPLogExporter", len(lines), started)
    provider.shutdown()


def run_fluent(args):
    from fluent import sender
    records = [json.loads(line) for line in read_lines(args.corpus)]
    threads = max(1, args.connections)
    shares = [records[i::threads] for i in range(threads)]
    senders = [sender.FluentSender("bench", host="127.0.0.1", port=args.forward_port,
                                   timeout=30, bufmax=64 << 20) for _ in range(threads)]
    counts = [0] * threads
    failures = []

    def work(i):
        s, now = senders[i], int(time.time())
        for record in shares[i]:
            if not s.emit_with_time("logs", now, record):
                failures.append(repr(s.last_error))
                return
            counts[i] += 1
        s.close()

    handshake()
    started = time.monotonic()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failures:
        sys.exit("fluent-logger failed: %s" % failures[0])
    done("fluent-logger FluentSender", sum(counts), started)


def run_rsyslog(args):
    rsyslogd = next((p for p in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if os.path.exists(p)), None)
    if rsyslogd is None:
        sys.exit("rsyslogd is not installed (scripts/setup-ecosystem.sh installs it)")
    lines = read_lines(args.corpus)
    work = tempfile.mkdtemp(prefix="crowsnest-bench-rsyslog")
    staged, watched = os.path.join(work, "staged.log"), os.path.join(work, "input.log")
    with open(staged, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
    config = os.path.join(work, "rsyslog.conf")
    with open(config, "w", encoding="utf-8") as f:
        f.write(f"""global(workDirectory="{work}" maxMessageSize="64k")
module(load="imfile")
input(type="imfile" File="{watched}" Tag="crowsnest-bench" Severity="info" Facility="local0")
action(type="omfwd" target="127.0.0.1" port="{args.syslog_tcp_port}" protocol="tcp"
       TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
       queue.type="LinkedList" queue.size="200000" queue.dequeueBatchSize="1024")
""")
    # rsyslogd's own messages go to a file (it warns that the watched file does not exist yet,
    # which is the point: the corpus is renamed into place at `go`); shown if it dies.
    log_path = os.path.join(work, "rsyslogd.log")
    log = open(log_path, "w", encoding="utf-8")
    daemon = subprocess.Popen([rsyslogd, "-n", "-f", config, "-i", os.path.join(work, "pid")],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    try:
        time.sleep(1.0)
        if daemon.poll() is not None:
            with open(log_path, encoding="utf-8") as f:
                sys.exit("rsyslogd exited with %s: %s" % (daemon.returncode, f.read()))
        handshake()
        started = time.monotonic()
        os.rename(staged, watched)
        done("rsyslog imfile -> omfwd TCP", len(lines), started)
        sys.stdin.read()
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--client", required=True, choices=["es", "otlp", "fluent", "rsyslog"])
    parser.add_argument("--url", default="http://127.0.0.1:8470")
    parser.add_argument("--token", required=True)
    parser.add_argument("--corpus", required=True, help="NDJSON, one event per line")
    parser.add_argument("--forward-port", type=int, default=24224)
    parser.add_argument("--syslog-tcp-port", type=int, default=5514)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    {"es": run_es, "otlp": run_otlp, "fluent": run_fluent, "rsyslog": run_rsyslog}[args.client](args)


if __name__ == "__main__":
    main()
