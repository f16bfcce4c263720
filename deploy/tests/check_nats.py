#!/usr/bin/env python3
"""Runs deploy/'s NATS cluster for real, on loopback, the way fjord-nats.service runs it.

Three servers, each started from the unit itself: the check reads fjord-nats.service's
EnvironmentFile= (taking deploy/fjord-nats.env.example and changing only the addresses),
LoadCredential=, RuntimeDirectory=, StateDirectory=, UMask=, ExecStartPre= and ExecStart=
lines, runs deploy/fjord-nats-config and nats-server exactly as written there, and stops
them with the unit's KillSignal=. Then it checks, with a real client (nats-py):

  * fjord-nats-install refuses a tarball whose SHA-256 differs, and installs one that matches;
  * the secrets files are 0600 in a 0700 directory, and hold the secrets;
  * the three servers route to each other and form one JetStream cluster with a leader;
  * a client without the token, or with a wrong one, is refused; with it, it connects;
  * a stream with 3 replicas can be created, takes a message of 6 MiB (max_payload), and
    keeps every acknowledged message when the server leading it is killed with SIGKILL;
    new messages are acknowledged by the two left; the killed server, started again on its
    store, catches up and holds every message;
  * a server with a wrong route password is refused by the cluster;
  * with --lb-bin: fjord-lb, started from fjord-lb.service and fjord-lb.env.example with the
    three servers' addresses, connects and creates Fjord's streams with 3 replicas, which
    also shows that their 9 GiB reservation fits in NATS_MAX_FILE_STORE;
  * every server exits 0 on the unit's KillSignal=.

Usage: check_nats.py [--repo DIR] [--nats-server PATH] [--conf FILE] [--lb-bin PATH]
  --conf  a nats.conf to use instead of deploy/nats.conf (to see the check fail)
Needs nats-py (scripts/install-infra-tools.sh puts it in $FJORD_TOOLS_DIR/nats) and
nats-server 2.9 or newer. Exit status 0 when every check holds, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

try:
    import nats
    from nats.js.api import StorageType, StreamConfig
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("check_nats: nats-py is not installed (run scripts/install-infra-tools.sh and use its nats venv)")

# Where the units expect the programs the deploy files install.
INSTALLED = {
    "/usr/local/sbin/fjord-nats-config": "deploy/fjord-nats-config",
}
STREAM = "FJORD_DEPLOY_CHECK"
FJORD_STREAMS = ("FJORD_CALLS", "FJORD_DEAD", "FJORD_CALL_RECORDS")


class CheckFailed(Exception):
    pass


def say(text: str) -> None:
    print(f"check_nats: {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- reading a unit as systemd does (the parts these units use) ------------------------


def unit_settings(path: Path) -> dict[str, list[str]]:
    """[Service] and [Unit] settings, key -> values in order, continuations joined."""
    settings: dict[str, list[str]] = {}
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith(("#", ";", "["))):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        line, buf = buf + line, ""
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def env_file(path: Path) -> dict[str, str]:
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
        if not m:
            raise CheckFailed(f"{path}: not a KEY=VALUE line: {raw!r}")
        value = m.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[m.group(1)] = value
    return env


def command_line(value: str, env: dict[str, str]) -> list[str]:
    """An Exec*= value split as systemd splits it: ${VAR} in place, a lone $VAR into words."""
    words: list[str] = []
    for word in value.split():
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if m:
            words.extend(env.get(m.group(1), "").split())
            continue
        words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda v: env.get(v.group(1), ""), word))
    return words


class Unit:
    """One instance of a service unit: its directories, credentials and environment."""

    def __init__(self, unit: Path, root: Path, programs: dict[str, str], overrides: dict[str, str],
                 credentials: dict[str, str], repo: Path):
        self.settings = unit_settings(unit)
        self.name = unit.name
        self.root = root
        self.programs = programs
        root.mkdir(parents=True)
        env: dict[str, str] = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        for value in self.settings.get("EnvironmentFile", []):
            example = repo / "deploy" / (Path(value.lstrip("-")).name + ".example")
            if not example.is_file():
                raise CheckFailed(f"{self.name} reads {value}, which has no example {example.relative_to(repo)}")
            from_example = env_file(example)
            missing = sorted(set(overrides) - set(from_example))
            if missing:
                raise CheckFailed(f"{example.relative_to(repo)} does not set {', '.join(missing)}")
            env.update(from_example)
        env.update(overrides)
        creds = root / "credentials"
        creds.mkdir(mode=0o700)
        for value in self.settings.get("LoadCredential", []):
            cred_id = value.split(":", 1)[0]
            if cred_id not in credentials:
                raise CheckFailed(f"{self.name} loads a credential {cred_id!r} the check has no value for")
            (creds / cred_id).write_text(credentials[cred_id] + "\n")
            (creds / cred_id).chmod(0o400)
        env["CREDENTIALS_DIRECTORY"] = str(creds)
        for setting, var in (("RuntimeDirectory", "RUNTIME_DIRECTORY"), ("StateDirectory", "STATE_DIRECTORY")):
            names = self.settings.get(setting, [])
            if names:
                mode = int(self.settings.get(setting + "Mode", ["0755"])[-1], 8)
                d = root / setting / names[-1]
                d.mkdir(parents=True, mode=mode)
                d.chmod(mode)
                env[var] = str(d)
        self.env = env
        self.umask = int(self.settings.get("UMask", ["0022"])[-1], 8)
        self.log_path = root / "log"
        self.process: subprocess.Popen | None = None

    def argv(self, value: str) -> list[str]:
        words = command_line(value.lstrip("-@+!:"), self.env)
        program = words[0]
        if program not in self.programs:
            raise CheckFailed(f"{self.name} runs {program}, which the check cannot map to a file here")
        return [self.programs[program]] + words[1:]

    def _popen(self, argv: list[str]) -> subprocess.Popen:
        log = self.log_path.open("ab")
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=lambda: os.umask(self.umask))

    def start(self) -> None:
        """ExecStartPre= in order (each must exit 0), then ExecStart= in the background."""
        if self.settings.get("RuntimeDirectory"):  # systemd empties it on every stop
            run_dir = Path(self.env["RUNTIME_DIRECTORY"])
            for f in run_dir.iterdir():
                f.unlink()
        for value in self.settings.get("ExecStartPre", []):
            p = self._popen(self.argv(value))
            if p.wait(timeout=30) != 0:
                raise CheckFailed(f"{self.name}: ExecStartPre={value} exited {p.returncode}:\n{self.log_tail()}")
        (start,) = self.settings["ExecStart"]
        self.process = self._popen(self.argv(start))

    def kill9(self) -> None:
        assert self.process
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> int:
        """Sends the unit's KillSignal= (SIGTERM when unset) and returns the exit status."""
        assert self.process
        sig = getattr(signal, self.settings.get("KillSignal", ["SIGTERM"])[-1])
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise CheckFailed(f"{self.name} did not stop within 30 s of {sig.name}")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


