#!/usr/bin/env python3
"""Request/reply figures through the Python client, against a running serve.

  one at a time   N calls, each waiting for its answer: p50 / p99 ms
  pipelined       M calls sent at once from one client (futures): calls/s, first send to last answer
  kcat            a producer (linger 0) and a kcat consumer on one topic, both long-running:
                  produce → consume p50 / p99 ms, the broker's own round trip on this machine

The command is `get_array_max_concurrently_running` by array id (a read: it changes nothing, so
the figure is the path broker → serve → broker, not a write's cost).

usage: request_reply.py --bootstrap-servers HOST:PORT [--array-id ID] [--calls N] [--pipelined M]
(without --array-id it adds an array of its own first). scripts/bench-client starts PostgreSQL, a
broker and a release serve and runs this against them.
"""

import argparse
import statistics
import subprocess
import threading
import time
import uuid

from confluent_kafka import Producer

from arrayfsm_client import ArrayFSMClient


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def one_at_a_time(client, array_id, calls):
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        client.get_array_max_concurrently_running(array_id=array_id)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def pipelined(client, array_id, calls):
    started = time.perf_counter()
    futures = [client.send("get_array_max_concurrently_running", array_id=array_id) for _ in range(calls)]
    for future in futures:
        future.result()
    return calls / (time.perf_counter() - started)


def kcat_round_trip(bootstrap_servers, messages):
    """The broker's own round trip: a producer (confluent-kafka, linger 0, each message flushed;
    kcat -P sends only when its input ends) and a kcat consumer on one topic."""
    topic = f"arrayfsm.bench-kcat-{uuid.uuid4().hex}"
    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 0})
    # The first message creates the topic (brokers that create on first use): a consumer started
    # before it exists gives up on it.
    producer.produce(topic, b"create")
    producer.flush(10)
    consumer = subprocess.Popen(["kcat", "-C", "-b", bootstrap_servers, "-t", topic, "-o", "end", "-u", "-q",
                                 "-X", "fetch.wait.max.ms=10"],
                                stdout=subprocess.PIPE, text=True, bufsize=1)
    received = {}
    done = threading.Event()

    def read():
        for line in consumer.stdout:
            received[line.strip()] = time.perf_counter()
            if line.strip() == f"m{messages - 1}":
                done.set()
                return

    threading.Thread(target=read, daemon=True).start()
    # Until the consumer has its partitions: probes, not counted.
    deadline = time.monotonic() + 30
    while not received and time.monotonic() < deadline:
        producer.produce(topic, b"probe")
        producer.flush(1)
        time.sleep(0.2)
    sent = {}
    for n in range(messages):
        sent[f"m{n}"] = time.perf_counter()
        producer.produce(topic, f"m{n}".encode())
        producer.flush(1)
        while f"m{n}" not in received and time.perf_counter() - sent[f"m{n}"] < 5:
            time.sleep(0.0002)
    done.wait(10)
    consumer.terminate()
    return [(received[k] - sent[k]) * 1000 for k in sent if k in received]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--array-id", type=int)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--pipelined", type=int, default=10000)
    args = parser.parse_args()
    with ArrayFSMClient(args.bootstrap_servers) as client:
        if args.array_id is None:
            args.array_id = client.add_array(workflow_id=int(time.time() * 1000) % 2**31, task_template_version_id=1,
                                             name="request-reply-bench").array_id
        one_at_a_time(client, args.array_id, 50)  # warm-up: connections, the serve's first fetches
        latencies = one_at_a_time(client, args.array_id, args.calls)
        rate = pipelined(client, args.array_id, args.pipelined)
    kcat = kcat_round_trip(args.bootstrap_servers, min(args.calls, 500))
    print(f"one at a time ({args.calls} calls): p50 {statistics.median(latencies):.2f} ms, "
          f"p99 {percentile(latencies, 0.99):.2f} ms")
    print(f"pipelined ({args.pipelined} calls from one client): {rate:,.0f} calls/s")
    if kcat:
        print(f"kcat produce → consume ({len(kcat)} messages): p50 {statistics.median(kcat):.2f} ms, "
              f"p99 {percentile(kcat, 0.99):.2f} ms")
    print("Jobmon, one HTTP call (../shared/reference/jobmon-array-fsm.md): ≈ 20–25 ms")


if __name__ == "__main__":
    main()
