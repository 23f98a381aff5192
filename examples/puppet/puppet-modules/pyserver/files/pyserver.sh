#!/bin/bash
# Runs one python3 server in the background, its pid in a file (used by pyserver::server).
#
#   pyserver.sh status PIDFILE PROGRAM              0 when the pid file names a live PROGRAM
#   pyserver.sh start  PIDFILE LOGFILE BIND PORT PROGRAM [ARGS...]
#                                                   starts it (no-op when it runs), then
#                                                   waits until it logs "listening on"
#                                                   (PORT may be empty: no wait)
#   pyserver.sh stop   PIDFILE PROGRAM              SIGTERM, then SIGKILL after 5 s; 0 when
#                                                   nothing runs
#   pyserver.sh reload PIDFILE PROGRAM              SIGHUP to a live PROGRAM (only for
#                                                   programs that handle it)
#
# The process is checked against /proc/<pid>/cmdline, so a stale pid file whose pid was
# reused by something else is never signalled.
set -u

alive() { # PID PROGRAM
	[ -n "$1" ] && grep -qaF -- "$2" "/proc/$1/cmdline" 2>/dev/null
}

pid_of() { # PIDFILE
	[ -s "$1" ] && tr -dc '0-9' <"$1"
}

action="${1:?usage: pyserver.sh status|start|stop|reload PIDFILE ...}"
pidfile="${2:?the pid file}"
shift 2
case "$action" in
status)
	program="${1:?the program}"
	alive "$(pid_of "$pidfile")" "$program"
	;;
start)
	logfile="${1:?the log file}" bind="${2:?the address}" port="${3-}" program="${4:?the program}"
	shift 4
	command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
	pid="$(pid_of "$pidfile")"
	if alive "$pid" "$program"; then
		echo "$program already running (pid $pid)"
		exit 0
	fi
	# Its own session, no terminal, output to the log: it outlives `puppet apply` and
	# holds none of its pipes.
	from=$(($(stat -c %s "$logfile" 2>/dev/null || echo 0) + 1))
	setsid nohup python3 "$program" "$@" >>"$logfile" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$pidfile"
	for _ in $(seq 100); do
		# Up when this run's own server says it listens: a connection alone could reach
		# another program holding the port (then this one dies: "Address already in use").
		if [ -z "$port" ] || tail -c +"$from" "$logfile" | grep -q " listening on "; then
			echo "$program started on $bind:${port:-?} (pid $pid)"
			exit 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "$program did not start; end of $logfile:" >&2
	tail -n 5 "$logfile" >&2
	kill -9 "$pid" 2>/dev/null
	rm -f "$pidfile"
	exit 1
	;;
stop)
	program="${1:?the program}"
	pid="$(pid_of "$pidfile")"
	if alive "$pid" "$program"; then
		kill "$pid"
		for _ in $(seq 50); do
			alive "$pid" "$program" || break
			sleep 0.1
		done
		if alive "$pid" "$program"; then kill -9 "$pid"; fi
		echo "$program stopped (pid $pid)"
	fi
	rm -f "$pidfile"
	;;
reload)
	program="${1:?the program}"
	pid="$(pid_of "$pidfile")"
	if alive "$pid" "$program"; then
		kill -HUP "$pid"
		echo "$program told to reload (pid $pid)"
	fi
	;;
*)
	echo "unknown action $action" >&2
	exit 2
	;;
esac
