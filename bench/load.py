"""Load measurements of the embedded engine (docs/reliability.md, "Under load"). Measurements,
not assertions: each part checks that nothing was lost and prints what it saw, with the CPU
line (model, cores, load average before and after).

    python bench/load.py writers     16 writer processes for 60 s: every commit lands, reads back
    python bench/load.py serve       `pix2pix local serve` + 32 python-pachyderm clients for 60 s
    python bench/load.py files       put / list / glob of 1,000, 10,000 and 100,000 small files
    python bench/load.py generate    `pix2pix generate` of 2,000 images with an --ngf 8 model

Run it alone on the machine (it measures time): the numbers are for that machine only.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def cpu_line() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                  .splitlines() if ln.startswith("model name")), "?")
    return f"{model}, {os.cpu_count()} cores, loadavg {Path('/proc/loadavg').read_text().strip()}"


def pix(*args: str, state: Path | None = None, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, **({"PIX2PIX_STATE": str(state)} if state else {}))
    return subprocess.run([sys.executable, "-m", "pix2pix", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, **kw)


# -- 16 writers ------------------------------------------------------------------------------
def _writer(state: str, k: int, seconds: float, out: "mp.Queue") -> None:
    from pix2pix.pachyderm import files
    from pix2pix.pachyderm.engine import Engine
    eng = Engine(Path(state))
    landed, i, deadline = [], 0, time.time() + seconds
    while time.time() < deadline:
        data = f"writer {k} commit {i}".encode()
        info, _ = eng.modify("d", "master", [files.file_op(eng, f"/w{k}/{i}", data)])
        landed.append((info.id, f"/w{k}/{i}", data.decode()))
        i += 1
    out.put(landed)


def writers(n: int = 16, seconds: float = 60.0) -> dict:
    from pix2pix.pachyderm.engine import Engine
    base = Path(tempfile.mkdtemp(prefix="load-writers-"))
    state = base / "state"
    Engine(state).create_repo("d")
    q: "mp.Queue" = mp.Queue()
    t0 = time.time()
    procs = [mp.Process(target=_writer, args=(str(state), k, seconds, q)) for k in range(n)]
    for p in procs:
        p.start()
    reports = [q.get(timeout=seconds + 300) for _ in procs]
    for p in procs:
        p.join()
    wall = time.time() - t0
    eng = Engine(state)
    landed = [x for r in reports for x in r]
    ids = {c.id for c in eng.list_commits("d")}
    lost = [x for x in landed if x[0] not in ids]
    wrong = [x for x in landed if x[0] in ids and eng.get_file("d", x[0], x[1]).decode() != x[2]]
    head = {f.path for f in eng.walk_files("d", "master")}
    missing_at_head = [x for x in landed if x[1] not in head]
    shutil.rmtree(base)
    return {"writers": n, "seconds": seconds, "wall_s": round(wall, 1), "commits": len(landed),
            "commits_per_s": round(len(landed) / wall, 1), "commits_in_repo": len(ids),
            "lost": len(lost), "wrong_content": len(wrong),
            "missing_at_head": len(missing_at_head),
            "per_writer_min_max": [min(map(len, reports)), max(map(len, reports))]}


# -- local serve + 32 python-pachyderm clients -----------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _client_proc(port: int, first: int, threads: int, seconds: float, out: "mp.Queue") -> None:
    import python_pachyderm

    def run(k: int, res: list) -> None:
        c = python_pachyderm.Client(host="127.0.0.1", port=port, use_default_host=False)
        i, deadline = 0, time.time() + seconds
        while time.time() < deadline:
            data = f"client {k} put {i}".encode()
            try:
                # One branch per client: pachd, like the engine, refuses a second open commit
                # on a branch, so clients sharing one would mostly be refused, not loaded.
                with c.commit("d", f"c{k}") as commit:
                    c.put_file_bytes(commit, f"/c{k}/{i}", data)
                list(c.list_file(("d", commit.id), f"/c{k}"))
                got = c.get_file(("d", commit.id), f"/c{k}/{i}").read()
                res.append((commit.id, f"/c{k}/{i}", data.decode(), got == data))
            except Exception as e:  # counted: an error is not a lost commit, but it is reported
                res.append((None, f"/c{k}/{i}", repr(e)[:200], False))
            i += 1

    results: list[list] = [[] for _ in range(threads)]
    ts = [threading.Thread(target=run, args=(first + j, results[j])) for j in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 120)
    out.put({"results": [x for r in results for x in r], "hung": sum(t.is_alive() for t in ts)})


def _rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, KiB."""
    vals = {}
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        if ln.startswith(("VmRSS", "VmHWM")):
            vals[ln.split(":")[0]] = int(ln.split()[1])
    return vals.get("VmRSS", 0), vals.get("VmHWM", 0)


