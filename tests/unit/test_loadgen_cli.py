"""loadgen's command line (loadgen/cli.py): bad arguments end with one line and exit 2."""

import signal

from loadgen.cli import main


def test_a_url_without_a_scheme_is_taken_as_http(capsys):
    """Found by a user (session 13): `python -m loadgen --url localhost:8001` was refused
    ("Request URL is missing an 'http://' or 'https://' protocol") where `dynamopy --url
    localhost:8001` (and curl) take it as HTTP."""
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        assert main(["--url", "127.0.0.1:1", "--settings", "1,1"]) == 2
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    err = capsys.readouterr().err
    assert "cannot reach http://127.0.0.1:1" in err and "protocol" not in err, err
