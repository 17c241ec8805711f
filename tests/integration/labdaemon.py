# wanbalanced under test: started in a lab's router namespace with its own config, runtime dir
# and log; wanbalancectl run against it; readiness and state polled with progress lines.

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from labcore import SYSTEMD_ENV, LabError, program, wait_until

if TYPE_CHECKING:
    from labkit import Lab


class Daemon:
    """A wanbalanced running in the router namespace of a Lab."""

    def __init__(self, lab: Lab, config_path: Path, runtime_dir: Path, log_path: Path,
                 extra_args: Sequence[str], env: dict[str, str] | None, ns: str = "rtr"):
        self.lab = lab
        self.ns = ns      # the lab namespace it runs in (an HA lab has two routers)
        self.config_path = config_path
        self.runtime_dir = runtime_dir
        self.log_path = log_path
        self.argv = [str(program("wanbalanced")), "--config", str(config_path),
                     "--runtime-dir", str(runtime_dir), *extra_args]
        full_env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_ENV}
        full_env.update(env or {})
        with open(log_path, "ab") as log:
            self.proc = lab.popen(ns, self.argv, stdout=log, stderr=log, env=full_env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def running(self) -> bool:
        return self.proc.poll() is None

    @property
    def ctl_command(self) -> list[str]:
        """wanbalancectl, pointed at this daemon."""
        return [str(program("wanbalancectl")), "--runtime-dir", str(self.runtime_dir)]

    def ctl(self, *args: str, check: bool = False, timeout: float = 10
            ) -> subprocess.CompletedProcess:
        """Run wanbalancectl --runtime-dir RUNDIR ARGS in the daemon's namespace."""
        return self.lab.run(self.ns, [*self.ctl_command, *args], check=check, timeout=timeout)

    def status(self) -> dict:
        """`wanbalancectl status --json`, parsed; raises LabError when it does not answer."""
        proc = self.ctl("status", "--json")
        if proc.returncode != 0:
            raise LabError(f"wanbalancectl status exited {proc.returncode}: {proc.stderr.strip()}")
        return json.loads(proc.stdout)

    def _try_status(self) -> dict | None:
        if not self.running():
            raise LabError(f"wanbalanced exited with {self.proc.returncode} before it was ready; "
                           f"log:\n{self.log_tail()}")
        try:
            return self.status()
        except (LabError, ValueError, subprocess.TimeoutExpired):
            return None

    def wait_ready(self, timeout: float = 10) -> dict:
        """Poll `wanbalancectl status --json` until it answers; returns the status."""
        try:
            return wait_until(self._try_status, timeout, "wanbalanced to become ready",
                              interval=0.05)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; log:\n{self.log_tail()}") from None

    def wan(self, name: str) -> dict:
        for wan in self.status()["wans"]:
            if wan["name"] == name:
                return wan
        raise LabError(f"status has no WAN named {name!r}")

    def wan6(self, name: str) -> dict | None:
        """The WAN's IPv6 status (DESIGN §5: state, since, gateway, rtt_ms, loss_pct), or None
        for a WAN without gateway6."""
        return self.wan(name).get("ipv6")

    def wait_state(self, wan: str, state: str, timeout: float = 10, family: str = "ipv4"
                   ) -> dict:
        """Wait until status shows WAN `wan` in `state` (for "ipv6": its ipv6 object's state);
        returns that WAN's status entry."""
        def check():
            entry = self.wan(wan)
            current = entry if family == "ipv4" else entry.get("ipv6") or {}
            return entry if current.get("state") == state else None
        what = f"WAN {wan} to be {state}" + (" for IPv6" if family == "ipv6" else "")
        return wait_until(check, timeout, what, interval=0.05)

    def reload(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM and wait; returns the exit code (negative: killed by that signal)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise LabError(f"wanbalanced ignored SIGTERM for {timeout}s; killed it. "
                               f"log:\n{self.log_tail()}") from None
        return self.proc.returncode

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])
