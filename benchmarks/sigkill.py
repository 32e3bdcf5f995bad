"""What a SIGKILL under /score traffic loses of acknowledged records, with the scoring log acknowledged when queued
(the default) and when committed (`SCORELOOP_SERVE__LOG_ACK=committed`).

    .venv/bin/python -m benchmarks.sigkill [--home HOME] [--kills 3] [--records 20]

Four clients post /score requests of `--records` records with unique ids; after a few seconds of traffic every
process of the server is killed at once, as a machine crash would. Per kill it prints how many acknowledged records
the scoring log lacks and the window: how long before the kill the oldest lost record was acknowledged.
"""

from __future__ import annotations

import argparse
import http.client
import tempfile
import threading
import time
from pathlib import Path

import psutil

from benchmarks.served import START_TIMEOUT_S, Client, records_body, trained_home
from scoreloop.core.store import RecordStore
from tests.support import clean_env, free_port, running, serve_command

TRAFFIC_S = 4.0  # seconds of traffic before the kill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="A home with a champion (default: train one in a temp home).")
    parser.add_argument("--kills", type=int, default=3, help="Kills per mode.")
    parser.add_argument("--records", type=int, default=20, help="Records per request.")
    args = parser.parse_args()
    home = trained_home(args.home, rows=4000, trials=3)
    print("| ack | kill | acknowledged | lost | window ms |")
    print("|---|---:|---:|---:|---:|")
    for ack in ("queued", "committed"):
        for kill in range(args.kills):
            acknowledged, lost, window = kill_under_traffic(home, ack, args.records)
            print(f"| {ack} | {kill + 1} | {acknowledged} | {lost} | {window:.1f} |")


def kill_under_traffic(home: Path, ack: str, size: int) -> tuple[int, int, float]:
    """(records acknowledged, acknowledged records the log lacks, ms from the oldest lost acknowledgement to the
    kill)."""
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "records.db"
        env = clean_env(SCORELOOP_STORE_URL=f"sqlite:///{store}", SCORELOOP_SERVE__LOG_ACK=ack)
        port = free_port()
        acknowledged: dict[str, float] = {}  # id -> when its 200 arrived
        stop = threading.Event()

        def client(worker: int) -> None:
            connection = Client(port)
            for n in range(10**9):
                ids = [f"{worker}-{n}-{i}" for i in range(size)]
                try:
                    status, _ = connection.post("/score", records_body([{"lead_id": i} for i in ids]))
                except (OSError, http.client.HTTPException):  # the server is gone
                    return
                if status == 200:
                    now = time.monotonic()
                    acknowledged.update(dict.fromkeys(ids, now))
                if stop.is_set():
                    return

        ready = f"http://127.0.0.1:{port}/readyz"
        with running(serve_command(home, port), ready, Path(folder) / "serve.log", env, START_TIMEOUT_S) as process:
            threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            time.sleep(TRAFFIC_S)
            server = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
            for member in server:
                member.kill()
            killed_at = time.monotonic()  # SIGKILL is delivered at once: nothing is answered after this
            psutil.wait_procs(server, timeout=30)
            stop.set()
            for thread in threads:
                thread.join(30)
        logged = set(RecordStore(f"sqlite:///{store}").scores(features=False)["record_id"])
        lost = [at for i, at in acknowledged.items() if i not in logged]
        return len(acknowledged), len(lost), (killed_at - min(lost)) * 1000 if lost else 0.0


if __name__ == "__main__":
    main()
