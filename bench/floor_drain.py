"""The drain benchmark's ceiling: a drain that does everything but apply the events.

    python bench/floor_drain.py --partitions N --batch-size B   (DATABASE_URL, REDIS_URL set)

Run as a script, it empties the partition lists the gateway's drain reads, batch by batch as the
drain does: pop ids from Redis, select and lock their inbox rows (``FOR UPDATE SKIP LOCKED``
on PostgreSQL, a write transaction on SQLite), parse each body, mark them processed and commit.
It prints the events per second it managed: what the drain's machinery costs per event with no
handler, no reaction and no ledger write, which is the most a worker could do.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from typing import cast


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    args = parser.parse_args()

    from redis import Redis
    from sqlalchemy import Table, select, update

    from ledger.db import make_engine
    from ledger.models import InboxEvent, InboxStatus
    from workers.dispatch import list_key

    inbox = cast(Table, InboxEvent.__table__)
    engine = make_engine(os.environ["DATABASE_URL"])
    redis = Redis.from_url(os.environ["REDIS_URL"])
    done = 0
    start = time.perf_counter()
    for partition in range(args.partitions):
        while raw_ids := redis.lpop(list_key(partition), args.batch_size):
            ids = sorted({int(i) for i in raw_ids})
            with engine.begin() as conn:
                rows = conn.execute(select(inbox.c.id, inbox.c.raw_body)
                                    .where(inbox.c.id.in_(ids),
                                           inbox.c.status == InboxStatus.PENDING)
                                    .order_by(inbox.c.id).with_for_update(skip_locked=True)).all()
                for row in rows:
                    json.loads(row.raw_body)
                conn.execute(update(inbox).where(inbox.c.id.in_([r.id for r in rows]))
                             .values(status=InboxStatus.PROCESSED,
                                     processed_at=datetime.now(UTC)))
            done += len(rows)
    elapsed = time.perf_counter() - start
    print(json.dumps({"events": done, "seconds": elapsed, "per_second": done / elapsed}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
