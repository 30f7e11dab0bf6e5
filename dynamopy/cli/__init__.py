"""The `dynamopy` command line: serve, cluster up, put, get, delete, ring, status, members,
config, sim.

Helpers talk HTTP to any node (``--url``, default http://127.0.0.1:8001, or
``DYNAMOPY_URL``). Exit code 0 on success; non-zero with a one-line error on failure.
"""

from __future__ import annotations

import sys

# A Ctrl-C while the command starts up (its imports take about a quarter of a second) exits
# as a later one does: status 130, no traceback of the import under way. This guard covers
# the imports, ``main`` the rest.
try:
    import argparse
    import json
    import os
    from typing import Optional

    # httpx imports its own command line (click, rich, pygments) whenever those are
    # installed, and they are (uvicorn and the load generator need them): a quarter of a
    # node's start-up CPU, for a CLI that dynamopy never runs. Without it, httpx.main says
    # to install httpx[cli]; nothing else in httpx changes.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

    from dynamopy import config as config_mod
    from dynamopy.client import DEFAULT_URL, Client, DynamoError, Session
except KeyboardInterrupt:
    raise SystemExit(130) from None


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows every flag's default (``[default: X]``), once."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS, False) \
                or not action.option_strings:
            return text
        return text + " [default: %(default)s]"


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("dynamopy")
    except Exception:  # noqa: BLE001 - running from a source tree that was not installed
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``: the installed package's version, read only when asked (reading the
    package metadata costs every start-up ~50 ms otherwise)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show the program's version number and exit"):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0,
                         help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"dynamopy {_version()}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    summary = " ".join(__doc__.split("\n\n")[0].split())  # the docstring's first paragraph
    p = argparse.ArgumentParser(prog="dynamopy", description=summary,
                                formatter_class=_Help)
    p.add_argument("--version", action=_VersionAction)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent, name: str, help_text: str, **kw) -> argparse.ArgumentParser:
        return parent.add_parser(name, help=help_text, description=help_text,
                                 formatter_class=_Help, **kw)

    serve = command(sub, "serve", "run one node")
    config_mod.add_arguments(serve)

    cluster = command(sub, "cluster", "local clusters")
    csub = cluster.add_subparsers(dest="cluster_command", required=True, metavar="COMMAND")
    up = command(csub, "up", "start a local cluster on 127.0.0.1 in the foreground")
    up.add_argument("--nodes", type=int, default=3, help="how many nodes (n1..nK)")
    up.add_argument("--base-port", type=int, default=8001,
                    help="HTTP port of n1 (n2 gets the next one...); peer ports are 1000 above")
    up.add_argument("--data-dir", default="./.dynamopy",
                    help="data under DIR/n1.., logs in DIR/n1.log.., the cluster secret in "
                         "DIR/cluster-secret")
    up.add_argument("--n", type=int, default=None,
                    help="replicas per key [default: min(3, nodes)]")
    up.add_argument("--r", type=int, default=None, help="default read quorum [default: min(2, n)]")
    up.add_argument("--w", type=int, default=None,
                    help="default write quorum [default: min(2, n)]")

    env_url = os.environ.get("DYNAMOPY_URL")
    env_token = os.environ.get("DYNAMOPY_API_TOKEN") or None

    def connection(sp: argparse.ArgumentParser, default=None) -> None:
        # `default=argparse.SUPPRESS` on a sub-command's copy lets --url/--token also follow
        # the sub-command (`members leave n2 --url ...`) without resetting an earlier value.
        sp.add_argument("--url", default=default or env_url or DEFAULT_URL,
                        help=f"any node's HTTP URL [env DYNAMOPY_URL; default: {DEFAULT_URL}]")
        sp.add_argument("--token", default=default or env_token,
                        help="API bearer token [env DYNAMOPY_API_TOKEN; default: none]")

    def client_cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = command(sub, name, help_text)
        connection(sp)
        sp.add_argument("--ca", default=os.environ.get("DYNAMOPY_CA") or None,
                        help="PEM CA bundle to verify an HTTPS cluster's certificates "
                             "[env DYNAMOPY_CA; default: the system's CAs]")
        sp.add_argument("--session", default=os.environ.get("DYNAMOPY_SESSION") or None,
                        help="a file remembering the newest version seen per key, sent as "
                             "X-Dynamopy-After so later commands read their own writes "
                             "[env DYNAMOPY_SESSION; default: none]")
        return sp

    put = client_cmd("put", "store a value")
    put.add_argument("key", help="the key (UTF-8, 1..1024 bytes)")
    put.add_argument("value", help="the value; '-' reads standard input, '@FILE' reads a file")
    put.add_argument("--w", type=int, help="write quorum [default: the cluster's W]")
    put.add_argument("--content-type",
                     help="stored and returned with the value [default: application/octet-stream]")
    get = client_cmd("get", "read a value (raw bytes when piped; a newline follows on a terminal)")
    get.add_argument("key", help="the key")
    get.add_argument("--r", type=int, help="read quorum [default: the cluster's R]")
    get.add_argument("--verbose", "-v", action="store_true",
                     help="print the version and content type to stderr")
    delete = client_cmd("delete", "delete a value (writes a tombstone)")
    delete.add_argument("key", help="the key")
    delete.add_argument("--w", type=int, help="write quorum [default: the cluster's W]")
    client_cmd("ring", "members, states, ownership, keys per node and transfers in progress")
    client_cmd("status", "this node's view and the cluster's, as JSON")
    members = client_cmd("members", "list the members (no sub-command) or change membership")
    msub = members.add_subparsers(dest="members_command", metavar="COMMAND")
    late = argparse.ArgumentParser(add_help=False)
    connection(late, default=argparse.SUPPRESS)
    late.add_argument("--ca", default=argparse.SUPPRESS,
                      help="PEM CA bundle to verify an HTTPS cluster's certificates "
                           "[env DYNAMOPY_CA; default: the system's CAs]")
    command(msub, "list", "list the members (the default)", parents=[late])
    mj = command(msub, "join", "add a member by hand (a node started with --join does this "
                               "itself)", parents=[late])
    mj.add_argument("id", help="the new member's id")
    mj.add_argument("node_url", help="the new member's HTTP URL")
    mj.add_argument("peer", help="the new member's peer address host:port")
    command(msub, "leave", "drain a member, then drop it",
            parents=[late]).add_argument("id", help="the member's id")
    rm = command(msub, "remove", "remove a dead member", parents=[late])
    rm.add_argument("id", help="the member's id")
    rm.add_argument("--force", action="store_true", help="remove it even if it looks alive")

    cfg = client_cmd("config", "show the cluster settings (no sub-command) or change them")
    csub2 = cfg.add_subparsers(dest="config_command", metavar="COMMAND")
    command(csub2, "show", "show the cluster settings (the default)", parents=[late])
    cset = command(csub2, "set", "change cluster settings on every node (POST /cluster/config)",
                   parents=[late])
    cset.add_argument("assignments", nargs="+", metavar="KEY=VALUE",
                      help="settings to change, e.g. r=1 w=3 tombstone_grace_s=86400 "
                           "metadata_group=n1,n4,n5; settable: " + ", ".join(CONFIG_TYPES))

    sub.add_parser("sim", help="the deterministic simulator: dynamopy sim [--system] --seed N | "
                               "--seeds A:B (metadata log; --system: whole nodes; -h for flags)",
                   add_help=False)
    return p


