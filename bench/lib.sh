# bench/lib.sh: what the benchmarks share. Source it from a script that has
# cd'ed into its own scratch directory.

log() { printf 'bench: %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v o="$1" -v g="$2" 'BEGIN { if (g > 0) printf "%.2f", o / g; else print "n/a" }'; }

# sshd_start WORK CLIENT_PUB: a private OpenSSH sshd on loopback that lets
# this user in with the key CLIENT_PUB; git-receive-pack runs through the
# user's shell, as on any git host. Sets sshd_port and sshd_pid, and waits
# until sshd has written its pid file.
sshd_start() {
	local work=$1
	ssh-keygen -q -t ed25519 -N '' -f "$work/sshd_host"
	cp "$2" "$work/sshd_authorized_keys"
	chmod 600 "$work/sshd_authorized_keys"
	sshd_port=$(free_port)
	cat >"$work/sshd_config" <<-EOF
	Port $sshd_port
	ListenAddress 127.0.0.1
	HostKey $work/sshd_host
	AuthorizedKeysFile $work/sshd_authorized_keys
	PidFile $work/sshd.pid
	PasswordAuthentication no
	KbdInteractiveAuthentication no
	UsePAM no
	StrictModes no
	PermitRootLogin prohibit-password
	MaxStartups 200
	MaxSessions 200
	LogLevel ERROR
	EOF
	# sshd insists on its privilege separation directory even when not root
	[ -d /run/sshd ] || mkdir -p /run/sshd 2>/dev/null || sudo mkdir -p /run/sshd
	/usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
	sshd_pid=$!
	for _ in $(seq 1 100); do
		[ -f "$work/sshd.pid" ] && return 0
		sleep 0.1
	done
	cat "$work/sshd.log" >&2
	return 1
}
