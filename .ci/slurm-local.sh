#!/usr/bin/env bash
# Single-node Slurm cluster on this machine (Debian 12), for testing `--profile profiles/slurm` for real. Run as root.
# Adapted from ../shared/tools/slurm-local.sh: partitions named as in profiles/slurm (cpu, gpu; one node with
# one pretend GPU), slurmdbd on by default so that `sacct` keeps every job's record (its comment names the
# rule: AccountingStoreFlags=job_comment), and the plugin can use its default status command.
#   slurm-local.sh start   # install (if needed), configure, start, wait until idle
#   slurm-local.sh stop    # stop every daemon this script started (by pid file)
#   slurm-local.sh status
# SLURM_CI_DBD=1 also runs mariadb + slurmdbd so that `sacct` works
# (only needed if you want the plugin's default status command 'sacct').
set -euo pipefail

ACTION=${1:-start}
WITH_DBD=${SLURM_CI_DBD:-1}
LOG=/var/log/slurm
PIDS="/run/slurmd.pid /run/slurmctld.pid /run/slurmdbd.pid /run/mysqld/mysqld.pid /run/munge/munged.pid"

pid_alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${st#Z}" = "$st" ]; }  # not a zombie
alive() { [ -s "$1" ] && pid_alive "$(cat "$1")"; }

wait_for() {  # wait_for SECONDS CMD...
  local n=$(( $1 * 5 )); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "timeout waiting for: $*" >&2; return 1
}

install_pkgs() {
  local pkgs="slurmctld slurmd slurm-client munge" missing=""
  [ "$WITH_DBD" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
  for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  [ -z "$missing" ] && return 0
  apt-get update -qq
  # policy-rc.d / no systemd: postinst does not start the services, we do.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

write_config() {
  local host cpus mem acct
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) * 8 / 10 ))
  if [ "$WITH_DBD" = 1 ]; then
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment"
  else
    acct="AccountingStorageType=accounting_storage/none"
  fi
  mkdir -p /etc/slurm "$LOG" /var/spool/slurmctld /var/spool/slurmd
  cat > /etc/slurm/slurm.conf <<EOF
ClusterName=ci
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
${acct}
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.log
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
MinJobAge=300
GresTypes=gpu
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL MaxTime=INFINITE State=UP
EOF
  cat > /etc/slurm/gres.conf <<EOF
AutoDetect=off
NodeName=${host} Name=gpu Count=1 File=/dev/null
EOF
}

start_munge() {
  alive /run/munge/munged.pid && return 0
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
  [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 bash -c 'munge -n | unmunge'
}

start_dbd() {
  if ! alive /run/mysqld/mysqld.pid; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    ( setsid mariadbd --user=mysql --datadir=/var/lib/mysql --bind-address=127.0.0.1 \
        --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid \
        >"$LOG/mariadb.log" 2>&1 & )
    wait_for 30 mariadb -e 'select 1'
  fi
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmci';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmci
EOF
  chmod 600 /etc/slurm/slurmdbd.conf
  alive /run/slurmdbd.pid || /usr/sbin/slurmdbd
  wait_for 30 bash -c 'grep -q "slurmdbd version .* started" '"$LOG"'/slurmdbd.log'
}

start() {
  install_pkgs
  write_config
  start_munge
  [ "$WITH_DBD" = 1 ] && start_dbd
  alive /run/slurmctld.pid || /usr/sbin/slurmctld -c   # -c: fresh state, no old jobs
  alive /run/slurmd.pid || /usr/sbin/slurmd
  wait_for 60 bash -c '[ "$(sinfo -h -o %t | sort -u)" = idle ]'
  if [ "$WITH_DBD" = 1 ]; then
    wait_for 30 bash -c 'sacctmgr -n list cluster format=cluster | grep -qw ci'
    sacctmgr -i add account ci Description=ci Organization=ci >/dev/null 2>&1 || true
    sacctmgr -i add user root Account=ci DefaultAccount=ci >/dev/null 2>&1 || true
  fi
  sinfo
}

stop() {
  for f in $PIDS; do
    if alive "$f"; then
      pid=$(cat "$f"); kill "$pid"
      for _ in $(seq 50); do pid_alive "$pid" || break; sleep 0.2; done
      if pid_alive "$pid"; then kill -9 "$pid"; fi
    fi
    rm -f "$f"
  done
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  status) for f in $PIDS; do alive "$f" && echo "up   $f" || echo "down $f"; done
          sinfo 2>/dev/null || true ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
