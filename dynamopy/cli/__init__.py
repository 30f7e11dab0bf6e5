"""The `dynamopy` command line: serve, cluster up, put, get, delete, ring, status, members, sim.

Helpers talk HTTP to any node (``--url``, default http://127.0.0.1:8001, or
``DYNAMOPY_URL``). Exit code 0 on success; non-zero with a one-line error on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

from dynamopy import config as config_mod
from dynamopy.client import DEFAULT_URL, Client, DynamoError, Session


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dynamopy", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one node")
    config_mod.add_arguments(serve)

    cluster = sub.add_parser("cluster", help="local clusters")
    csub = cluster.add_subparsers(dest="cluster_command", required=True)
    up = csub.add_parser("up", help="start a local cluster on 127.0.0.1 in the foreground")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--base-port", type=int, default=8001)
    up.add_argument("--data-dir", default="./.dynamopy")
    up.add_argument("--n", type=int, default=None, help="replicas per key (default min(3, nodes))")
    up.add_argument("--r", type=int, default=None)
    up.add_argument("--w", type=int, default=None)

    def client_cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text)
        sp.add_argument("--url", default=os.environ.get("DYNAMOPY_URL", DEFAULT_URL))
        sp.add_argument("--token", default=os.environ.get("DYNAMOPY_API_TOKEN") or None)
        sp.add_argument("--ca", default=os.environ.get("DYNAMOPY_CA") or None,
                        help="PEM CA bundle to verify an HTTPS cluster's certificates "
                             "[env DYNAMOPY_CA; default: the system's CAs]")
        sp.add_argument("--session", default=os.environ.get("DYNAMOPY_SESSION") or None,
                        help="a file remembering the newest version seen per key, sent as "
                             "X-Dynamopy-After so later commands read their own writes "
                             "[env DYNAMOPY_SESSION; default: none]")
        return sp

    put = client_cmd("put", "store a value")
    put.add_argument("key")
    put.add_argument("value", help="the value; '-' reads standard input, '@FILE' reads a file")
    put.add_argument("--w", type=int)
    put.add_argument("--content-type")
    get = client_cmd("get", "read a value (printed raw to standard output)")
    get.add_argument("key")
    get.add_argument("--r", type=int)
    get.add_argument("--verbose", "-v", action="store_true", help="print the version to stderr")
    delete = client_cmd("delete", "delete a value")
    delete.add_argument("key")
    delete.add_argument("--w", type=int)
    client_cmd("ring", "members, states and ownership")
    client_cmd("status", "this node's view and the cluster's")
    members = client_cmd("members", "membership changes")
    msub = members.add_subparsers(dest="members_command", required=True)
    # --url/--token may also follow the sub-command (`members leave n2 --url ...`)
    late = argparse.ArgumentParser(add_help=False)
    late.add_argument("--url", default=argparse.SUPPRESS)
    late.add_argument("--token", default=argparse.SUPPRESS)
    late.add_argument("--ca", default=argparse.SUPPRESS)
    mj = msub.add_parser("join", parents=[late],
                         help="add a member by hand (a node started with --join does this itself)")
    mj.add_argument("id")
    mj.add_argument("node_url", help="the new member's HTTP URL")
    mj.add_argument("peer", help="the new member's peer address host:port")
    msub.add_parser("leave", parents=[late], help="drain a member, then drop it").add_argument("id")
    rm = msub.add_parser("remove", parents=[late], help="remove a dead member")
    rm.add_argument("id")
    rm.add_argument("--force", action="store_true", help="remove it even if it looks alive")

    sub.add_parser("sim", help="the deterministic simulator: dynamopy sim --seed N | "
                               "--seeds A:B (dynamopy sim -h for its flags)", add_help=False)
    return p


def _read_value(text: str) -> bytes:
    if text == "-":
        return sys.stdin.buffer.read()
    if text.startswith("@"):
        with open(text[1:], "rb") as f:
            return f.read()
    return text.encode()


def _ring(c: Client) -> None:
    info = c.cluster()
    print(f"epoch {info['epoch']}  N={info['n']} R={info['r']} W={info['w']}"
          + (f"  change in progress: {' '.join(info['change'])}" if info.get("change") else ""))
    print(f"{'id':<8} {'state':<8} {'alive':<6} {'ownership':>9}  {'keys':>8}  url")
    transfers = []
    for m in info["members"]:
        try:
            with Client(m["url"], token=c.token, timeout_s=2.0, ca=c.ca) as peer:
                view = peer.node()
        except DynamoError:
            view = {}
        keys = view.get("keys", "?")
        print(f"{m['id']:<8} {m['state']:<8} {str(m['alive']).lower():<6} "
              f"{m['ownership'] * 100:8.2f}%  {keys:>8}  {m['url']}")
        if view.get("transfer") and info.get("change"):
            transfers.append((m["id"], view["transfer"]))
    if transfers:
        print("\ntransfers in progress (receiving member: keys and bytes moved so far)")
        for mid, t in transfers:
            state = "done" if t["done"] else "streaming"
            print(f"  {mid:<8} {state:<9} {t['keys_moved']:>9} keys {t['bytes_moved']:>12} bytes"
                  f"  ({t['ranges_total']} ranges)")


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sim"]:  # the simulator has its own flags (--seed, --seeds, ...)
        from dynamopy.sim.__main__ import main as sim_main
        return sim_main(argv[1:])
    args = _parser().parse_args(argv)
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
                if sys.stdout.isatty():
                    sys.stdout.write("\n")
            elif args.command == "delete":
                print(json.dumps(c.delete(args.key, w=args.w)))
            elif args.command == "ring":
                _ring(c)
            elif args.command == "status":
                print(json.dumps({"node": c.node(), "cluster": c.cluster()}, indent=2))
            elif args.command == "members":
                if args.members_command == "join":
                    print(json.dumps(c.join(args.id, args.node_url, args.peer)))
                elif args.members_command == "leave":
                    print(json.dumps(c.leave(args.id)))
                else:
                    print(json.dumps(c.remove(args.id, force=args.force)))
        return 0
    except DynamoError as e:
        print(f"dynamopy: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:
        print(f"dynamopy: error: {e}", file=sys.stderr)
        return 2
