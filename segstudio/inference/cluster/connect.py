"""Reaching Ray without exposing this machine, and without waiting minutes for nothing.

Whoever can talk to a Ray runtime's ports can run code in it (Ray's security page), so:

- A local runtime (`--ray` with no address) listens on loopback only. Ray uses 127.0.0.1 for every
  service (GCS, raylet, object manager, workers' and actors' gRPC servers, agents) when its
  multi-machine mode is off, which it is by default on macOS and Windows; segstudio turns it off on
  Linux too with Ray's own switch, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`. After start-up the node's
  address is checked: a runtime that is not on loopback is shut down and refused.
- A local runtime uses Ray's token authentication where the installed Ray has it (2.5x and later):
  `RAY_AUTH_MODE=token` with a fresh random token for this run in `RAY_AUTH_TOKEN` (inherited by the
  runtime's processes; nothing is written to `~/.ray`), unless the user gave a token
  (`RAY_AUTH_TOKEN` or `RAY_AUTH_TOKEN_PATH`). Other local users cannot join it either.
- An address (`HOST:PORT`, `ray://HOST:PORT`, or `auto`'s recorded one) is probed with one TCP
  connect of a few seconds before `ray.init`, which otherwise retries for many minutes when nothing
  listens there.

Joining a cluster (`--ray auto`, `--ray HOST:PORT`) uses the cluster's own settings: a cluster
started with token authentication needs its token here (`RAY_AUTH_TOKEN`, or `~/.ray/auth_token`
on a node where `ray start` saved it); see README, "Beyond one machine".
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from segstudio.core.errors import UserError

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install -e ".[cluster]"'
PROBE_TIMEOUT_S = 3.0  # a head node on a LAN answers a TCP connect in milliseconds
LOCAL = (None, "", "local")
# Ray's switch between one-machine mode (loopback everywhere) and cluster mode (the node's address)
_SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_TOKEN_SOURCES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


class RayUnavailable(UserError):
    """Ray is not installed, or the cluster cannot be reached."""


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise RayUnavailable(f"--ray needs Ray (Data and Train): {INSTALL_HINT} ({e})") from None
    return ray


def split_address(address: str) -> tuple[str, int]:
    """(host, port) of "HOST:PORT", "[V6]:PORT" or "ray://HOST:PORT"; RayUnavailable for anything else."""
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = rest.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RayUnavailable(f"--ray {address}: not a Ray address (HOST:PORT, ray://HOST:PORT, auto, or none "
                             "for a runtime on this machine)")
    return host, int(port)


def probe(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """One TCP connect to the address (name lookup included) within `timeout` seconds, or
    RayUnavailable saying that no cluster answers there."""
    host, port = split_address(address)
    result: list[BaseException | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as e:
            result.append(e)
    # a thread: a name lookup has no timeout of its own
    t = threading.Thread(target=connect, name="ray-probe", daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(timeout + 0.5)
    if result and result[0] is None:
        return
    why = (f"no answer in {time.monotonic() - t0:.0f} s" if not result else
           "connection refused" if isinstance(result[0], ConnectionRefusedError) else
           f"cannot resolve {host}" if isinstance(result[0], socket.gaierror) else
           "timed out" if isinstance(result[0], TimeoutError) else
           (getattr(result[0], "strerror", None) or str(result[0]) or type(result[0]).__name__))
    raise RayUnavailable(f"no Ray cluster answers at {address} ({why}). Start one there (`ray start --head "
                         f"--port {port}`), check the address and the firewall, or leave the address out "
                         "to run on this machine")


def check_address(address: str | None) -> None:
    """Probe a given HOST:PORT or ray:// address (a local runtime and `auto` are checked by connect)."""
    if address not in LOCAL and address != "auto":
        probe(str(address))


