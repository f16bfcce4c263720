#!/usr/bin/env python3
"""A node-group capacity provider that runs each machine as a local node-agent process.

Used by the end-to-end node autoscaling tests through the control plane's `command` provider:

    process-provider.py STATE_DIR AGENT_BIN CONTROL_PLANE_URL TOKEN_FILE MEMORY_MIB describe
    process-provider.py ... set-desired N
    process-provider.py ... terminate ID

Machines are named sim-1, sim-2, ... and each is a `fjord-node-agent` on a free loopback port,
started in its own session so it outlives this script. STATE_DIR/state.json holds the desired
size and the machines (id, pid, port); STATE_DIR/calls.log records every call with its time.
"""
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time


def load(state_dir):
    path = os.path.join(state_dir, "state.json")
    if not os.path.exists(path):
        return {"desired": 0, "next": 1, "machines": []}
    with open(path) as f:
        return json.load(f)


def save(state_dir, state):
    path = os.path.join(state_dir, "state.json")
    with open(path + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(path + ".tmp", path)


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie is not alive.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(state_dir, agent_bin, control_plane, token_file, memory, machine_id):
    port = free_port()
    log = open(os.path.join(state_dir, f"{machine_id}.log"), "ab")
    proc = subprocess.Popen(
        [agent_bin, "--node-id", machine_id, "--instance-id", machine_id,
         "--listen", f"127.0.0.1:{port}", "--control-plane", control_plane,
         "--token-file", token_file, "--memory-mib", memory,
         "--data-dir", os.path.join(state_dir, machine_id)],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    return {"id": machine_id, "pid": proc.pid, "port": port}


def stop(machine):
    try:
        os.kill(machine["pid"], signal.SIGTERM)
    except OSError:
        pass


def main():
    state_dir, agent_bin, control_plane, token_file, memory = sys.argv[1:6]
    command = sys.argv[6:]
    with open(os.path.join(state_dir, "calls.log"), "a") as f:
        f.write(f"{time.time() * 1000:.0f} {' '.join(command)}\n")
    lock = open(os.path.join(state_dir, "lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    state = load(state_dir)
    if command == ["describe"]:
        machines = [m for m in state["machines"] if alive(m["pid"])]
        print(json.dumps({
            "desired": state["desired"], "min": 0, "max": 100,
            "instances": [{"id": m["id"], "zone": "local", "private_ip": "127.0.0.1",
                           "state": "in-service"} for m in machines],
        }))
    elif len(command) == 2 and command[0] == "set-desired":
        want = int(command[1])
        while len(state["machines"]) < want:
            machine_id = f"sim-{state['next']}"
            state["next"] += 1
            state["machines"].append(start(state_dir, agent_bin, control_plane, token_file, memory, machine_id))
        while len(state["machines"]) > want:
            stop(state["machines"].pop())
        state["desired"] = want
    elif len(command) == 2 and command[0] == "terminate":
        target = [m for m in state["machines"] if m["id"] == command[1]]
        if not target:
            print(f"no machine {command[1]}", file=sys.stderr)
            sys.exit(1)
        stop(target[0])
        state["machines"] = [m for m in state["machines"] if m["id"] != command[1]]
        state["desired"] = max(0, state["desired"] - 1)
    else:
        print(f"unknown command {command}", file=sys.stderr)
        sys.exit(2)
    save(state_dir, state)


if __name__ == "__main__":
    main()
