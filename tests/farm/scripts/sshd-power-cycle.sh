#!/bin/sh
# The power switch of the real-sshd test's "board" (tests/farm/test_sshd.cpp),
# given to the ssh executor as its power-cycle command: sshd-power-cycle.sh SCRATCH
#
# 1. records the variables the executor passes (FARM_BOARD, FARM_JOB_ID,
#    FARM_REASON) in SCRATCH/power.log;
# 2. does to the board what cutting its power does to the hung job: over ssh
#    (the real sshd, the test's key), every process whose program is a file
#    of that job's remote directory is SIGKILLed (one "killed=PID" line each);
# 3. turns the board "off": the listening sshd is stopped (SIGTERM, its
#    PidFile), after leaving SCRATCH/reboot, which tells the test's keeper
#    process to start sshd again a moment later (the "boot"). The executor
#    then has to wait for ssh to come back (boot_timeout_s, boot_poll_ms).
#
# SCRATCH/board.env (written by the test) sets SSH_PORT, SSH_KEY,
# KNOWN_HOSTS, REMOTE_DIR, SSHD_PIDFILE. Only 127.0.0.1 is contacted
# (FARM_BOARD is the test's user@127.0.0.1).
set -u
scratch=$1
. "$scratch/board.env"
log=$scratch/power.log
{
  echo "FARM_BOARD=$FARM_BOARD"
  echo "FARM_JOB_ID=$FARM_JOB_ID"
  echo "FARM_REASON=$FARM_REASON"
} >>"$log"

case $FARM_BOARD in
  *@127.0.0.1) ;;
  *) echo "refusing to touch board '$FARM_BOARD' (not 127.0.0.1)" >>"$log"; exit 1 ;;
esac

# The job id is a checked single path component ([A-Za-z0-9._-]); the
# remote directory is the test's scratch path.
remote='for p in /proc/[0-9]*; do case $(readlink "$p/exe" 2>/dev/null) in '"$REMOTE_DIR/$FARM_JOB_ID"'-*/*) kill -KILL "${p#/proc/}" && echo "killed=${p#/proc/}";; esac; done'
/usr/bin/ssh -F none -p "$SSH_PORT" -i "$SSH_KEY" \
  -o UserKnownHostsFile="$KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes \
  -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none -o ConnectTimeout=5 -o LogLevel=ERROR \
  -- "$FARM_BOARD" "$remote" >>"$log" 2>&1 || echo "ssh-kill-failed=$?" >>"$log"

# Power off: sshd goes away until the keeper boots it again.
pid=$(cat "$SSHD_PIDFILE" 2>/dev/null) || { echo "no sshd pid file" >>"$log"; exit 1; }
: >"$scratch/reboot"
kill -TERM "$pid" || { echo "sshd $pid: kill failed" >>"$log"; exit 1; }
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
echo "sshd-stopped=$pid" >>"$log"
exit 0