def serve(clients: int = 32, seconds: float = 60.0, per_proc: int = 8) -> dict:
    from pix2pix.pachyderm.engine import Engine
    base = Path(tempfile.mkdtemp(prefix="load-serve-"))
    state = base / "state"
    Engine(state).create_repo("d")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "pix2pix", "local", "serve", "--port",
                               str(port), "--state", str(state)], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    rss_start = _rss_kib(server.pid)[0]
    q: "mp.Queue" = mp.Queue()
    t0 = time.time()
    procs = [mp.Process(target=_client_proc, args=(port, j * per_proc, per_proc, seconds, q))
             for j in range(clients // per_proc)]
    for p in procs:
        p.start()
    samples, reports = [], []
    while len(reports) < len(procs) and time.time() < t0 + seconds + 180:
        samples.append(_rss_kib(server.pid)[0])
        try:
            reports.append(q.get(timeout=1))  # drained as they come: a full queue blocks exit
        except Exception:
            pass
    for p in procs:
        p.join(30)
    wall = time.time() - t0
    rss_end, hwm = _rss_kib(server.pid)
    server.send_signal(signal.SIGINT)
    server.wait(timeout=60)
    rows = [x for r in reports for x in r["results"]]
    ok = [x for x in rows if x[0] is not None]
    eng = Engine(state)
    ids = {c.id for c in eng.list_commits("d")}
    lost = [x for x in ok if x[0] not in ids or eng.get_file("d", x[0], x[1]).decode() != x[2]]
    unreadable = [x for x in ok if not x[3]]
    errors = [x[2] for x in rows if x[0] is None]
    shutil.rmtree(base)
    return {"clients": clients, "seconds": seconds, "wall_s": round(wall, 1),
            "commits": len(ok), "commits_per_s": round(len(ok) / wall, 1),
            "lost": len(lost), "read_back_wrong": len(unreadable), "errors": len(errors),
            "first_errors": errors[:3], "hung_clients": sum(r["hung"] for r in reports)
            + len(procs) - len(reports),
            "server_rss_mib": {"start": round(rss_start / 1024), "end": round(rss_end / 1024),
                               "peak": round(hwm / 1024),
                               "max_sampled": round(max(samples or [0]) / 1024)}}


# -- many small files ------------------------------------------------------------------------
def small_files(counts: tuple[int, ...] = (1000, 10000, 100000)) -> list[dict]:
    out = []
    for n in counts:
        base = Path(tempfile.mkdtemp(prefix="load-files-"))
        src, state = base / "src", base / "state"
        src.mkdir()
        for i in range(n):
            sub = src / f"{i // 1000:03d}"
            if i % 1000 == 0:
                sub.mkdir()
            (sub / f"{i:06d}.txt").write_bytes(b"%d\n" % i)
        assert pix("create", "repo", "d", state=state).returncode == 0
        row = {"files": n}
        for what, args in (("put_s", ("put", "file", "d@master:/f", "-r", "-f", str(src))),
                           ("list_root_s", ("list", "file", "d@master:/f")),
                           ("list_folder_s", ("list", "file", "d@master:/f/000")),
                           ("glob_all_s", ("glob", "file", "d@master:/f/*/*.txt")),
                           ("glob_one_s", ("glob", "file", "d@master:/f/000/0000*.txt"))):
            t = time.perf_counter()
            r = pix(*args, state=state)
            row[what] = round(time.perf_counter() - t, 2)
            assert r.returncode == 0, r.stderr[-500:]
            if what == "glob_all_s":
                row["glob_all_lines"] = len(r.stdout.splitlines()) - 1
        blank = pix("version", "--client-only")  # the CLI's own start-up, to subtract by eye
        t = time.perf_counter()
        pix("version", "--client-only")
        row["cli_startup_s"] = round(time.perf_counter() - t, 2)
        assert blank.returncode == 0
        out.append(row)
        shutil.rmtree(base)
    return out


# -- generate 2,000 images -------------------------------------------------------------------
def generate(n: int = 2000, size: int = 256) -> dict:
    import numpy as np
    from PIL import Image
    base = Path(tempfile.mkdtemp(prefix="load-generate-"))
    pairs, inp = base / "pairs", base / "in"
    pairs.mkdir()
    inp.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (size, 2 * size, 3), dtype=np.uint8)).save(
            pairs / f"{i}.png")
    r = pix("train", "--input_dir", str(pairs), "--output_dir", str(base / "run"),
            "--max_steps", "1", "--ngf", "8", "--crop_size", str(size))
    assert r.returncode == 0, r.stderr[-2000:]
    r = pix("export", "--checkpoint", str(base / "run"), "--output_dir", str(base / "model"))
    assert r.returncode == 0, r.stderr[-2000:]
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            inp / f"{i:05d}.png")
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "pix2pix", "generate", "--model",
                          str(base / "model"), "--input", str(inp), "--output_dir",
                          str(base / "out")], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    peak = 0
    while p.poll() is None:  # VmHWM is the peak so far; the train/export children do not count
        try:
            peak = max(peak, _rss_kib(p.pid)[1])
        except OSError:
            pass
        time.sleep(0.2)
    _, err = p.communicate()
    wall = time.perf_counter() - t
    written = len(list((base / "out").glob("*.png")))
    shutil.rmtree(base)
    assert p.returncode == 0, err[-2000:]
    return {"images": n, "size": size, "ngf": 8, "wall_s": round(wall, 1),
            "images_per_s": round(n / wall, 1), "written": written,
            "peak_rss_mib": round(peak / 1024), "last_line": err.strip().splitlines()[-1]}


PARTS = {"writers": writers, "serve": serve, "files": small_files, "generate": generate}


def main(argv: list[str]) -> int:
    parts = argv or list(PARTS)
    for name in parts:
        before = cpu_line()
        t = time.time()
        result = PARTS[name]()
        print(json.dumps({"part": name, "cpu_before": before, "cpu_after": cpu_line(),
                          "total_s": round(time.time() - t, 1), "result": result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