# --- the cluster -------------------------------------------------------------------------


class Server:
    def __init__(self, index: int, root: Path, unit: Path, repo: Path, nats_server: str, conf: Path,
                 credentials: dict[str, str], routes: str, ports: dict[str, int], name: str | None = None):
        self.name = name or f"fjord-nats-{index}"
        self.ports = ports
        self.unit = Unit(
            unit, root / self.name,
            programs={**{k: str(repo / v) for k, v in INSTALLED.items()}, "/usr/local/bin/nats-server": nats_server},
            overrides={
                "NATS_SERVER_NAME": self.name,
                "NATS_LISTEN": f"127.0.0.1:{ports['client']}",
                "NATS_CLUSTER_LISTEN": f"127.0.0.1:{ports['cluster']}",
                "NATS_MONITOR_LISTEN": f"127.0.0.1:{ports['monitor']}",
                "NATS_ROUTES": routes,
            },
            credentials=credentials, repo=repo)
        # The script's only input that is not the unit's: where /etc/fjord/nats.conf is.
        self.unit.env["NATS_CONF"] = str(conf)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.ports['client']}"

    def monitor(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['monitor']}{path}", timeout=2) as r:
            return json.load(r)

    def log(self) -> str:
        return self.unit.log_path.read_text(errors="replace") if self.unit.log_path.exists() else ""


async def eventually(what: str, timeout: float, probe):
    """Calls probe until it returns something other than None/False; fails at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            result = probe()
            if asyncio.iscoroutine(result):
                result = await result
            if result not in (None, False):
                return result
        except Exception as exc:  # the condition is not there yet
            last = exc
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last})" if last else ""))
        await asyncio.sleep(0.2)


async def refused(urls: list[str], token: str | None) -> str:
    """Connects with token and returns the server's refusal; fails if it lets the client in."""
    errors: list[BaseException] = []

    async def on_error(exc):
        errors.append(exc)

    try:
        nc = await nats.connect(servers=urls, token=token, allow_reconnect=False, max_reconnect_attempts=0,
                                connect_timeout=2, error_cb=on_error)
    except Exception as exc:
        errors.append(exc)
    else:
        await nc.close()
        raise CheckFailed(f"a client with {'no token' if token is None else 'a wrong token'} was let in")
    text = "; ".join(str(e) for e in errors)
    if "authorization violation" not in text.lower():
        raise CheckFailed(f"the client failed, but not with an authorization refusal: {text}")
    return "Authorization Violation"


