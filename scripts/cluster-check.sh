#!/usr/bin/env bash
# Runs the sharded evaluation the way users run it on clusters, and checks
# that it gives exactly what one unsharded `cnnspot eval` gives:
#
# 1. Slurm: installs Debian's slurm-wlm and munge if missing, starts munged,
#    slurmctld and slurmd on localhost (one node, this machine's cores),
#    submits deploy/slurm/eval-array.sbatch with 4 tasks over DATASET (and
#    the merge job it submits), and compares the merged results.json and
#    every per-image logit with the unsharded run's.
# 2. Recovery: a second array whose task 2 is killed mid-run; the merge job
#    must not run, `eval --merge` must name shard 2-of-4, and resubmitting
#    task 2 alone must complete the run (resuming what it had scored).
# 3. Kubernetes: deploy/kubernetes/eval-indexed-job.yaml validated against
#    the Kubernetes schema (kubernetes-validate, from PyPI, --strict), then
#    its Indexed Job run as 4 local processes with JOB_COMPLETION_INDEX set
#    and its merge Job's script after them, with the volumes mapped to local
#    folders; same comparison.
#
# The daemons are stopped at the end, whatever happens. If they cannot
# start, the check fails and says why.
#
#   bash scripts/cluster-check.sh [DATASET]     (default ../shared/data/dev)
# CNNSPOT: the binary (default target/release/cnnspot, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
dataset=$(realpath "${1:-../shared/data/dev}")
[ -d "$dataset" ] || { echo "cluster-check: no dataset at $dataset" >&2; exit 1; }
if [ -z "${CNNSPOT:-}" ]; then
    [ -x target/release/cnnspot ] || cargo build --release --locked --workspace --bins
    CNNSPOT=$repo/target/release/cnnspot
