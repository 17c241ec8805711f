# Harness for the system tests: a cached Debian rootfs (debootstrap) and a Machine booted from
# it with systemd-nspawn inside a lab namespace, driven through nsenter (docs/design.md, Kernel facts).
"""systemkit — a real systemd for tests.

    root = ensure_rootfs()                          # cached under /var/cache/wanbalance-test/
    with Machine(root, netns="/run/netns/wb1234-rtr", binds={"/tmp/debs": "/srv/debs"}) as m:
        m.run("systemctl is-system-running --wait")
        m.write("/etc/wanbalance.json", "...")

The rootfs is keyed by suite, mirror and package list; a Machine runs on an overlayfs over
it (or a copy, where overlayfs is unavailable), so the cache is never modified.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

CACHE_DIR = Path(os.environ.get("WANBALANCE_TEST_CACHE", "/var/cache/wanbalance-test"))
# What the .deb needs at run time (its shlibs Depends) plus what the tests use inside.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "iproute2", "nftables", "libnftnl11", "libmnl0",
            "libnl-3-200", "libnl-route-3-200", "libsystemd0", "libstdc++6", "libgcc-s1")
ROOTFS_FORMAT = 1  # bump when the preparation below changes


class SystemError_(RuntimeError):
    pass


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _os_release() -> dict[str, str]:
    out = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            out[key] = value.strip().strip('"')
    return out


def apt_mirror(suite: str) -> str:
    """The Debian mirror this machine's apt uses for `suite` (deb822 or one-line sources)."""
    candidates: list[tuple[str, list[str]]] = []
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
                    if m:
                        fields[m[1].lower()] = m[2]
                if "deb" in fields.get("types", "").split() and "uris" in fields:
                    for uri in fields["uris"].split():
                        candidates.append((uri, fields.get("suites", "").split()))
        else:
            for line in text.splitlines():
                m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m:
                    candidates.append((m[1], [m[2]]))
    for uri, suites in candidates:
        if suite in suites and "security" not in uri:
            return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def rootfs_key(suite: str, mirror: str) -> str:
    text = "\n".join([str(ROOTFS_FORMAT), suite, mirror, *sorted(PACKAGES)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_rootfs() -> Path:
    """The cached rootfs, built with debootstrap on first use (about 1.5 minutes)."""
    suite = _os_release().get("VERSION_CODENAME", "bookworm")
    mirror = apt_mirror(suite)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    root = CACHE_DIR / f"rootfs-{suite}-{rootfs_key(suite, mirror)}"
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others wait and reuse
        if (root / ".complete").is_file():
            return root
        progress(f"building the test rootfs {root} from {mirror} ({suite}) with debootstrap...")
        start = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=CACHE_DIR))
        try:
            proc = subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), suite,
                 str(tmp), mirror], text=True, capture_output=True, timeout=900)
            if proc.returncode != 0:
                raise SystemError_(f"debootstrap failed ({proc.returncode}):\n"
                                   + "\n".join(proc.stdout.splitlines()[-20:] + proc.stderr.splitlines()[-20:]))
            _prepare_rootfs(tmp)
            (tmp / ".complete").write_text(f"{suite} {mirror}\n" + "\n".join(PACKAGES) + "\n")
            for old in CACHE_DIR.glob(f"rootfs-{suite}-*"):
                if old != root and not old.name.startswith(root.name + "."):
                    shutil.rmtree(old, ignore_errors=True)  # a stale key: free its 250 MB
            tmp.rename(root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        progress(f"test rootfs ready in {time.monotonic() - start:.0f}s")
        return root


def _prepare_rootfs(root: Path) -> None:
    # Downloaded .debs are not needed any more; the apt lists are kept for apt-get -f install.
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    (root / "etc/hostname").write_text("wanbalance-test\n")
    # A fresh machine-id on every boot (systemd writes a transient one when this is empty).
    (root / "etc/machine-id").write_text("")
    # No login prompt on the console pipe.
    for unit in ("console-getty.service", "getty@.service", "systemd-timesyncd.service"):
        link = root / "etc/systemd/system" / unit
        if not link.exists():
            link.symlink_to("/dev/null")


class Machine:
    """A container booted with systemd-nspawn in an existing network namespace."""

    def __init__(self, rootfs: Path, netns: str, binds: dict[str, str] | None = None,
                 name: str | None = None, boot_timeout: float = 60):
        self.rootfs = Path(rootfs)
        self.netns = netns
        self.binds = binds or {}
        self.name = name or "wbtest-" + os.urandom(3).hex()
        self.boot_timeout = boot_timeout
        self.workdir: Path | None = None
        self.root: Path | None = None      # the container's / as seen from the host
        self._overlay = False
        self.proc: subprocess.Popen | None = None
        self.pid1: int | None = None       # the container's systemd, as a host pid
        self.boot_seconds = 0.0

    # -- lifetime ---------------------------------------------------------------------------

    def __enter__(self) -> Machine:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"wanbalance-{self.name}-"))
        self.root = self.workdir / "root"
        self.root.mkdir()
        try:
            self._mount_root()
            self._boot()
        except BaseException:
            self.stop()
            raise

    def _mount_root(self) -> None:
        upper, work = self.workdir / "upper", self.workdir / "work"
        upper.mkdir()
        work.mkdir()
        proc = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                               f"lowerdir={self.rootfs},upperdir={upper},workdir={work}",
                               str(self.root)], capture_output=True, text=True)
        if proc.returncode == 0:
            self._overlay = True
            return
        progress(f"overlayfs unavailable ({proc.stderr.strip()}); copying the rootfs")
        subprocess.run(["cp", "-a", "--reflink=auto", f"{self.rootfs}/.", str(self.root)],
                       check=True)

    def _boot(self) -> None:
        argv = ["systemd-nspawn", "--directory", str(self.root), "--machine", self.name,
                "--register=no", "--keep-unit", "--network-namespace-path", self.netns,
                "--capability=CAP_NET_ADMIN,CAP_NET_RAW", "--console=pipe", "--boot"]
        for host, inside in self.binds.items():
            argv.append(f"--bind-ro={host}:{inside}")
        log = open(self.workdir / "console.log", "wb")
        start = time.monotonic()
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "INVOCATION_ID")}
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        deadline = start + self.boot_timeout
        while self.pid1 is None:
            if self.proc.poll() is not None:
                raise SystemError_(f"systemd-nspawn exited {self.proc.returncode}:\n"
                                   + self.console_tail())
            self.pid1 = self._find_pid1()
            if time.monotonic() > deadline:
                raise SystemError_("systemd-nspawn did not start systemd:\n" + self.console_tail())
            time.sleep(0.05)
        # "degraded" is fine: a unit of the minimal system may fail inside a container.
        while True:
            state = self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemError_(f"the container did not finish booting (state {state!r}):\n"
                                   + self.console_tail())
            time.sleep(0.1)
        self.boot_seconds = time.monotonic() - start

    def _find_pid1(self) -> int | None:
        """The container's PID 1: the descendant of nspawn running systemd."""
        assert self.proc is not None
        queue = [self.proc.pid]
        while queue:
            pid = queue.pop()
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                try:
                    comm = Path(f"/proc/{child}/comm").read_text().strip()
                except OSError:
                    continue
                if comm == "systemd":
                    return child
                queue.append(child)
        return None

    def stop(self, timeout: float = 30) -> None:
        """Power the container off (SIGTERM to nspawn halts it cleanly), then clean up.
        Idempotent; kills what does not stop in time."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                progress(f"{self.name}: no clean halt within {timeout:.0f}s; killing it")
                self.proc.send_signal(signal.SIGTERM)  # the second one means "now"
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
        self.proc = None
        self.pid1 = None
        if self.root is not None and self._overlay:
            for _ in range(50):
                if subprocess.run(["umount", str(self.root)], capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            else:
                subprocess.run(["umount", "-l", str(self.root)], capture_output=True)
            self._overlay = False
        if self.workdir is not None and not os.environ.get("WANBALANCE_KEEP_LAB_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def console_tail(self, lines: int = 40) -> str:
        if self.workdir is None or not (self.workdir / "console.log").exists():
            return ""
        text = (self.workdir / "console.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- inside -----------------------------------------------------------------------------

    def argv(self, cmd: str | Sequence[str]) -> list[str]:
        args = shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]
        if self.pid1 is None:
            raise SystemError_(f"{self.name} is not running")
        return ["nsenter", "-t", str(self.pid1), "-m", "-u", "-i", "-n", "-p", "--", *args]

    def run(self, cmd: str | Sequence[str], check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run cmd inside the container (its mounts, pids and network) as root."""
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "TERM": "dumb"}
        argv = self.argv(cmd)
        proc = subprocess.run(argv, text=True, capture_output=True, timeout=timeout, input=input,
                              env=env)
        if check and proc.returncode != 0:
            raise SystemError_(f"`{shlex.join(argv[8:])}` exited {proc.returncode}: "
                               + (proc.stderr or proc.stdout).strip())
        return proc

    def path(self, inside: str) -> Path:
        """Where a path of the container's file system is, seen from the host."""
        assert self.root is not None
        return self.root / inside.lstrip("/")

    def write(self, inside: str, text: str, mode: int = 0o644) -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text)
        tmp.chmod(mode)
        tmp.replace(target)
