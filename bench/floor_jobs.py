"""The drain benchmark's floor: RQ jobs that do nothing, run by one worker on the same Redis.

    python bench/floor_jobs.py --redis-url URL --queue NAME --worker simple|fork

Run as a script, it drains ``NAME`` with one RQ worker in burst mode (``SimpleWorker``, or the
forking ``Worker``) and prints the jobs per second it managed, which is what RQ alone costs per
job on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def noop() -> None:
    """The job: nothing."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--worker", choices=["simple", "fork"], required=True)
    args = parser.parse_args()

    from redis import Redis
    from rq import Queue, SimpleWorker, Worker

    redis = Redis.from_url(args.redis_url)
    queue = Queue(args.queue, connection=redis)
    jobs = queue.count
    worker_class = SimpleWorker if args.worker == "simple" else Worker
    worker = worker_class([queue], connection=redis)
    start = time.perf_counter()
    worker.work(burst=True, logging_level=os.environ.get("LOG_LEVEL", "INFO"))
    elapsed = time.perf_counter() - start
    print(json.dumps({"jobs": jobs, "seconds": elapsed, "per_second": jobs / elapsed}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