class Check:
    def __init__(self, args):
        self.repo = Path(args.repo).resolve()
        self.unit = self.repo / "deploy/fjord-nats.service"
        self.conf = Path(args.conf).resolve() if args.conf else self.repo / "deploy/nats.conf"
        self.nats_server = args.nats_server
        self.lb_bin = args.lb_bin
        self.tmp = Path(tempfile.mkdtemp(prefix="fjord-check-nats-"))
        self.token = secrets.token_hex(32)
        self.route_password = secrets.token_hex(32)
        self.servers: list[Server] = []
        self.others: list[Unit] = []
        self.verdicts: list[str] = []

    def credentials(self, route_password: str | None = None) -> dict[str, str]:
        return {"nats-token": self.token, "nats-route-password": route_password or self.route_password}

    def new_server(self, index: int, routes: str, ports: dict[str, int], **kw) -> Server:
        return Server(index, self.tmp, self.unit, self.repo, self.nats_server, self.conf,
                      kw.pop("credentials", None) or self.credentials(), routes, ports, **kw)

    def install_script_checks_its_download(self) -> None:
        """fjord-nats-install installs a tarball that matches the SHA-256 it is given, and
        refuses (installing nothing) one that does not."""
        script = self.repo / "deploy/fjord-nats-install"
        pinned = re.findall(r"^version=(\S+)$", script.read_text(), re.M)
        if len(pinned) != 1 or not re.fullmatch(r"2\.9\.\d+", pinned[0]):
            raise CheckFailed(f"fjord-nats-install should pin one nats-server 2.9 release (version=2.9.N), found {pinned}")
        work = self.tmp / "install"
        (work / "nats-server-vX-linux-x").mkdir(parents=True)
        shutil.copy(self.nats_server, work / "nats-server-vX-linux-x/nats-server")
        tarball = work / "nats.tar.gz"
        subprocess.run(["tar", "-czf", str(tarball), "-C", str(work), "nats-server-vX-linux-x"], check=True)
        digest = subprocess.run(["sha256sum", str(tarball)], capture_output=True, text=True, check=True).stdout.split()[0]
        dest = work / "bin"
        dest.mkdir()
        env = {**os.environ, "NATS_INSTALL_DIR": str(dest)}
        wrong = subprocess.run([str(script), f"file://{tarball}", "0" * 64], env=env, capture_output=True, text=True)
        if wrong.returncode == 0 or (dest / "nats-server").exists():
            raise CheckFailed(f"fjord-nats-install accepted a tarball that does not match its SHA-256: {wrong.stderr}")
        right = subprocess.run([str(script), f"file://{tarball}", digest], env=env, capture_output=True, text=True)
        if right.returncode != 0 or not os.access(dest / "nats-server", os.X_OK):
            raise CheckFailed(f"fjord-nats-install refused a matching tarball: {right.stdout}{right.stderr}")
        self.verdicts.append(f"fjord-nats-install (pinned v{pinned[0]}) refuses a wrong SHA-256 and installs a matching tarball")

    async def run(self) -> None:
        self.install_script_checks_its_download()
        ports = [{"client": free_port(), "cluster": free_port(), "monitor": free_port()} for _ in range(3)]
        routes = ",".join(f"127.0.0.1:{p['cluster']}" for p in ports)
        self.servers = [self.new_server(i + 1, routes, p) for i, p in enumerate(ports)]
        for s in self.servers:
            s.unit.start()
        self.check_secret_files(self.servers[0])
        leader = await self.cluster_formed()
        self.verdicts.append(f"3 servers formed JetStream cluster 'fjord' (meta leader {leader})")

        urls = [s.url for s in self.servers]
        await refused(urls, None)
        await refused(urls, "not-" + self.token)
        self.verdicts.append("clients without the token or with a wrong one refused (Authorization Violation)")

        async def quiet(_exc):  # the connection to a killed server breaks on purpose
            pass

        nc = await nats.connect(servers=urls, token=self.token, connect_timeout=2, reconnect_time_wait=0.2,
                                max_reconnect_attempts=-1, error_cb=quiet)
        try:
            await self.stream_survives_a_kill(nc)
            await self.wrong_route_password_refused(routes)
            if self.lb_bin:
                await self.lb_creates_fjord_streams(nc, urls)
        finally:
            await nc.close()

        for s in self.servers:
            rc = s.unit.stop()
            if rc != 0:
                raise CheckFailed(f"{s.name} exited {rc} on the unit's KillSignal= (systemd would report the stop as failed)")
        self.verdicts.append(f"every server exited 0 on KillSignal={self.servers[0].unit.settings.get('KillSignal', ['SIGTERM'])[-1]}")

    def check_secret_files(self, server: Server) -> None:
        run_dir = Path(server.unit.env["RUNTIME_DIRECTORY"])
        if stat.S_IMODE(run_dir.stat().st_mode) != 0o700:
            raise CheckFailed(f"RuntimeDirectory is {oct(stat.S_IMODE(run_dir.stat().st_mode))}, not 0700")
        files = {"client-secrets.conf": self.token, "cluster-secrets.conf": self.route_password}
        for name, secret in files.items():
            f = run_dir / name
            if not f.is_file():
                raise CheckFailed(f"fjord-nats-config wrote no {name}")
            mode = stat.S_IMODE(f.stat().st_mode)
            if mode != 0o600:
                raise CheckFailed(f"{name} is {oct(mode)}, not 0600")
            if secret not in f.read_text():
                raise CheckFailed(f"{name} does not hold its secret")
        for secret in files.values():
            for f in [self.unit, self.conf, self.repo / "deploy/fjord-nats.env.example"]:
                if secret in f.read_text():
                    raise CheckFailed(f"{f} holds a secret")
        self.verdicts.append("secrets written 0600 into a 0700 runtime directory, nowhere else")

    async def cluster_formed(self) -> str:
        def formed():
            leaders = set()
            for s in self.servers:
                if not s.unit.running():
                    raise CheckFailed(f"{s.name} exited:\n{s.unit.log_tail()}")
                routes = s.monitor("/routez")["num_routes"]
                meta = s.monitor("/jsz").get("meta_cluster") or {}
                if routes != 2 or meta.get("cluster_size") != 3 or not meta.get("leader"):
                    return None
                leaders.add(meta["leader"])
            return leaders.pop() if len(leaders) == 1 else None

        try:
            return await eventually("the three servers to route to each other and elect a JetStream leader", 60, formed)
        except CheckFailed:
            for s in self.servers:
                say(f"--- {s.name} log:\n{s.unit.log_tail()}")
            raise

    async def stream_survives_a_kill(self, nc) -> None:
        js = nc.jetstream(timeout=5)
        await eventually("the R3 stream to be created", 30, lambda: js.add_stream(
            StreamConfig(name=STREAM, subjects=["fjord-check.>"], storage=StorageType.FILE, num_replicas=3)))
        sent: list[bytes] = [f"before-{i}".encode() for i in range(20)]
        big = os.urandom(6 * 1024 * 1024)
        sent.append(big)
        for i, payload in enumerate(sent):
            await js.publish(f"fjord-check.{i}", payload, headers={"Nats-Msg-Id": f"m{i}"})

        async def placed():
            info = await js.stream_info(STREAM)
            c = info.cluster
            if c and c.leader and len(c.replicas or []) == 2 and all(r.current for r in c.replicas):
                return c.leader
            return None

        old_leader = await eventually("the stream's 3 replicas to be current", 30, placed)
        victim = next(s for s in self.servers if s.name == old_leader)
        victim.unit.kill9()

        async def new_leader():
            info = await js.stream_info(STREAM)
            if info.cluster and info.cluster.leader and info.cluster.leader != old_leader:
                return info.cluster.leader
            return None

        leader = await eventually(f"a new stream leader after killing {old_leader}", 30, new_leader)
        after = [f"after-{i}".encode() for i in range(5)]
        for i, payload in enumerate(after):
            n = len(sent) + i
            # Retried with the same message id, so a retry is stored once.
            await eventually(f"message {n} to be acknowledged with {old_leader} down", 20,
                             lambda n=n, payload=payload: js.publish(f"fjord-check.{n}", payload,
                                                                     headers={"Nats-Msg-Id": f"m{n}"}))
        sent += after
        for seq, payload in enumerate(sent, 1):
            msg = await js.get_msg(STREAM, seq)
            if msg.data != payload:
                raise CheckFailed(f"message {seq} changed after the kill ({len(msg.data)} bytes, sent {len(payload)})")
        info = await js.stream_info(STREAM)
        if info.state.messages != len(sent):
            raise CheckFailed(f"the stream holds {info.state.messages} messages, {len(sent)} were acknowledged")
        self.verdicts.append(
            f"R3 stream kept all {len(sent)} acknowledged messages (one of 6 MiB) when its leader {old_leader} "
            f"was killed with SIGKILL; {leader} took over")

        victim.unit.start()

        def caught_up():
            for account in victim.monitor("/jsz?streams=true").get("account_details", []):
                for stream in account.get("stream_detail", []):
                    if stream["name"] == STREAM and stream["state"]["messages"] == len(sent):
                        return True
            return None

        await eventually(f"{old_leader}, started again on its store, to hold all {len(sent)} messages", 60, caught_up)
        self.verdicts.append(f"{old_leader} started again on its store and caught up")

    async def wrong_route_password_refused(self, routes: str) -> None:
        ports = {"client": free_port(), "cluster": free_port(), "monitor": free_port()}
        intruder = self.new_server(4, routes, ports, name="fjord-nats-intruder",
                                   credentials=self.credentials(route_password="wrong-" + self.route_password))
        self.others.append(intruder.unit)
        intruder.unit.start()
        await eventually("the cluster to refuse the route with a wrong password", 30,
                         lambda: "authorization violation" in intruder.log().lower())
        if intruder.monitor("/routez")["num_routes"] != 0:
            raise CheckFailed("a server with a wrong route password has a route into the cluster")
        for s in self.servers:
            if s.monitor("/routez")["num_routes"] != 2:
                raise CheckFailed(f"{s.name} has {s.monitor('/routez')['num_routes']} routes with the intruder running, not 2")
        intruder.unit.stop()
        self.verdicts.append("a server with a wrong route password was refused (Authorization Violation)")

    async def lb_creates_fjord_streams(self, nc, urls: list[str]) -> None:
        unit_path = self.repo / "deploy/fjord-lb.service"
        lb = Unit(unit_path, self.tmp / "fjord-lb",
                  programs={"/usr/local/bin/fjord-lb": self.lb_bin},
                  overrides={
                      "LB_LISTEN": f"127.0.0.1:{free_port()}",
                      # Nothing listens there: the lb keeps retrying the control plane,
                      # and connects to the queue all the same.
                      "LB_CONTROL_PLANE": f"http://127.0.0.1:{free_port()}",
                      "LB_NATS_URL": ",".join(urls),
                  },
                  credentials={"lb-token": secrets.token_hex(16), "nats-token": self.token}, repo=self.repo)
        replicas = lb.env.get("LB_NATS_REPLICAS")
        if replicas != "3":
            raise CheckFailed(f"deploy/fjord-lb.env.example sets LB_NATS_REPLICAS={replicas}, not 3")
        self.others.append(lb)
        lb.start()
        js = nc.jetstream(timeout=5)

        async def created():
            if not lb.running():
                raise CheckFailed(f"fjord-lb exited {lb.process.returncode}:\n{lb.log_tail()}")
            for name in FJORD_STREAMS:
                info = await js.stream_info(name)
                if info.config.num_replicas != 3 or len(info.cluster.replicas or []) != 2:
                    return None
            return True

        try:
            await eventually("fjord-lb to create Fjord's streams with 3 replicas", 60, created)
        except CheckFailed:
            say(f"--- fjord-lb log:\n{lb.log_tail()}")
            raise
        lb.stop()
        self.verdicts.append(f"fjord-lb, run from its unit, created {', '.join(FJORD_STREAMS)} with 3 replicas")

    def cleanup(self) -> None:
        for u in [s.unit for s in self.servers] + self.others:
            if u.running():
                u.process.kill()
                u.process.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[2]))
    ap.add_argument("--nats-server", default=shutil.which("nats-server")
                    or next((p for p in ("/usr/bin/nats-server", "/usr/sbin/nats-server") if os.path.exists(p)), None))
    ap.add_argument("--conf")
    ap.add_argument("--lb-bin")
    args = ap.parse_args(argv)
    if not args.nats_server:
        print("check_nats: nats-server is not installed (Debian: apt-get install nats-server)", file=sys.stderr)
        return 2
    check = Check(args)
    try:
        asyncio.run(check.run())
    except Exception as exc:  # a CheckFailed, or the client's own error (e.g. a refused payload)
        for v in check.verdicts:
            say(f"ok: {v}")
        reason = str(exc) if isinstance(exc, CheckFailed) else f"{type(exc).__name__}: {exc}"
        say(f"FAILED: {reason}")
        return 1
    finally:
        check.cleanup()
    for v in check.verdicts:
        say(f"ok: {v}")
    version = subprocess.run([args.nats_server, "--version"], capture_output=True, text=True).stdout.strip()
    say(f"ok: {len(check.verdicts)} checks passed ({version}{', fjord-lb included' if args.lb_bin else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
