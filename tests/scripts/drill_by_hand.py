#!/usr/bin/env python3
"""Run a local-target drill by hand, the way `firedrill run` will (manual check).

This is not the engine and is not used by it. It exists so the shell in a drill
file and its runbook can be checked on a real host before (and independently
of) the Rust engine: it reads the drill file, exports the built-in variables
and `vars`, starts the `services` (each in its own process group) and awaits
their `ready` probes, runs the steps one at a time in dependency order, checks
the steady state right before the first fault, injects `kill` / `delete` /
`run` faults, runs the recovery (a `run:` shell or the runbook's sh blocks,
twice with `check: idempotent`), then waits for the steady state, reads the
`data:` heartbeat and compares recovery time and data loss with the
objectives. At the end it ends every process of the run (found by the
FIREDRILL_RUN_ID marker in their environment, as the engine does) and removes
WORKDIR.

A runbook step's code blocks run together in one `/bin/sh -c` under `set -e`,
in the runbook's directory, as the engine runs them. Simplifications, on
purpose: steps run one at a time; only the local target; TTR is measured up to
the first time the whole steady state holds after the recovery.

Needs python3 and PyYAML (Debian: python3-yaml). Exit 0 when the drill
recovered within its objectives, 1 otherwise.
"""

import argparse
import ctypes
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

try:
    import yaml
except ImportError:
    sys.exit("drill_by_hand.py needs PyYAML: apt-get install python3-yaml")

START = time.monotonic()


def log(message):
    print(f"[{time.monotonic() - START:7.2f}s] {message}", flush=True)


class DrillFailed(Exception):
    pass


def duration(text, default):
    if text is None:
        return default
    parts = re.findall(r"([0-9]+)(ms|s|m|h)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise DrillFailed(f"bad duration {text!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(int(n) * scale[u] for n, u in parts)


def expand(text, env):
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), m.group(0)), text)


def sh(command, env, timeout, log_file=None, cwd=None, stderr=subprocess.STDOUT):
    """Runs /bin/sh -c in its own process group; returns (exit, output).
    The output is stdout and stderr interleaved unless `stderr` says otherwise
    (probes check stdout alone)."""
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += f"\n[timed out after {timeout}s]"
        code = -1
    else:
        code = proc.returncode
    if log_file:
        with open(log_file, "a") as f:
            f.write(f"$ {command}\n{out}\n[exit {code}]\n")
    return code, out