def _read_value(text: str) -> bytes:
    if text == "-":
        return sys.stdin.buffer.read()
    if text.startswith("@"):
        try:
            with open(text[1:], "rb") as f:
                return f.read()
        except OSError as e:
            raise CliError(f"cannot read {text[1:]!r}: {e.strerror or e}") from None
    return text.encode()


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


def anti_entropy_line(node: dict) -> str:
    """One line summarising a node's anti-entropy (``dynamopy status``)."""
    ae = node.get("anti_entropy")
    if not ae:
        return "unknown (the node does not report anti-entropy)"
    if not ae.get("enabled"):
        return "off (anti_entropy_interval_s is 0: POST /cluster/config to turn it on)"
    head = f"on, every {ae['interval_s']:g}s, at most {ae['rate_keys_s']} keys/s"
    if not ae.get("exchanges"):
        return head + "; no exchange yet"
    peers = ", ".join(f"{p} {s['outcome']}" for p, s in sorted(ae.get("peers", {}).items()))
    return (f"{head}; {ae['exchanges']} exchanges (last: {peers}); "
            f"{ae['keys_compared']} keys compared, {ae['keys_repaired']} repaired")


def _role(m: dict) -> str:
    return {"acceptor": "metadata", "retired_acceptor": "retired"}.get(m.get("role"), "-")


def _members(c: Client) -> None:
    info = c.cluster()
    print(f"{'id':<8} {'state':<8} {'alive':<6} {'role':<9} {'zone':<10} {'ownership':>9}  "
          f"{'url':<26} peer")
    for m in info["members"]:
        print(f"{m['id']:<8} {m['state']:<8} {str(m['alive']).lower():<6} {_role(m):<9} "
              f"{m.get('zone') or '-':<10} {m['ownership'] * 100:8.2f}%  {m['url']:<26} {m['peer']}")


