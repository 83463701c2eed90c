"""A plain python-pachyderm 7.6 script, as a user writes one against pachd; run by
test_cluster_user_script.py against `pix2pix local serve`. Usage: user_script.py PORT"""
import sys

import python_pachyderm
from python_pachyderm.service import pps_proto

port = int(sys.argv[1])
client = python_pachyderm.Client(host="localhost", port=port)

client.create_repo("words", description="input words")
with client.commit("words", "master") as c:
    client.put_file_bytes(c, "/a.txt", b"hello")
    client.put_file_bytes(c, "/b.txt", b"world")

client.create_pipeline(
    "upper",
    transform=pps_proto.Transform(
        cmd=["python3", "-c",
             "import pathlib\n"
             "for p in pathlib.Path('/pfs/words').iterdir():\n"
             "    pathlib.Path('/pfs/out', p.name).write_text(p.read_text().upper())"],
        image="python:3.11-slim"),
    input=pps_proto.Input(pfs=pps_proto.PFSInput(repo="words", branch="master", glob="/*")),
)

# A new commit, then wait for the whole commit set (the pipeline's job included).
with client.commit("words", "master") as c2:
    client.put_file_bytes(c2, "/c.txt", b"again")
client.wait_commit(c2.id)

print("files:", sorted(f.file.path for f in client.list_file(("upper", "master"), "/")))
print("c.txt:", client.get_file(("upper", "master"), "/c.txt").read().decode())
print("a.txt:", client.get_file(("upper", c2.id), "/a.txt").read().decode())
jobs = list(client.list_job("upper"))
print("jobs:", [pps_proto.JobState.Name(j.state) for j in jobs])
print("job set:", [j.job.pipeline.name for j in client.inspect_job(c2.id)])
datums = list(client.list_datum("upper", c2.id))
print("datums:", sorted(pps_proto.DatumState.Name(d.state) for d in datums))
print("datum inputs:", sorted(f.file.path for d in datums for f in d.data))
print("logs ok:", all(m.pipeline_name == "upper" for m in client.get_job_logs("upper", c2.id)))
info = client.inspect_commit(("upper", "master")).__next__()
print("provenance:", sorted(p.branch.repo.name for p in info.direct_provenance))
print("pipeline:", next(client.inspect_pipeline("upper")).pipeline.name)
client.delete_pipeline("upper")
client.delete_repo("words")
print("repos:", [r.repo.name for r in client.list_repo()])

# Reset everything, as test suites against pachd do.
client.create_repo("again")
client.create_pipeline("copy", transform=pps_proto.Transform(cmd=["true"]),
                       input=pps_proto.Input(pfs=pps_proto.PFSInput(repo="again", glob="/")))
client.delete_all()
print("after delete_all:", [r.repo.name for r in client.list_repo()], list(client.list_pipeline()))