class Run:
    def __init__(self, path, keep, overrides=()):
        self.path = os.path.abspath(path)
        with open(self.path) as f:
            self.drill = yaml.safe_load(f)
        self.keep = keep
        self.runbook_override = None
        self.rerun_each = False
        self.run_id = time.strftime("byhand-%Y%m%dT%H%M%S-") + str(os.getpid())
        self.workdir = tempfile.mkdtemp(prefix=f"firedrill-{self.drill['name']}-")
        self.run_dir = tempfile.mkdtemp(prefix=f"firedrill-run-{self.drill['name']}-")
        os.makedirs(os.path.join(self.run_dir, "logs"))
        builtins = {
            "WORKDIR": self.workdir,
            "RUN_ID": self.run_id,
            "DRILL": self.drill["name"],
            "SCENARIO_DIR": os.path.dirname(self.path),
            "RUN_DIR": self.run_dir,
            "FIREDRILL_RUN_ID": self.run_id,
        }
        env = dict(os.environ)
        env.update(builtins)
        variables = {k: str(v) for k, v in (self.drill.get("vars") or {}).items()}
        for item in overrides:
            name, _, value = item.partition("=")
            variables[name] = value
        env.update(variables)
        for _ in range(8):
            for name in variables:
                env[name] = expand(env[name], env)
        self.env = env
        self.probes = self.drill.get("probes") or {}
        self.services = {}
        self.first_fault = None
        self.heartbeat_stop = threading.Event()
        self.heartbeat_thread = None
        log(f"run {self.run_id}: WORKDIR={self.workdir} RUN_DIR={self.run_dir}")

    # --- probes -----------------------------------------------------------
    def probe_spec(self, ref):
        if isinstance(ref, str):
            if ref not in self.probes:
                raise DrillFailed(f"unknown probe {ref}")
            return ref, self.probes[ref]
        return "inline", ref

    def probe_once(self, ref):
        name, spec = self.probe_spec(ref)
        timeout = duration(spec.get("timeout"), 10)
        if "command" in spec:
            expect = spec.get("expect") or {}
            code, out = sh(spec["command"], self.env, timeout, stderr=subprocess.DEVNULL)
            ok = code == expect.get("exit", 0)
            if ok and expect.get("stdout_contains") is not None:
                ok = expect["stdout_contains"] in out
            if ok and expect.get("stdout_matches") is not None:
                ok = re.search(expect["stdout_matches"], out) is not None
            return ok, f"exit {code}"
        if "http" in spec:
            http = spec["http"]
            try:
                with urllib.request.urlopen(expand(http["url"], self.env), timeout=timeout) as resp:
                    status, body = resp.status, resp.read().decode(errors="replace")
            except urllib.error.HTTPError as e:
                status, body = e.code, ""
            except OSError as e:
                return False, str(e)
            want = http.get("status")
            ok = status == want if want else 200 <= status < 300
            if ok and http.get("body_contains") is not None:
                ok = http["body_contains"] in body
            return ok, f"HTTP {status}"
        if "tcp" in spec:
            host, port = expand(spec["tcp"]["address"], self.env).rsplit(":", 1)
            try:
                socket.create_connection((host, int(port)), timeout=timeout).close()
                return True, "connected"
            except OSError as e:
                return False, str(e)
        raise DrillFailed(f"probe {name}: only command, http and tcp probes are supported here")

    def await_probe(self, ref, within):
        name, spec = self.probe_spec(ref)
        interval = duration(spec.get("interval"), 1)
        deadline = time.monotonic() + within
        while True:
            ok, detail = self.probe_once(ref)
            if ok:
                return
            if time.monotonic() > deadline:
                raise DrillFailed(f"probe {name} did not pass within {within}s ({detail})")
            time.sleep(interval)

    def steady_state_holds(self):
        for ref in self.drill.get("steady_state") or []:
            ok, detail = self.probe_once(ref)
            if not ok:
                return False, f"{ref}: {detail}"
        return True, ""

    # --- services, heartbeat ---------------------------------------------
    def start_services(self):
        for name, service in (self.drill.get("services") or {}).items():
            env = dict(self.env)
            for key, value in (service.get("env") or {}).items():
                env[key] = expand(str(value), env)
            out = open(os.path.join(self.run_dir, "logs", f"{name}.log"), "a")
            proc = subprocess.Popen(
                ["/bin/sh", "-c", service["run"]],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            self.services[name] = proc
            log(f"service {name} started, pid {proc.pid}")
        for name, service in (self.drill.get("services") or {}).items():
            if service.get("ready") is not None:
                self.await_probe(service["ready"], duration(service.get("ready_timeout"), 60))
                log(f"service {name} ready")

    def start_heartbeat(self):
        data = self.drill.get("data")
        if not data:
            return
        every = duration(data.get("every"), 1)

        def beat():
            while not self.heartbeat_stop.is_set():
                sh(data["write"], self.env, 10, os.path.join(self.run_dir, "logs", "heartbeat.log"))
                self.heartbeat_stop.wait(every)

        self.heartbeat_thread = threading.Thread(target=beat, daemon=True)
        self.heartbeat_thread.start()

    # --- steps ------------------------------------------------------------
    def ordered_steps(self):
        steps = self.drill["steps"]
        done, order = set(), []
        while len(order) < len(steps):
            ready = [s for s in steps if s["id"] not in done and set(s.get("needs") or []) <= done]
            if not ready:
                raise DrillFailed("cycle in needs")
            order.append(ready[0])
            done.add(ready[0]["id"])
        return order

    def run_shell_step(self, label, command, timeout, retries, delay, expect=None, cwd=None):
        expect = expect or {}
        step_log = os.path.join(self.run_dir, "logs", f"{re.sub('[^a-z0-9-]+', '-', label.lower())}.log")
        for attempt in range(retries + 1):
            code, out = sh(command, self.env, timeout, step_log, cwd)
            problem = None
            if code != int(expect.get("exit", 0)):
                problem = f"exit {code}"
            elif expect.get("stdout_contains") and expect["stdout_contains"] not in out:
                problem = f"output lacks {expect['stdout_contains']!r}"
            elif expect.get("stdout_matches") and not re.search(expect["stdout_matches"], out):
                problem = f"output does not match {expect['stdout_matches']!r}"
            if problem is None:
                return out
            log(f"  {label}: attempt {attempt + 1} failed ({problem})")
            if attempt < retries:
                time.sleep(delay)
        tail = "\n".join(out.strip().splitlines()[-15:])
        raise DrillFailed(f"{label} failed ({problem}):\n{tail}")

    def fault(self, step):
        fault = step["fault"]
        if self.first_fault is None:
            for attempt in range(3):
                ok, detail = self.steady_state_holds()
                if ok:
                    break
                time.sleep(1)
            else:
                raise DrillFailed(f"system not healthy before the drill ({detail})")
            self.heartbeat_stop.set()
            self.first_fault = time.time()
            log("steady state holds; first fault starts" + (", heartbeat writer stopped" if self.heartbeat_thread else ""))
        if "kill" in fault:
            names = fault["kill"]["service"]
            names = [names] if isinstance(names, str) else names
            sig = fault["kill"].get("signal") or "KILL"
            sig = getattr(signal, sig if sig.startswith("SIG") else "SIG" + sig)
            for name in names:
                os.killpg(self.services[name].pid, sig)
            log(f"  killed {', '.join(names)} with {sig.name}")
        elif "delete" in fault:
            paths = fault["delete"]["path"]
            paths = [paths] if isinstance(paths, str) else paths
            root = os.path.realpath(self.workdir)
            for written in paths:
                path = os.path.realpath(os.path.join(os.path.dirname(self.path), expand(written, self.env)))
                if not path.startswith(root + os.sep):
                    raise DrillFailed(f"refusing to delete {path}: outside WORKDIR")
                if os.path.isdir(path):
                    shutil.rmtree(path)
                elif os.path.lexists(path):
                    os.unlink(path)
                log(f"  deleted {path}")
        elif "run" in fault:
            self.run_shell_step(step["id"], fault["run"], duration(step.get("timeout"), 300), 0, 1)
        else:
            raise DrillFailed(f"{step['id']}: fault kind not supported by this script")

    def runbook(self, path, idempotent):
        """Runs the runbook; `check: idempotent` runs it all a second time
        (the engine's check). --rerun-each also runs every step twice in a row,
        the harsher "died right after this step" case."""
        steps = parse_runbook(path)
        log(f"  runbook {path}: {len(steps)} steps")
        for round_ in (1, 2) if idempotent else (1,):
            for title, blocks in steps:
                if not blocks:
                    log(f"  [{round_}] {title}: manual step, unverified")
                    continue
                # As the engine does: the step's blocks in one shell, under
                # `set -e`, in the runbook's directory; the blocks' attributes
                # apply to the step.
                attrs = {}
                for block_attrs, _ in blocks:
                    attrs.update(block_attrs)
                script = "set -e\n" + "".join(code for _, code in blocks)
                for again in (False, True) if self.rerun_each else (False,):
                    label = f"runbook {title}" + (" (re-run)" if round_ == 2 or again else "")
                    t0 = time.monotonic()
                    self.run_shell_step(
                        label,
                        script,
                        duration(attrs.get("timeout"), 300),
                        int(attrs.get("retries", 0)),
                        duration(attrs.get("retry_delay"), 1),
                        attrs,
                        os.path.dirname(os.path.abspath(path)),
                    )
                    log(f"  [{round_}{'+' if again else ''}] {title}: ok in {time.monotonic() - t0:.1f}s")

    def run_steps(self):
        for step in self.ordered_steps():
            sid = step["id"]
            timeout = duration(step.get("timeout"), 300)
            retries = int(step.get("retries") or 0)
            delay = duration(step.get("retry_delay"), 1)
            log(f"step {sid}")
            if "run" in step:
                self.run_shell_step(sid, step["run"], timeout, retries, delay)
            elif "fault" in step:
                self.fault(step)
            elif "recover" in step:
                recover = step["recover"]
                if "runbook" in recover:
                    path = self.runbook_override or os.path.join(
                        os.path.dirname(self.path), expand(recover["runbook"], self.env)
                    )
                    self.runbook(path, recover.get("check") == "idempotent")
                else:
                    self.run_shell_step(sid, recover["run"], timeout, retries, delay)
            elif "probe" in step:
                refs = step["probe"]
                for ref in [refs] if isinstance(refs, str) else refs:
                    self.await_probe(ref, timeout)
            elif "wait" in step:
                time.sleep(duration(step["wait"], 0))
            else:
                raise DrillFailed(f"{sid}: action not supported by this script")

    def check_objectives(self):
        objectives = self.drill["objectives"]
        rto = duration(objectives["rto"], None)
        deadline = time.monotonic() + rto
        while True:
            ok, detail = self.steady_state_holds()
            if ok:
                break
            if time.monotonic() > deadline:
                raise DrillFailed(f"steady state not back within rto ({detail})")
            time.sleep(1)
        ttr = time.time() - self.first_fault
        log(f"steady state holds again: TTR <= {ttr:.1f}s (rto {rto:g}s)")
        failed = []
        if ttr > rto:
            failed.append(f"TTR {ttr:.1f}s above rto {rto:g}s")
        data = self.drill.get("data")
        if data:
            code, out = sh(data["read"], self.env, 10, stderr=subprocess.DEVNULL)
            value = out.strip()
            if code != 0 or not value.isdigit():
                raise DrillFailed(f"data read failed: exit {code}, output {value!r}")
            loss = max(0.0, self.first_fault - int(value) / 1000)
            rpo = duration(objectives.get("rpo"), None) if objectives.get("rpo") else None
            log(f"data loss {loss * 1000:.0f}ms (rpo {rpo}s)")
            if rpo is not None and loss > rpo:
                failed.append(f"data loss {loss:.1f}s above rpo {rpo:g}s")
        if failed:
            raise DrillFailed("; ".join(failed))

    # --- cleanup ----------------------------------------------------------
    def marked_pids(self):
        marker = f"FIREDRILL_RUN_ID={self.run_id}".encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker in f.read().split(b"\0"):
                        pids.append(int(entry))
            except OSError:
                pass
        return pids

    def cleanup(self):
        self.heartbeat_stop.set()
        for proc in self.services.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # A killed process loses its environment (and so the marker) while it
        # is a zombie: remember every pid seen and wait until each is reaped.
        seen = {proc.pid for proc in self.services.values()}
        for _ in range(40):
            pids = self.marked_pids()
            seen.update(pids)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            reap()
            seen = {pid for pid in seen if os.path.exists(f"/proc/{pid}")}
            if not seen:
                break
            time.sleep(0.25)
        left = sorted(seen)
        if left:
            log(f"processes of this run still there: {left}")
        if self.keep:
            log(f"kept WORKDIR={self.workdir} RUN_DIR={self.run_dir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
            log(f"removed WORKDIR; logs in {self.run_dir}")
        return not left


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


FENCE = re.compile(r"^(```+|~~~+)\s*([A-Za-z]*)\s*(\{.*\})?\s*$")


def parse_runbook(path):
    """[(title, [(attrs, code)])] for every heading below the title."""
    steps, current, fence, lang, attrs, code = [], None, None, None, None, []
    with open(path) as f:
        lines = f.read().splitlines()
    for line in lines:
        if fence:
            if line.startswith(fence):
                if lang in ("sh", "bash", "shell", "console") and current is not None:
                    text = "\n".join(code)
                    if lang == "console":
                        text = "\n".join(l[2:] for l in code if l.startswith("$ "))
                    current[1].append((attrs, text + "\n"))
                fence = None
            else:
                code.append(line)
            continue
        m = FENCE.match(line)
        if m:
            fence, lang, code = m.group(1), m.group(2), []
            attrs = {}
            if m.group(3):
                for item in shlex.split(m.group(3)[1:-1]):
                    key, _, value = item.partition("=")
                    attrs[key] = value
            continue
        h = re.match(r"^(#+)\s+(.*)$", line)
        if h and len(h.group(1)) > 1:
            current = (h.group(2).strip(), [])
            steps.append(current)
    return steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("drill")
    parser.add_argument("--keep", action="store_true", help="keep WORKDIR")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="override a drill variable")
    parser.add_argument("--rerun-each", action="store_true", help="also run every runbook step twice in a row")
    parser.add_argument("--runbook", help="run this runbook instead of the drill's (e.g. a stale fixture)")
    args = parser.parse_args()
    # Orphans of the run (members a runbook put in the background) become our
    # children, as they do with the engine, so they can be found and reaped.
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    run = Run(args.drill, args.keep, args.var)
    run.runbook_override = os.path.abspath(args.runbook) if args.runbook else None
    run.rerun_each = args.rerun_each
    verdict = 1
    try:
        run.start_services()
        run.start_heartbeat()
        run.run_steps()
        if run.first_fault is None:
            raise DrillFailed("no fault step ran")
        run.check_objectives()
        verdict = 0
        log("PASSED")
    except DrillFailed as e:
        log(f"FAILED: {e}")
    except KeyboardInterrupt:
        log("interrupted")
        verdict = 130
    finally:
        if not run.cleanup():
            verdict = verdict or 1
    return verdict


if __name__ == "__main__":
    sys.exit(main())