# The settings ``POST /cluster/config`` takes, with the type its value is sent as:
# "int", "number" (an int if written as one, else a float) or "ids" (comma-separated).
CONFIG_TYPES = {"r": "int", "w": "int", "hint_window_s": "number", "hint_max_bytes": "int",
                "anti_entropy_interval_s": "number", "anti_entropy_rate": "int",
                "tombstone_grace_s": "number", "metadata_group_size": "int",
                "metadata_group": "ids"}
SHOWN_SETTINGS = ("n", *CONFIG_TYPES)


def parse_assignments(items: list[str]) -> dict:
    """``["r=1", "tombstone_grace_s=86400"]`` -> ``{"r": 1, "tombstone_grace_s": 86400}``,
    typed per ``CONFIG_TYPES``; a CliError (exit 2, nothing sent) for anything else."""
    import math
    out: dict = {}
    for item in items:
        key, eq, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not eq or not key:
            raise CliError(f"{item!r}: want KEY=VALUE, e.g. r=1")
        if key == "n":
            raise CliError("n (replicas per key) is fixed when the cluster is created")
        if key not in CONFIG_TYPES:
            raise CliError(f"unknown setting {key!r}; settable: {', '.join(CONFIG_TYPES)}")
        if key in out:
            raise CliError(f"{key} is given twice")
        kind = CONFIG_TYPES[key]
        if kind == "ids":
            ids = [i.strip() for i in text.split(",") if i.strip()]
            if not ids:
                raise CliError(f"{key}: want comma-separated member ids, e.g. n1,n4,n5")
            out[key] = ids
            continue
        try:
            value = int(text)
        except ValueError:
            if kind == "int":
                raise CliError(f"{key}={text!r}: want an integer") from None
            try:
                value = float(text)
            except ValueError:
                raise CliError(f"{key}={text!r}: want a number") from None
            if not math.isfinite(value):
                raise CliError(f"{key}={text!r}: want a finite number") from None
        out[key] = value
    return out


def _config_show(c: Client) -> None:
    info = c.cluster()
    print(f"{'setting':<24} value")
    for key in SHOWN_SETTINGS:
        value = info.get(key)
        if isinstance(value, list):
            text = ",".join(value)
        elif isinstance(value, float) and value.is_integer():
            text = str(int(value))
        else:
            text = "-" if value is None else str(value)
        print(f"{key:<24} {text}" + ("  (fixed at creation)" if key == "n" else ""))


def _ring(c: Client) -> None:
    info = c.cluster()
    print(f"epoch {info['epoch']}  N={info['n']} R={info['r']} W={info['w']}"
          + (f"  change in progress: {' '.join(info['change'])}" if info.get("change") else ""))
    group = info.get("metadata_group", info.get("acceptors", []))
    print(f"metadata group: {' '.join(group)}")
    print(f"{'id':<8} {'state':<8} {'alive':<6} {'role':<9} {'ownership':>9}  {'keys':>8}  url")
    transfers = []
    for m in info["members"]:
        try:
            with Client(m["url"], token=c.token, timeout_s=2.0, ca=c.ca) as peer:
                view = peer.node()
        except DynamoError:
            view = {}
        keys = view.get("keys", "?")
        print(f"{m['id']:<8} {m['state']:<8} {str(m['alive']).lower():<6} {_role(m):<9} "
              f"{m['ownership'] * 100:8.2f}%  {keys:>8}  {m['url']}")
        if view.get("transfer") and info.get("change"):
            transfers.append((m["id"], view["transfer"]))
    if transfers:
        print("\ntransfers in progress (receiving member: keys and bytes moved so far)")
        for mid, t in transfers:
            state = "done" if t["done"] else "streaming"
            print(f"  {mid:<8} {state:<9} {t['keys_moved']:>9} keys {t['bytes_moved']:>12} bytes"
                  f"  ({t['ranges_total']} ranges)")


_CONNECTION_FLAGS = ("--url", "--token", "--ca", "--session")
_CLIENT_COMMANDS = frozenset(("put", "get", "delete", "ring", "status", "members", "config"))


