"""The offline Hub under load, before and after a change: throughput, peak server memory, parallel clients.

Each server runs as `hf-rnn-transfer hub serve` in its own process (memory is that process's peak RSS, VmHWM), from
this checkout ("after") and from a git revision ("before", checked out into a temporary worktree). The clients are
this process: raw streaming HTTP for the big download, `huggingface_hub` for uploads and commits.

    python benchmarks/hub_server.py --before 7720740 --size_mb 500
"""

import argparse
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _report import table, write_section

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_bench_token"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("GET", path)
    response, digest = conn.getresponse(), hashlib.sha256()
    while chunk := response.read(1 << 20):
        digest.update(chunk)
    conn.close()
    return response.status, digest.hexdigest()


def _in_parallel(work, count: int) -> float:
    """Seconds for `count` threads running `work(i)` at once, from the first start to the last finish."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def measure(source: Path, size_mb: int, work: Path) -> dict:
    """Start a server from `source`, upload/download a `size_mb` file, then parallel downloads and commits."""
    from huggingface_hub import HfApi

    from hf_rnn_transfer.hub import hub_endpoint

    port, root = _port(), work / "root"
    tokens = work / "tokens.json"
    tokens.write_text(json.dumps({TOKEN: "bench"}))
    env = {**os.environ, "PYTHONPATH": str(source), "HF_HOME": str(work / "server-home")}
    server = subprocess.Popen(
        [sys.executable, "-m", "hf_rnn_transfer", "hub", "serve", "--root", str(root), "--port", str(port)]
        + ["--tokens_file", str(tokens)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=work,
    )
    out = {}
    try:
        for _ in range(300):
            try:
                _get(port, "/api/agent-harnesses")
                break
            except OSError:
                time.sleep(0.1)
        out["idle MB"] = _peak_rss_mb(server.pid)
        big = work / "big.safetensors"
        with open(big, "wb") as handle:
            for _ in range(size_mb):
                handle.write(os.urandom(1 << 20))
        expected = hashlib.sha256(big.read_bytes()).hexdigest()
        with hub_endpoint(f"http://127.0.0.1:{port}"):
            api = HfApi(token=TOKEN)
            api.create_repo("bench/big")
            start = time.perf_counter()
            api.upload_file(path_or_fileobj=str(big), path_in_repo="big.safetensors", repo_id="bench/big")
            out["upload MB/s"] = size_mb / (time.perf_counter() - start)
            out["peak MB after upload"] = _peak_rss_mb(server.pid)
            start = time.perf_counter()
            status, digest = _get(port, "/bench/big/resolve/main/big.safetensors")
            assert status == 200 and digest == expected, "download corrupted"
            out["download MB/s"] = size_mb / (time.perf_counter() - start)
            out["peak MB after download"] = _peak_rss_mb(server.pid)
            api.upload_file(path_or_fileobj=os.urandom(1 << 20), path_in_repo="small.bin", repo_id="bench/big")
            results = []
            out["50 parallel 1 MB downloads (s)"] = _in_parallel(
                lambda i: results.append(_get(port, "/bench/big/resolve/main/small.bin")[0]), 50
            )
            out["downloads ok"] = f"{results.count(200)}/50"
            api.create_repo("bench/commits")
            errors = []

            def commit(i):
                try:
                    HfApi(token=TOKEN).upload_file(
                        path_or_fileobj=f"{i}".encode(), path_in_repo=f"f{i}.txt", repo_id="bench/commits"
                    )
                except Exception as err:  # noqa: BLE001 - counted below
                    errors.append(err)

            out["10 parallel commits (s)"] = _in_parallel(commit, 10)
            files = set(api.list_repo_files("bench/commits"))
            out["commits applied"] = f"{sum(f'f{i}.txt' in files for i in range(10)) if not errors else 0}/10"
    finally:
        server.terminate()
        server.wait(timeout=30)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default=None, help="git revision of the 'before' server (omit: after only)")
    parser.add_argument("--size_mb", type=int, default=500, help="size of the big file (MB)")
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        tmp = Path(tmp)
        if args.before:
            old = tmp / "before-src"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(old), args.before])
            try:
                (tmp / "before").mkdir()
                runs[f"before ({args.before})"] = measure(old, args.size_mb, tmp / "before")
            finally:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)])
        (tmp / "after").mkdir()
        runs["after (this checkout)"] = measure(REPO, args.size_mb, tmp / "after")
    metrics = list(next(iter(runs.values())))
    rows = [[m] + [f"{r[m]:.1f}" if isinstance(r[m], float) else r[m] for r in runs.values()] for m in metrics]
    body = (
        f"A {args.size_mb} MB LFS file uploaded with `huggingface_hub` and downloaded with a streaming raw client; "
        "memory is the server process's peak resident set (VmHWM), so it only grows.\n\n"
        + table(["metric", *runs], rows)
    )
    write_section("hub-server", "Offline Hub: throughput, peak memory, parallel clients", body)


if __name__ == "__main__":
    main()