fi
export CNNSPOT
work=$(mktemp -d /tmp/cnnspot-cluster.XXXXXX)
log() { echo "cluster-check: $*" >&2; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
fail() { log "FAILED: $*"; exit 1; }

# --- tools from the registries -------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
fi
venv=$repo/target/cluster-check-venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    log "installing kubernetes-validate from PyPI"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q kubernetes-validate==1.37.0
fi

# --- the reference: one unsharded run --------------------------------------
start=$(date +%s.%N)
"$CNNSPOT" eval "$dataset" --out "$work/single" --quiet --format json >/dev/null
single_s=$(since "$start")
log "unsharded eval: $single_s s"

compare() { # compare DIR: DIR's merged results against the unsharded run's
    "$venv/bin/python" - "$work/single" "$1" <<'EOF'
import json, sys
a, b = sys.argv[1], sys.argv[2]
ra, rb = (json.load(open(f"{d}/results.json")) for d in (a, b))
def metrics(r):
    out = {g["name"]: {k: v for k, v in g.items() if k != "name"} for g in r["generators"]}
    out["mean"] = r["mean"]
    return out
ma, mb = metrics(ra), metrics(rb)
assert ma.keys() == mb.keys(), (ma.keys(), mb.keys())
checked = 0
for g in ma:
    for k, v in ma[g].items():
        w = mb[g].get(k)
        if isinstance(v, float) or isinstance(w, float):
            assert v is not None and w is not None and abs(v - w) <= 1e-12, (g, k, v, w)
        else:
            assert v == w, (g, k, v, w)
        checked += 1
for k in ("settings", "checkpoint", "root", "left_out"):
    assert ra.get(k) == rb.get(k), (k, ra.get(k), rb.get(k))
assert ra["images"]["total"] == rb["images"]["total"]
rows = lambda d: {r["path"]: r for r in map(json.loads, open(f"{d}/scores.jsonl"))}
sa, sb = rows(a), rows(b)
assert sa.keys() == sb.keys(), len(sa.keys() ^ sb.keys())
for p in sa:
    assert sa[p]["logit"] == sb[p]["logit"], (p, sa[p]["logit"], sb[p]["logit"])
    assert sa[p]["label"] == sb[p]["label"] and sa[p]["generator"] == sb[p]["generator"], p
print(f"{len(sa)} logits equal, {checked} metrics equal (1e-12)")
EOF
}

# --- Slurm on localhost ------------------------------------------------------
slurm=$work/slurm
mkdir -p "$slurm"/{state,spool,log,run,munge}
chmod 700 "$slurm/munge"
export SLURM_CONF=$slurm/slurm.conf
stop_daemons() {
    scontrol shutdown >/dev/null 2>&1 || true
    [ -S "$slurm/munge/munge.socket.2" ] && munged -s --socket="$slurm/munge/munge.socket.2" >/dev/null 2>&1 || true
    sleep 1
    for f in "$slurm"/run/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
}
trap 'stop_daemons' EXIT
dd if=/dev/urandom of="$slurm/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$slurm/munge/munge.key"
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ { print int($2 / 1024 * 0.8) }' /proc/meminfo)
cat > "$SLURM_CONF" <<EOF
ClusterName=cnnspot-check
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$slurm/munge/munge.socket.2
StateSaveLocation=$slurm/state
SlurmdSpoolDir=$slurm/spool
SlurmctldPidFile=$slurm/run/slurmctld.pid
SlurmdPidFile=$slurm/run/slurmd.pid
SlurmctldLogFile=$slurm/log/slurmctld.log
SlurmdLogFile=$slurm/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=check Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
munged -f --socket="$slurm/munge/munge.socket.2" --key-file="$slurm/munge/munge.key" \
    --log-file="$slurm/log/munged.log" --pid-file="$slurm/run/munged.pid" \
    --seed-file="$slurm/munge/seed" \
    || fail "munged did not start: $(tail -3 "$slurm/log/munged.log" 2>/dev/null)"
slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start: $(tail -3 "$slurm/log/slurmctld.log" 2>/dev/null)"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start: $(tail -3 "$slurm/log/slurmd.log" 2>/dev/null)"
for _ in $(seq 60); do
    sinfo -h -o %T 2>/dev/null | grep -q idle && break
    sleep 1
done
sinfo -h -o %T | grep -q idle \
    || fail "the Slurm node never became idle: $(sinfo 2>&1 | tail -2); $(tail -3 "$slurm/log/slurmctld.log")"
log "Slurm is up: $(sinfo -h -o '%P %D nodes %c cpus %T')"

wait_jobs() { # until the queue is empty (at most $1 seconds)
    local t=0
    while [ -n "$(squeue -h 2>/dev/null)" ]; do
        sleep 1
        t=$((t + 1))
        [ "$t" -lt "$1" ] || fail "jobs still queued after $1 s: $(squeue)"
    done
}

cd "$work"
start=$(date +%s.%N)
job=$(sbatch --parsable --array=0-3 "$repo/deploy/slurm/eval-array.sbatch" "$dataset" "$work/sharded")
wait_jobs 900
slurm_s=$(since "$start")
[ -f "$work/sharded/results.json" ] \
    || fail "the merge job wrote no results.json; logs: $(tail -n 3 "$work"/cnnspot-*.out)"
# When the last shard finished and when the merge job wrote its results,
# counted from the submission: the gap is Slurm's dependency scheduling.
stamps=$("$venv/bin/python" -c '
import glob, os, sys
start, out = float(sys.argv[1]), sys.argv[2]
shards = max(os.path.getmtime(f) for f in glob.glob(out + "/shards/*/shard.json"))
merged = os.path.getmtime(os.path.join(out, "results.json"))
print("%.1f s for the 4 tasks, results at %.1f s" % (shards - start, merged - start))
' "$start" "$work/sharded")
log "Slurm array job $job (4 tasks + merge): $slurm_s s ($stamps), against $single_s s unsharded"
compare "$work/sharded"
start=$(date +%s.%N)
"$CNNSPOT" eval --merge "$work/sharded" --quiet --format json >/dev/null
merge_s=$(since "$start")
log "merge alone: $merge_s s"

# --- recovery: task 2 killed mid-run -----------------------------------------
# Batch 1 keeps task 2 slow enough to be caught (each task has one thread).
job=$(sbatch --parsable --array=0-3 \
    "$repo/deploy/slurm/eval-array.sbatch" "$dataset" "$work/killed" --batch-size 1)
rows=$work/killed/shards/2-of-4/scores.jsonl
for _ in $(seq 3000); do
    [ -f "$rows" ] && [ "$(wc -l < "$rows")" -ge 2 ] && break
    sleep 0.1
done
[ -f "$work/killed/shards/2-of-4/shard.json" ] && fail "task 2 finished before it could be killed"
scancel --signal=KILL --full "${job}_2"
log "killed task 2 after $(wc -l < "$rows") rows"
wait_jobs 900
[ -f "$work/killed/results.json" ] && fail "the merge ran although task 2 had been killed"
if why=$("$CNNSPOT" eval --merge "$work/killed" --quiet 2>&1); then
    fail "eval --merge accepted a run with a killed shard"
fi
echo "$why" | grep -q "shard 2-of-4 did not finish" || fail "eval --merge did not name shard 2-of-4: $why"
log "merge refused: $why"
CNNSPOT_SHARDS=4 sbatch --parsable --array=2 \
    "$repo/deploy/slurm/eval-array.sbatch" "$dataset" "$work/killed" --batch-size 1 >/dev/null
wait_jobs 900
[ -f "$work/killed/results.json" ] || fail "resubmitting task 2 did not complete the merge"
reused=$("$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["reused"])' \
    "$work/killed/shards/2-of-4/shard.json")
[ "$reused" -gt 0 ] || fail "the resubmitted task 2 scored everything again (reused 0)"
log "task 2 resubmitted alone: resumed with $reused images reused, merged"
compare "$work/killed"
stop_daemons
trap - EXIT

# --- Kubernetes ----------------------------------------------------------------
manifest=$repo/deploy/kubernetes/eval-indexed-job.yaml
"$venv/bin/kubernetes-validate" --strict --quiet "$manifest" \
    || fail "$manifest does not validate against the Kubernetes schema"
sed 's/completionMode:/completionMod:/' "$manifest" > "$work/broken.yaml"
if "$venv/bin/kubernetes-validate" --strict --quiet "$work/broken.yaml" >/dev/null 2>&1; then
    fail "kubernetes-validate accepted a misspelt field: it checks nothing"
fi
log "$manifest validates (kubernetes-validate --strict, Kubernetes 1.37)"
"$venv/bin/python" - "$manifest" "$dataset" "$work/k8s" <<'EOF'
# The Indexed Job's pods as local processes, then the merge Job's script.
import os, subprocess, sys, yaml
manifest, dataset, results = sys.argv[1:]
jobs = list(yaml.safe_load_all(open(manifest)))
indexed = next(j for j in jobs if j["spec"].get("completionMode") == "Indexed")
merge = next(j for j in jobs if j is not indexed)
def local(job, text):
    pod = job["spec"]["template"]["spec"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
    places = {"cnnspot-dataset": dataset, "cnnspot-results": results}
    for m in pod["containers"][0]["volumeMounts"]:
        text = text.replace(m["mountPath"], places[claims[m["name"]]])
    return text
def command(job):
    c = job["spec"]["template"]["spec"]["containers"][0]
    argv = [local(job, a) for a in c["command"] + c.get("args", [])]
    if argv[0] == "cnnspot":
        argv[0] = os.environ["CNNSPOT"]
    env = dict(os.environ)
    env.update({e["name"]: e["value"] for e in c.get("env", [])})
    return argv, env
n = indexed["spec"]["completions"]
assert indexed["spec"]["parallelism"] == n
os.makedirs(results, exist_ok=True)
argv, env = command(indexed)
pods = [subprocess.Popen(argv, env={**env, "JOB_COMPLETION_INDEX": str(i)}, stdout=subprocess.DEVNULL) for i in range(n)]
codes = [p.wait() for p in pods]
assert codes == [0] * n, codes
argv, env = command(merge)
env["PATH"] = os.path.dirname(os.environ["CNNSPOT"]) + ":" + env["PATH"]
argv = [a.replace("exec cnnspot", "exec " + os.environ["CNNSPOT"]) for a in argv]
subprocess.run(argv, env=env, check=True, timeout=600, stdout=subprocess.DEVNULL)
print(f"{n} indexed pods and the merge job ran locally")
EOF
compare "$work/k8s/run"
log "all passed: Slurm array + merge, kill and resubmit, Kubernetes manifests"
rm -rf "$work"