def _recorded_address(ray: Any) -> str | None:
    """The head address `--ray auto` would use (the cluster `ray start` recorded on this machine),
    or None when none is recorded or this Ray keeps it elsewhere."""
    try:
        from ray._private.services import canonicalize_bootstrap_address
        return canonicalize_bootstrap_address("auto")
    except Exception:  # noqa: BLE001  # no cluster recorded (Ray says so itself), or another Ray version
        return None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _prepare_local_runtime() -> None:
    """The environment a local runtime inherits: loopback only, token authentication on."""
    os.environ[_SINGLE_MACHINE] = "0"
    ray_constants: Any = sys.modules.get("ray._private.ray_constants")
    if ray_constants is not None:  # Ray was imported before: it read the switch then
        ray_constants.ENABLE_RAY_CLUSTER = False
    if os.environ.get("RAY_AUTH_MODE", "").lower() not in ("", "token"):
        log.warning("RAY_AUTH_MODE=%s ignored: a local Ray runtime always uses token authentication",
                    os.environ["RAY_AUTH_MODE"])
    os.environ["RAY_AUTH_MODE"] = "token"
    if not any(os.environ.get(k) for k in _TOKEN_SOURCES):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)  # this run's: 256 bits, as `ray` makes them
    if "ray._raylet" in sys.modules:  # Ray caches its config and token: read them again
        try:
            raylet: Any = sys.modules["ray._raylet"]
            raylet.Config.initialize("")
            raylet.AuthenticationTokenLoader.instance().reset_cache()
        except AttributeError:  # a Ray without token authentication
            pass


def _token_auth_on() -> bool | None:
    """Whether the running Ray uses token authentication; None when this Ray has none."""
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
    except ImportError:
        return None
    return bool(is_token_auth_enabled())


def _check_local_runtime(ray: Any) -> None:
    """Refuse (and stop) a local runtime that is reachable from other machines."""
    hosts = {str(n.get("NodeManagerAddress", "")) for n in ray.nodes()}
    if not hosts or not all(_loopback(h) for h in hosts):
        ray.shutdown()
        raise RayUnavailable(f"the local Ray runtime listened on {', '.join(sorted(hosts)) or 'an unknown address'}"
                             ", not on 127.0.0.1 only: stopped it. Start a cluster yourself (`ray start --head`"
                             ", README: Beyond one machine) and pass its address")
    if _token_auth_on() is False:
        log.warning("this Ray (%s) did not turn on token authentication: the local runtime relies on "
                    "listening on 127.0.0.1 alone", getattr(ray, "__version__", "?"))


def connect(address: str | None, num_cpus: int | None = None, runtime_env: dict | None = None) -> Any:
    """Ray, initialised: None or "local" starts a runtime on this machine (num_cpus of its cores),
    on loopback with token authentication; "auto" joins the cluster this machine belongs to
    (`ray start` ran here); "HOST:PORT" a given head; "ray://HOST:PORT" goes through Ray Client.
    An address where nothing answers is RayUnavailable within seconds."""
    local = address in LOCAL
    running = sys.modules.get("ray")
    if running is not None and getattr(running, "is_initialized", lambda: False)():
        return running  # this process joined a runtime already (a test's, an earlier call's)
    check_address(address)  # before importing Ray: a wrong address is said in seconds
    if local:
        _prepare_local_runtime()
    elif any(os.environ.get(k) for k in _TOKEN_SOURCES) or (Path.home() / ".ray" / "auth_token").exists():
        # Ray >= 2.5x clusters use token authentication, and a driver given an explicit address
        # reads the token only when told to (before ray is imported)
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if address == "auto":
        recorded = _recorded_address(ray)
        if recorded is not None:
            probe(recorded)
    kw: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                          "log_to_driver": False}
    if local:  # "local": a runtime of its own even when a `ray start` cluster runs on this machine
        kw.update(address="local", num_cpus=num_cpus or os.cpu_count() or 1, _node_ip_address="127.0.0.1")
        if runtime_env is not None:
            kw["runtime_env"] = runtime_env
    else:
        kw["address"] = address
    try:
        ray.init(**kw)
    except Exception as e:  # a wrong address, no cluster there: one line  # noqa: BLE001
        raise RayUnavailable(f"cannot start or reach Ray at {address or 'a local runtime'}: "
                             f"{str(e).splitlines()[0][:200] if str(e) else type(e).__name__}") from None
    if local:
        _check_local_runtime(ray)
    return ray


__all__ = ["RayUnavailable", "check_address", "connect", "import_ray", "probe", "split_address"]