def _connection_flags_after_the_command(argv: list[str]) -> list[str]:
    """``dynamopy --url U get k`` as ``dynamopy get --url U k``: the client commands take
    the connection flags, and a user puts them first as often as last. Only leading
    ``--flag VALUE`` / ``--flag=VALUE`` pairs move, to just after the command, so a flag
    given after the command still wins."""
    moved: list[str] = []
    i = 0
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        if name not in _CONNECTION_FLAGS:
            break
        take = 1 if "=" in argv[i] else 2
        moved += argv[i:i + take]
        i += take
    if not moved or i >= len(argv):
        return argv
    # serve, cluster and sim (or a typo) take none; -h and --version go first, as they came
    if argv[i] not in _CLIENT_COMMANDS and not argv[i].startswith("-"):
        print(f"dynamopy: error: {moved[0].split('=', 1)[0]} goes with the commands that talk "
              f"to a cluster ({', '.join(sorted(_CLIENT_COMMANDS))}), not with "
              f"{argv[i]!r}", file=sys.stderr)
        raise SystemExit(2)
    return [argv[i], *moved, *argv[i + 1:]]


def main(argv: Optional[list[str]] = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # e.g. while parsing, or importing what a command needs
        return 130


def _main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    argv = _connection_flags_after_the_command(argv)
    if argv[:1] == ["sim"]:  # the simulator has its own flags (--seed, --seeds, ...)
        from dynamopy.sim.__main__ import main as sim_main
        return sim_main(argv[1:])
    args = _parser().parse_args(argv)
    if "://" not in (getattr(args, "url", None) or "://"):
        # `--url localhost:8001`, as the README's curl lines write it: HTTP, as curl takes it
        # (it was an "unsupported protocol 'localhost://'" error)
        args.url = "http://" + args.url
    try:
        if args.command == "serve":
            from dynamopy.cli.serve import run
            return run(config_mod.resolve(args))
        if args.command == "cluster":
            from dynamopy.cli.cluster_up import up
            extra = []
            for flag in ("r", "w"):
                if getattr(args, flag) is not None:
                    extra += [f"--{flag}", str(getattr(args, flag))]
            return up(args.nodes, args.base_port, args.data_dir, args.n, extra)
        try:   # argv bytes that are not UTF-8 arrive as surrogate escapes
            getattr(args, "key", "").encode("utf-8")
        except UnicodeEncodeError:
            raise CliError("the key is not valid UTF-8 (keys are UTF-8 strings of 1..1024 "
                           "bytes)") from None
        session = Session.load(args.session) if getattr(args, "session", None) else False
        with Client(args.url, token=args.token, ca=args.ca,
                    session=session) as c:  # saves the session
            if args.command == "put":
                out = c.put(args.key, _read_value(args.value), w=args.w,
                            content_type=args.content_type)
                print(json.dumps(out))
            elif args.command == "get":
                item = c.get(args.key, r=args.r)
                if args.verbose:
                    print(f"version {item.version} content-type {item.content_type}",
                          file=sys.stderr)
                sys.stdout.buffer.write(item.value)
                if sys.stdout.isatty():  # a shell prompt would follow the value on its line
                    sys.stdout.buffer.write(b"\n")
                sys.stdout.flush()
            elif args.command == "delete":
                print(json.dumps(c.delete(args.key, w=args.w)))
            elif args.command == "ring":
                _ring(c)
            elif args.command == "status":
                node = c.node()
                print(json.dumps({"node": node, "cluster": c.cluster(),
                                  "anti_entropy": anti_entropy_line(node)}, indent=2))
            elif args.command == "members":
                if args.members_command in (None, "list"):
                    _members(c)
                elif args.members_command == "join":
                    print(json.dumps(c.join(args.id, args.node_url, args.peer)))
                elif args.members_command == "leave":
                    print(json.dumps(c.leave(args.id)))
                else:
                    print(json.dumps(c.remove(args.id, force=args.force)))
            elif args.command == "config":
                if args.config_command in (None, "show"):
                    _config_show(c)
                else:
                    print(json.dumps(c.set_config(**parse_assignments(args.assignments))))
        return 0
    except DynamoError as e:
        # status 0: no HTTP answer at all (refused, timed out): say so without a fake status
        print(f"dynamopy: error: {e if e.status else f'{e.code}: {e.detail}'}", file=sys.stderr)
        return 1
    except (CliError, ValueError) as e:
        print(f"dynamopy: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `dynamopy get k | head -c1`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # e.g. `serve` on a data dir another process holds (LevelDB lock)
        name = f" {e.filename!r}" if e.filename else ""
        raw = e.args[0] if len(e.args) == 1 else None
        text = e.strerror or (raw.decode(errors="replace") if isinstance(raw, bytes) else e)
        print(f"dynamopy: error:{name} {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
