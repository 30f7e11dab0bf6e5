"""Every flag of every `dynamopy` sub-command says what it does and what its default is."""

import argparse

import pytest

from dynamopy.cli import _parser
from dynamopy.sim.__main__ import _parser as sim_parser
from dynamopy.sim.system_cli import _parser as system_sim_parser


def _parsers(parser, path=("dynamopy",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def test_every_flag_has_help_with_its_default():
    checked = 0
    for path, parser in [*_parsers(_parser()), (("dynamopy", "sim"), sim_parser()),
                         (("dynamopy", "sim", "--system"), system_sim_parser())]:
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS or \
                    isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            name = " ".join(path) + " " + action.option_strings[-1]
            assert action.help, f"{name} has no help"
            shown = formatter._expand_help(action)
            if action.nargs != 0:  # a flag taking a value names its default
                assert "default" in shown, f"{name}: no default in {shown!r}"
            checked += 1
    assert checked > 50  # serve's settings, cluster up, client commands, members, sim


def test_members_without_a_sub_command_lists():
    args = _parser().parse_args(["members", "--url", "http://x"])
    assert args.members_command is None and args.url == "http://x"
    late = _parser().parse_args(["members", "leave", "n2", "--url", "http://y"])
    assert late.members_command == "leave" and late.url == "http://y"


def test_a_url_without_a_scheme_is_taken_as_http(capsys):
    """Found in review: `--url localhost:8001` (how the README's curl lines write it) failed
    with "unsupported protocol 'localhost://'"; it is HTTP, as curl takes it."""
    from dynamopy.cli import main
    assert main(["get", "k", "--url", "127.0.0.1:1"]) != 0
    err = capsys.readouterr().err
    assert "http://127.0.0.1:1" in err and "unsupported protocol" not in err, err


def test_config_set_types_each_value_and_refuses_bad_ones_before_sending(capsys):
    """`dynamopy config set KEY=VALUE ...`: each value is sent with its setting's type; a
    malformed, unknown, repeated or fixed setting is a one-line error, exit 2, and no
    request (the URL here answers nothing: a request would fail with exit 1)."""
    from dynamopy.cli import main, parse_assignments
    got = parse_assignments(["r=1", "w= 3", "tombstone_grace_s=86400", "hint_window_s=0.5",
                             "anti_entropy_interval_s=1e3", "metadata_group=n1, n4,n5"])
    assert got == {"r": 1, "w": 3, "tombstone_grace_s": 86400, "hint_window_s": 0.5,
                   "anti_entropy_interval_s": 1000.0, "metadata_group": ["n1", "n4", "n5"]}
    assert type(got["r"]) is int and type(got["tombstone_grace_s"]) is int
    for args, words in ((["r=1.5"], "want an integer"), (["rate=3"], "unknown setting"),
                        (["r"], "KEY=VALUE"), (["r=1", "r=2"], "given twice"),
                        (["n=5"], "fixed"), (["hint_window_s=abc"], "want a number"),
                        (["tombstone_grace_s=inf"], "finite"), (["metadata_group=,"], "ids")):
        assert main(["config", "set", *args, "--url", "http://127.0.0.1:1"]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("dynamopy: error: ") and words in err, (args, err)
        assert err.count("\n") == 1 and "unreachable" not in err, err
    assert _parser().parse_args(["config", "--url", "http://x"]).config_command is None


def test_the_top_level_help_names_every_command_in_a_whole_sentence():
    """Found by a user (session 13): `dynamopy --help` described itself as "The `dynamopy`
    command line: serve, cluster up, put, get, delete, ring, status, members," (the first
    line of a docstring whose sentence goes on)."""
    text = _parser().format_help()
    description = text.split("positional arguments")[0]
    assert "config, sim." in " ".join(description.split()), description
    assert not description.rstrip().endswith(","), description


def test_connection_flags_may_come_before_the_command(capsys):
    """Found by a user (session 13): `dynamopy --url localhost:8002 get k` (the contract
    lists --url among the CLI's own flags) failed with "argument COMMAND: invalid choice:
    'localhost:8002'"; the connection flags are taken before the command too."""
    from dynamopy.cli import main
    assert main(["--url", "127.0.0.1:1", "get", "k"]) == 1
    err = capsys.readouterr().err
    assert "http://127.0.0.1:1" in err and "invalid choice" not in err, err
    assert main(["--url=http://127.0.0.1:1", "--token", "t", "members", "leave", "n2"]) == 1
    err = capsys.readouterr().err
    assert "http://127.0.0.1:1" in err and "invalid choice" not in err, err
    # a flag after the command still wins (it is the one nearer the command's own)
    assert main(["--url", "http://127.0.0.1:2", "get", "k", "--url", "127.0.0.1:1"]) == 1
    assert "http://127.0.0.1:1" in capsys.readouterr().err
    # before a command that talks to no cluster: named as such, exit 2 (it was "invalid
    # choice: 'http://127.0.0.1:8001'" for `dynamopy --url U cluster up`)
    for argv in (["--url", "http://127.0.0.1:8001", "cluster", "up"], ["--token=t", "serve"],
                 ["--url", "u", "gett", "k"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and "goes with the commands that talk to a cluster" in err, err
        assert "invalid choice" not in err


def test_serve_help_never_calls_a_derived_default_empty():
    """Found by a user (session 13): `dynamopy serve --help` said "--node-id ... (default:
    n<port>) [env DYNAMOPY_NODE_ID; default '']", and "default ''" for --peer-port,
    --data-dir, --advertise-url, --seeds, --api-token...: two defaults, one of them wrong
    (an empty --data-dir is not what a node uses). Each flag names one default."""
    import re
    serve = dict(_parsers(_parser()))[("dynamopy", "serve")]
    text = " ".join(serve.format_help().split())
    assert "default ''" not in text, re.findall(r".{60}default ''", text)
    for flag, default in (("--node-id", "n<port>"), ("--peer-port", "HTTP port + 1000"),
                          ("--data-dir", "./.dynamopy/<node id>"),
                          ("--advertise-url", "http://<host>:<port>"),
                          ("--advertise-peer", "<host>:<peer port>"),
                          ("--seeds", "none"), ("--api-token", "none")):
        help_text = text.split(f" {flag} {flag.lstrip('-').replace('-', '_').upper()} ", 1)[1]
        shown = help_text.split(" --", 1)[0]
        assert f"default: {default}" in shown and shown.count("default") == 1, (flag, shown)


def test_a_key_that_is_not_utf8_is_named_as_such(capsys):
    """Found by a user (session 13): `dynamopy get $'\\xff\\xfe'` said "'utf-8' codec can't
    encode characters in position 0-1: surrogates not allowed"."""
    from dynamopy.cli import main
    bad = b"\xff\xfe".decode("utf-8", "surrogateescape")   # how Python passes such argv
    for argv in (["get", bad], ["put", bad, "v"], ["delete", "ok" + bad]):
        assert main([*argv, "--url", "127.0.0.1:1"]) == 2
        err = capsys.readouterr().err
        assert err == "dynamopy: error: the key is not valid UTF-8 (keys are UTF-8 " \
                      "strings of 1..1024 bytes)\n", err
